// SPDX-License-Identifier: GPL-2.0-or-later
// What a route file means for one SMTP connection (masqmail §3.3 plus TLS
// and AUTH): the client session's options, the TLS checks, and the
// credentials, whose secret comes from the route file, a file readable by
// the remote user only, or a command's first line. Route files are
// administrator-owned; secrets never reach a log line. Linked by
// remote-deliver.
#pragma once

#include "mm/config.hh"
#include "mm/route.hh"
#include "mm/smtp_client.hh"
#include "mm/tls_client.hh"

#include <chrono>
#include <optional>
#include <string>

namespace mm {

// The session options for a connection over `route` to `server_name`
// ("smtp.example.net:587" for logs). Implicit TLS is not the session's:
// the transport does the handshake before the greeting (implicit_tls()).
smtp::ClientOptions client_options(const config::RouteConfig& route, const config::MainConfig& main,
    const std::string& server_name);
bool implicit_tls(const config::RouteConfig& route);

// The certificate checks for `host` (the name connected to, or its IP).
// A malformed tls_fingerprint is a permanent error (--check-config catches
// it before; this is the second line of defence).
Result<smtp::TlsClientOptions> tls_options(const config::RouteConfig& route, const std::string& host);

// The route's credentials, or nullopt when it has none (auth_login and a
// secret source both needed). auth_secret_file must be a regular file not
// readable by group or others (refused otherwise: the secret is out);
// auth_secret_command runs without a shell for at most `timeout` and must
// print the secret on its first line. Failures are temporary (the mail
// waits), and name the file or command, never the secret.
Result<std::optional<smtp::Credentials>> route_credentials(
    const config::RouteConfig& route, std::chrono::milliseconds timeout = std::chrono::seconds(30));

} // namespace mm
