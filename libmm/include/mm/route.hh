// SPDX-License-Identifier: GPL-2.0-or-later
// Route files (masqmail §3.3) as a typed, defaulted struct, read whole or not
// at all; 0.3.x route options mapped with a deprecation warning. A route's
// name is its file path. Input is administrator-owned (may hold secrets).
// Linked by route-selector, remote-deliver and the front end.
#pragma once

#include "mm/config_lexer.hh"
#include "mm/config_value.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm::config {

enum class ResolveMethod { dns_mx, byname };
// xoauth2 and oauthbearer send an OAuth2 access token (the secret) instead
// of a password; only when the route names them.
enum class AuthMechanism { cram_md5, login, plain, xoauth2, oauthbearer };
// none: clear text only. opportunistic: STARTTLS when the server offers it.
// starttls: STARTTLS required (never falls back to clear text).
// implicit: TLS from the first byte (SMTPS, port 465).
enum class TlsMode { none, opportunistic, starttls, implicit };

struct RouteConfig {
    std::string file; // the route's name

    // Conditions (empty allow lists allow everything; deny lists win).
    std::vector<AddressGlob> allowed_senders;
    std::vector<AddressGlob> denied_senders;
    std::vector<AddressGlob> allowed_recipients;
    std::vector<AddressGlob> denied_recipients;
    std::vector<AddressGlob> allowed_from_hdrs;
    std::vector<AddressGlob> denied_from_hdrs;
    bool last_route = false;
    bool connect_error_fail = false;

    std::optional<HostPort> mail_host; // unset: direct delivery to the MX hosts
    // mail_host = "a:587; b:587": smarthosts tried in order when the first
    // cannot be reached or refuses us for now (beyond masqmail 1.0).
    std::vector<HostPort> more_mail_hosts;
    std::uint16_t smtp_port = 25; // port for direct delivery
    std::vector<ResolveMethod> resolve_list { ResolveMethod::dns_mx, ResolveMethod::byname };
    std::optional<std::string> helo_name; // unset: host_name
    bool do_correct_helo = false;
    bool instant_helo = false;
    bool do_pipelining = true;

    // unset: chosen from what the server offers (PLAIN, LOGIN, CRAM-MD5).
    std::optional<AuthMechanism> auth_name;
    std::optional<std::string> auth_login;
    // At most one of the three secret sources is set.
    std::optional<std::string> auth_secret;
    std::optional<std::string> auth_secret_file; // first line of the file
    std::optional<Command> auth_secret_command; // first line of its output
    bool auth_plaintext = false; // credentials may go over a connection without TLS

    std::optional<Command> wrapper; // speak SMTP over this command's stdin/stdout
    std::optional<Command> pipe; // pipe transport instead of SMTP
    bool pipe_fromline = false;
    bool pipe_fromhack = false;

    RewriteMap map_h_from_addresses;
    RewriteMap map_h_sender_addresses;
    RewriteMap map_h_reply_to_addresses;
    RewriteMap map_h_mail_followup_to_addresses;
    RewriteMap map_return_path_addresses;
    RewriteMap map_outgoing_addresses;

    // Beyond masqmail 1.0: native TLS. Default: implicit when mail_host's
    // port is 465; none when a wrapper is set (the wrapper does TLS);
    // opportunistic otherwise.
    TlsMode tls = TlsMode::opportunistic;
    bool tls_verify = true; // check the certificate chain and name
    std::optional<std::string> tls_ca_file; // unset: the system's CA store
    std::optional<std::string> tls_fingerprint; // SHA-256, 64 lowercase hex digits: pin instead of CA
};

// Every name a route file knows, current, deprecated and ignored, in the
// reader's own table (for the man page test and --check-config).
std::vector<OptionInfo> route_options();

// Reads the route file at `path` (the route's name). Every error and warning
// goes to `diag`; any error gives nullopt.
std::optional<RouteConfig> read_route_config(const std::string& path, Diagnostics& diag);
std::optional<RouteConfig> parse_route_config(
    std::string_view text, std::string_view file, Diagnostics& diag);

} // namespace mm::config
