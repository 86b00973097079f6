// SPDX-License-Identifier: GPL-2.0-or-later
// The legacy sendmail/masqmail command line (masqmail §1.1-1.3, with §10 17
// and 23 fixed) parsed into an Invocation. argv is untrusted: every value is
// bounded and checked for line breaks here. Pure (no I/O, no uid checks);
// linked by the masqmail front end, whose main() enforces privileges.
#pragma once

#include "mm/result.hh"

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mm::cli {

enum class Mode : std::uint8_t {
    accept, // -bm, sendmail, rmail: read one message from stdin
    daemon, // -bd [-qINTERVAL]: supervisor in the background
    foreground_daemon, // -bD [-qINTERVAL]: the same, for systemd and runit
    queue_daemon, // -qINTERVAL alone: periodic queue runs, no listener
    queue_run, // -q, runq: one full queue run
    route_run, // -qo NAME, runq -qo NAME: one run through one named route
    smtp_stdio, // -bs, smtpd, in.smtpd
    list_queue, // -bp, mailq
    list_queue_json, // -bp --json, mailq --json
    rebuild_aliases, // -bi, newaliases
    version, // -bV, --version, or no mode, no recipient and no -t
    remove, // -Mrm ID..., mailrm ID...
    check_config, // --check-config
    explain, // --explain ADDRESS
    daemon_dir, // --daemon-dir
    help, // --help
};

// "accept", "queue_run", ...: for log lines.
const char* mode_name(Mode mode);

struct Invocation {
    Mode mode = Mode::version;
    std::optional<std::string> config_path; // -C
    std::optional<unsigned> debug_level; // -d, 0 to 9
    bool dot_terminates = true; // false with -i, -oi, and for rmail
    bool extract_recipients = false; // -t
    std::optional<std::string> sender; // -f/-r as given ("<>" included); no CR, LF or NUL
    std::optional<std::string> full_name; // -F; no CR, LF or NUL
    bool queue_only = false; // -odq
    bool background = false; // -odb
    bool verbose = false; // -v
    std::vector<std::string> recipients; // accept mode only; unparsed
    std::vector<std::string> message_ids; // remove mode only; unparsed
    std::optional<std::chrono::seconds> queue_interval; // -qINTERVAL (daemon modes)
    std::string route_name; // -qo NAME
    std::string explain_address; // --explain ADDRESS; unparsed
    // Accepted but meaningless options, as written ("-oem", "-B 8BITMIME"),
    // control bytes replaced by '?', each cut to a short length: for one log line.
    std::vector<std::string> ignored_options;
};

// program_name is the basename of argv[0]; args are argv[1..]. Every error
// exits as ex::usage, with masqmail's message and no "masqmail: " prefix.
Result<Invocation> parse_command_line(std::string_view program_name, std::span<const std::string_view> args);

// The text --help prints.
std::string_view usage_text();

} // namespace mm::cli
