// SPDX-License-Identifier: GPL-2.0-or-later
// Program deliveries (masqmail §4.4): the MDA, route pipes and `|command`
// alias items. Words are split from root-owned configuration first, then
// variables expanded (never for alias pipes), then run with posix_spawn and
// exactly masqmail's environment; no shell ever. Runs as the recipient;
// message content and addresses are untrusted. Linked by local-deliver.
#pragma once

#include "delivery.hh"

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace mm::local {

struct PipeCommand {
    std::vector<std::string> argv; // argv[0] is an absolute path
};

// The MDA and route pipe form: every `$name` / `${name}` in each word is
// replaced by the variable of §4.4 (uid, received_host, ident, return_path,
// return_path_local, return_path_domain, rcpt, rcpt_local, rcpt_domain;
// unknown names give nothing); a backslash takes the next byte literally.
// A word may expand to nothing (§10 43); one longer than
// limits::command_arg, or an unterminated "${", is a permanent error. The
// first word is not expanded and must be an absolute path.
Result<PipeCommand> expand_command(const std::vector<std::string>& words, const LocalEnvelope& envelope);

// The alias pipe form: the words as they are (no expansion), checked only.
Result<PipeCommand> literal_command(const std::vector<std::string>& words);

// Exactly RETURN_PATH, SENDER, SENDER_DOMAIN, SENDER_LOCAL, RECEIVED_HOST,
// DOMAIN, LOCAL_PART, USER, LOGNAME, MESSAGE_ID, QUALIFY_DOMAIN as
// "NAME=value" (no PATH, HOME or SHELL). USER, LOGNAME, LOCAL_PART and
// DOMAIN are of the original top-level recipient.
std::vector<std::string> pipe_environment(const LocalEnvelope& envelope);

struct PipeOptions {
    bool from_line = false; // mda_fromline / pipe_fromline
    bool from_hack = false; // mda_fromhack / pipe_fromhack
    std::chrono::milliseconds timeout { std::chrono::hours(1) };
    // After SIGTERM at the timeout, SIGKILL follows this much later.
    std::chrono::milliseconds kill_grace { std::chrono::seconds(5) };
    std::size_t output_limit = 1024; // bytes of stdout+stderr kept for the log
    std::time_t now = 0; // for the From_ line; 0: the current time
};

struct PipeOutcome {
    DeliveryStatus status;
    std::string output; // the first output_limit bytes the program wrote, raw
    bool output_truncated = false;
};

// Runs `command` with the message on stdin; its stdout and stderr go to one
// pipe read into PipeOutcome::output, never to our own descriptors (§10 15),
// and every other descriptor is closed. The program runs in its own process
// group, which the timeout kills (deferred). Exit 0: delivered; 75: deferred;
// any other exit, a signal, or a program that cannot be started: failed.
// A program that exits without reading all its input is judged by its exit
// status alone. The caller must not have SIGCHLD ignored.
PipeOutcome run_pipe(const PipeCommand& command, const MessageSource& message, const LocalEnvelope& envelope,
    const PipeOptions& options);

} // namespace mm::local
