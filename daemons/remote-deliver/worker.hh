// SPDX-License-Identifier: GPL-2.0-or-later
// One remote-deliver worker: a child process that owns one SMTP connection
// over one route to one next hop. It reads remote_deliver frames (each with
// the message's descriptor) from its socket, sends each message on the
// connection, and answers each with a remote_result frame. The end of its
// socket is the end of its work: it says QUIT and exits.
#pragma once

#include "mm/config.hh"
#include "mm/fd.hh"

#include <string>

namespace mm::remote {

// Runs in the child; never returns.
[[noreturn]] void run_worker(const config::MainConfig& cfg, const std::string& route_path,
    const std::string& next_hop, Fd sock);

} // namespace mm::remote
