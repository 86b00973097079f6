// SPDX-License-Identifier: GPL-2.0-or-later
// The inside of local-deliver's Server (server.hh), shared by server.cc
// (connections, requests, stopping) and server_children.cc (the delivery
// children and their reports). Not a public interface. Linked by local-deliver.
#pragma once

#include "server.hh"

#include "mm/log.hh"
#include "mm/protocol.hh"

#include <event2/event.h>

#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace mm::local {

struct EventBaseFree {
    void operator()(event_base* base) const { event_base_free(base); }
};
struct EventFree {
    void operator()(event* ev) const { event_free(ev); }
};
using EventBasePtr = std::unique_ptr<event_base, EventBaseFree>;
using EventPtr = std::unique_ptr<event, EventFree>;

// A delivery_result frame. If the reasons make it too long, without them;
// if still too long, the first results that fit (qmgr counts a leaf it got
// no answer for as deferred).
std::string encode_result(std::uint64_t request_id, std::vector<protocol::LeafResult> results);

// Runs `body`, catching at the edge of a libevent callback (STYLE:
// exceptions are for bugs and out-of-memory; the caller then ends one
// connection or one child, never the daemon).
template <class F> void guarded(const char* what, F&& body) noexcept
{
    try {
        body();
    } catch (const std::exception& e) {
        log::error("%s: %s", what, e.what());
    } catch (...) {
        log::error("%s: unknown exception", what);
    }
}

struct Server::Impl {
    struct Connection {
        Impl* impl = nullptr;
        std::uint64_t id = 0;
        Fd sock;
        EventPtr readable;
        EventPtr writable;
        std::deque<std::string> outgoing; // frames the socket had no room for yet
    };

    // One accepted request with something to deliver.
    struct Job {
        std::uint64_t connection = 0;
        std::uint64_t request_id = 0;
        DeliveryPlan plan;
        Fd message;
        std::uint64_t content_offset = 0;
        std::uint64_t content_length = 0;
        std::string batch_key; // batch_key(plan): "" for a job delivered alone
    };

    // A delivery process: one job, or a batch of jobs with one batch_key.
    struct Child {
        Impl* impl = nullptr;
        pid_t pid = -1;
        std::vector<Job> jobs;
        Fd report; // read end of the pipe the child writes its result frame to
        EventPtr readable;
        std::string bytes;
        bool too_long = false;
    };

    Impl(const DeliveryContext& ctx, Fd listener, uid_t peer_uid, ServerLimits limits);

    Result<void> run();

    // server.cc
    Result<void> set_up_events();
    void accept_connections();
    void read_frames(Connection& connection);
    Result<void> take_request(Connection& connection, std::string_view bytes, Fd fd);
    void send_result(std::uint64_t connection, std::uint64_t request_id, const std::string& queue_id,
        std::vector<protocol::LeafResult> results);
    void flush(Connection& connection);
    void close_connection(std::uint64_t id, const std::string& why);
    void begin_stop();
    void stop_if_idle();
    void collect_garbage();
    EventPtr new_event(int fd, short what, event_callback_fn callback, void* arg);

    // server_children.cc
    void start_waiting_jobs();
    // The next batch to start: the first waiting job whose key has no child
    // running, with the waiting jobs of the same key behind it.
    std::vector<Job> take_batch();
    void start_child(std::vector<Job> jobs);
    // A job that cannot start: its leaves deferred with `error`.
    void refuse_job(const Job& job, const Error& error);
    [[noreturn]] void child_main(const std::vector<Job>& jobs, const Fd& report);
    void close_inherited_descriptors();
    void read_report(Child& child);
    void finish_child(Child& child);
    void forget_child(Child& child);
    void abandon_child(Child& child);
    void reap_children();

    DeliveryContext ctx;
    Fd listener;
    uid_t peer_uid;
    ServerLimits limits;

    EventBasePtr base;
    EventPtr accept_event;
    EventPtr accept_resume; // accepting paused after an error such as EMFILE
    std::vector<EventPtr> signal_events;
    EventPtr stop_timer;

    std::map<std::uint64_t, std::unique_ptr<Connection>> connections;
    std::deque<Job> waiting;
    std::map<pid_t, std::unique_ptr<Child>> children;
    std::set<std::string> busy_keys; // batch keys with a child running
    // Closed connections and finished children, freed at the next callback:
    // never while one of their own callbacks may still be running.
    std::vector<std::unique_ptr<Connection>> dead_connections;
    std::vector<std::unique_ptr<Child>> dead_children;
    std::uint64_t next_connection = 1;
    bool stopping = false;
};

} // namespace mm::local
