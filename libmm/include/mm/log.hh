// SPDX-License-Identifier: GPL-2.0-or-later
// Logging: one line per event to log_dir/masqmail.log, syslog (facility MAIL)
// or stderr, printf-style with compile-time format checks. Message text may
// carry peer data: control bytes are replaced so a line can never be forged.
// Linked by every process.
#pragma once

#include "mm/fd.hh"
#include "mm/result.hh"

#include <string>

namespace mm::log {

// masqmail's priority words, most severe first.
enum class Priority { error, warning, notice, info, debug };

const char* priority_name(Priority p);

// Where lines go. The default before any open_*() call is stderr, which is
// what the command-line tools want until the configuration is read.
// ident appears in syslog and stderr lines ("masqmail", "smtp-listener", ...).
void set_ident(std::string ident);
// Appends to log_dir/masqmail.log (created 0600), one write(2) per line.
Result<void> open_file(const std::string& log_dir);
void use_syslog();
void use_stderr();
// The log file's descriptor, -1 when lines do not go to a file: a forked
// worker that closes inherited descriptors keeps this one.
int file_descriptor();
// The three settings of masqmail.conf that choose the sink: use_syslog wins;
// otherwise an empty log_dir means stderr (masqmail 1.0 documented this but
// failed at startup), else log_dir/masqmail.log.
struct Setup {
    std::string log_dir;
    bool use_syslog = false;
    int debug_level = 0;
};
Result<void> configure(const Setup& setup);
// Lines with Priority::debug are written only when level <= debug_level.
void set_debug_level(int level);
int debug_level();

[[gnu::format(printf, 2, 3)]] void write(Priority p, const char* fmt, ...);
[[gnu::format(printf, 2, 3)]] void debug(int level, const char* fmt, ...);

// Shorthands. Put the queue id first when there is one: "%s: ...".
[[gnu::format(printf, 1, 2)]] void error(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void warning(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void notice(const char* fmt, ...);
[[gnu::format(printf, 1, 2)]] void info(const char* fmt, ...);

// Formats one line as it is written to a file: "YYYY-MM-DD HH:MM:SS [PID] prio: text\n",
// with control bytes of `text` replaced by '?'. Exposed for tests.
std::string format_line(Priority p, long pid, long epoch_seconds, const std::string& text);

} // namespace mm::log
