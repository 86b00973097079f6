// SPDX-License-Identifier: GPL-2.0-or-later
// STARTTLS for the SMTP server: the server context from tls_cert_file and
// tls_key_file (administrator-owned; read before the listener drops root),
// and the owning handle types. The handshake and records come from untrusted
// clients and are OpenSSL's to parse. Linked by smtp-listener.
#pragma once

#include "mm/result.hh"

#include <memory>
#include <openssl/ssl.h>
#include <string>

namespace mm::smtp {

struct SslCtxFree {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using TlsContext = std::unique_ptr<SSL_CTX, SslCtxFree>;
using TlsConnection = std::unique_ptr<SSL, SslFree>;

// TLS 1.2 or newer, no renegotiation, no compression, no session tickets
// kept across restarts. Errors name the file and OpenSSL's reason.
Result<TlsContext> load_server_context(const std::string& cert_file, const std::string& key_file);

// OpenSSL's queued error text (emptied), for a log line.
std::string tls_error_text();

} // namespace mm::smtp
