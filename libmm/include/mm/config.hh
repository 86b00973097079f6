// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail.conf (masqmail §2.2) as a typed, defaulted struct, read whole or
// not at all: a file with any error gives no MainConfig. 0.3.x names are
// mapped with a deprecation warning (§2.3). Input is administrator-owned.
// Linked by the supervisor, the daemons and the front end.
#pragma once

#include "mm/address.hh"
#include "mm/config_lexer.hh"
#include "mm/config_value.hh"
#include "mm/limits.hh"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm::config {

// maildir: masqmail 0.2's native Maildir, back again.
enum class MboxMethod { mbox, mda, maildir };

struct MainConfig {
    std::string file; // the path it was read from

    // Required. "/path" in the file means the first line of that file.
    std::string host_name;
    // Default: localhost; host_name up to its first dot (if it has one); host_name.
    std::vector<std::string> local_hosts;
    // Unqualified entries get @host_name.
    std::vector<Address> local_addresses;
    std::vector<Address> not_local_addresses;
    std::vector<HostPort> listen_addresses { { "localhost", 25 } };

    bool do_save_envelope_to = false;
    bool do_relay = true;
    bool do_queue = false;

    // Route file paths. query_routes is keyed by connection NAME (case-sensitive).
    std::vector<std::string> permanent_routes;
    std::map<std::string, std::vector<std::string>, std::less<>> query_routes;
    std::optional<Command> online_query; // unset: offline, permanent routes only

    std::optional<std::string> alias_file;
    std::optional<std::string> globalias_file;
    bool caseless_matching = false;

    MboxMethod mbox_default = MboxMethod::mbox;
    std::vector<std::string> mbox_users;
    std::vector<std::string> mda_users;
    std::vector<std::string> maildir_users; // masqmail 0.2
    std::optional<Command> mda;
    bool mda_fromline = false;
    bool mda_fromhack = false;
    bool pipe_fromline = false;
    bool pipe_fromhack = false;

    std::string mail_dir = "/var/mail";
    std::string spool_dir = "/var/spool/masqmail";
    std::string lock_dir = "/var/lock/masqmail";
    std::string log_dir = "/var/log/masqmail"; // empty: log to stderr
    std::string pid_dir = "/var/run";
    bool run_as_user = false;
    bool use_syslog = false;
    int debug_level = 0; // 0-9

    std::string errmsg_file; // default $datadir/masqmail/tpl/failmsg.tpl
    std::string warnmsg_file; // default $datadir/masqmail/tpl/warnmsg.tpl
    std::vector<std::chrono::seconds> warn_intervals { std::chrono::hours(1), std::chrono::hours(4),
        std::chrono::hours(8), std::chrono::hours(24), std::chrono::hours(48), std::chrono::hours(72) };
    std::chrono::seconds max_defer_time = std::chrono::hours(96);
    std::optional<Address> log_user; // BCC archive of every message
    std::uint64_t max_msg_size = 0; // 0: unlimited (limits::message_size_default applies)
    bool defer_all = false;

    // Beyond masqmail 1.0:
    // SMTP clients in these networks may relay whatever do_relay says.
    std::vector<Network> relay_nets;
    // Certificate and key for STARTTLS in the SMTP server; unset: no STARTTLS.
    std::optional<std::string> tls_cert_file;
    std::optional<std::string> tls_key_file;
    // A message with more Received: headers is refused as a loop (554 5.4.6).
    std::size_t max_received_headers = limits::received_hops;
    // Recipients accepted per message (SMTP 452 beyond, RFC 5321 §4.5.3.1.8).
    std::size_t max_recipients = limits::recipients;
    // The SMTP server waits this long for a command or a block of DATA
    // (RFC 5321 §4.5.3.2: at least 5 minutes); under load, much less.
    std::chrono::seconds smtp_timeout = std::chrono::minutes(5);
    // SMTP sessions open at once, in all and per client address (clients
    // that may relay, loopback and relay_nets, are not counted per address).
    std::size_t smtp_max_connections = limits::smtp_connections;
    std::size_t smtp_max_connections_per_client = limits::smtp_connections_per_client;
    // The name server for direct MX delivery; unset: /etc/resolv.conf's.
    std::optional<DnsServer> dns_server;

    // masqmail 0.3's local_net_route and local_nets: the routes named by
    // local_net_route (also in permanent_routes) take only recipients whose
    // domain matches local_nets ("*@pattern"), unless the route file has an
    // allowed_recipients of its own.
    std::vector<std::string> local_net_routes;
    std::vector<AddressGlob> local_nets;
};

// Reads masqmail.conf at `path`. Every error and warning goes to `diag` as
// "file:line: reason"; any error gives nullopt (never half a config).
std::optional<MainConfig> read_main_config(const std::string& path, Diagnostics& diag);
// The same from text in memory; `file` names it in diagnostics.
std::optional<MainConfig> parse_main_config(std::string_view text, std::string_view file, Diagnostics& diag);

// Every name masqmail.conf knows, current, deprecated and ignored, in the
// reader's own table (for the man page test and --check-config).
std::vector<OptionInfo> main_options();

// For --check-config only: the config as far as it could be read even with
// errors, so that route and alias files it names can be checked too.
MainConfig parse_main_config_partial(std::string_view text, std::string_view file, Diagnostics& diag);

} // namespace mm::config
