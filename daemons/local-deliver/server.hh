// SPDX-License-Identifier: GPL-2.0-or-later
// local-deliver's event loop: accepts qmgr's connections on private/local
// (peer uid checked), reads deliver frames (a bad frame closes that
// connection only), plans each request, runs the deliveries in child
// processes (at most max_children at once, the rest queued) and answers each
// request with exactly one delivery_result frame. Single-threaded, one
// libevent loop; the loop never waits for a delivery. Linked by local-deliver.
#pragma once

#include "request.hh"

#include "mm/fd.hh"
#include "mm/result.hh"

#include <chrono>
#include <cstddef>
#include <memory>
#include <sys/types.h>

namespace mm::local {

struct ServerLimits {
    std::size_t max_children = 16;
    // Requests for one mailbox are never delivered by two children at once:
    // those that wait while one runs go together in the next, up to this many.
    std::size_t max_batch = 128;
    // Requests waiting for a child; each holds an open message descriptor.
    // Beyond this a request is answered deferred at once.
    std::size_t max_waiting = 512;
    // After SIGTERM: how long running deliveries are waited for (less than
    // the supervisor's 10 s before its SIGKILL).
    std::chrono::seconds stop_wait { 8 };
};

class Server {
public:
    // `listener`: a listening non-blocking SOCK_SEQPACKET socket; only
    // `peer_uid` (qmgr's user) may talk to it.
    Server(const DeliveryContext& ctx, Fd listener, uid_t peer_uid, ServerLimits limits = {});
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Serves until SIGTERM or SIGINT. Then: stops accepting, answers the
    // requests not started yet with deferred, waits up to stop_wait for the
    // running deliveries (their results are still sent) and returns.
    // Deliveries still running then are left to finish on their own:
    // killing one could leave half a message in an mbox.
    Result<void> run();

    // Defined in server_impl.hh, for server*.cc and their libevent callbacks.
    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace mm::local
