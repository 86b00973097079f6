// SPDX-License-Identifier: GPL-2.0-or-later
// local-deliver's event loop (server.hh): connections from qmgr, deliver
// frames, result frames, and stopping on SIGTERM. Frames come only from
// qmgr's uid (checked on accept) and are still parsed as untrusted: any
// malformed one closes its connection. Linked by local-deliver.
#include "server_impl.hh"

#include "leaf_delivery.hh"

#include "mm/ipc.hh"
#include "mm/limits.hh"
#include "mm/log.hh"
#include "mm/queue_id.hh"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <new>
#include <sys/stat.h>

namespace mm::local {

namespace {

using protocol::LeafResult;

constexpr int frames_per_wakeup = 32; // then other connections get their turn
constexpr int accepts_per_wakeup = 32;
constexpr timeval accept_pause { 1, 0 }; // after EMFILE and its like
constexpr const char* reason_stopping = "local-deliver is stopping";
constexpr const char* reason_busy = "local-deliver is busy";

// Deliverers never write the spool: the message must come read-only, as a
// regular file holding the whole announced range.
Result<void> check_message(const Fd& fd, std::uint64_t offset, std::uint64_t length)
{
    int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || (flags & O_ACCMODE) != O_RDONLY)
        return Error::protocol("the message descriptor is not read-only");
    struct stat st { };
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
        return Error::protocol("the message descriptor is not a regular file");
    std::optional<std::uint64_t> end = checked_add(offset, length);
    if (!end || *end > static_cast<std::uint64_t>(st.st_size))
        return Error::protocol("the message range lies beyond the end of the file");
    return ok();
}

void on_accept(evutil_socket_t, short, void* arg)
{
    auto* impl = static_cast<Server::Impl*>(arg);
    guarded("accept", [&] {
        impl->collect_garbage();
        impl->accept_connections();
    });
}

void on_accept_resume(evutil_socket_t, short, void* arg)
{
    auto* impl = static_cast<Server::Impl*>(arg);
    if (impl->accept_event)
        event_add(impl->accept_event.get(), nullptr);
}

void on_readable(evutil_socket_t, short, void* arg)
{
    auto* connection = static_cast<Server::Impl::Connection*>(arg);
    Server::Impl* impl = connection->impl;
    std::uint64_t id = connection->id;
    bool done = false;
    guarded("connection", [&] {
        impl->collect_garbage();
        impl->read_frames(*connection);
        done = true;
    });
    if (!done)
        impl->close_connection(id, "internal error");
}

void on_writable(evutil_socket_t, short, void* arg)
{
    auto* connection = static_cast<Server::Impl::Connection*>(arg);
    guarded("connection", [&] {
        connection->impl->collect_garbage();
        connection->impl->flush(*connection);
    });
}

void on_stop_signal(evutil_socket_t, short, void* arg)
{
    auto* impl = static_cast<Server::Impl*>(arg);
    guarded("stop", [&] { impl->begin_stop(); });
}

void on_stop_timeout(evutil_socket_t, short, void* arg)
{
    auto* impl = static_cast<Server::Impl*>(arg);
    log::warning("%zu deliveries still running after %llds; not waiting for them", impl->children.size(),
        static_cast<long long>(impl->limits.stop_wait.count()));
    event_base_loopbreak(impl->base.get());
}

void on_child_exit(evutil_socket_t, short, void* arg)
{
    auto* impl = static_cast<Server::Impl*>(arg);
    guarded("children", [&] { impl->reap_children(); });
}

// Approximate size of one result in the frame: three field headers, the
// key, the outcome, the reason.
std::size_t result_size(const LeafResult& result)
{
    return 3 * ipc::field_header_size + result.key.size() + 4 + result.reason.size();
}

} // namespace

std::string encode_result(std::uint64_t request_id, std::vector<LeafResult> results)
{
    if (Result<std::string> frame = protocol::encode_delivery_result(request_id, results))
        return *std::move(frame);
    for (LeafResult& result : results)
        result.reason.clear();
    std::size_t size = ipc::header_size;
    std::size_t fitting = 0;
    while (fitting < results.size() && size + result_size(results[fitting]) <= limits::ipc_frame) {
        size += result_size(results[fitting]);
        ++fitting;
    }
    if (fitting < results.size())
        log::warning("delivery result of request %llu cut to %zu of %zu leaves",
            static_cast<unsigned long long>(request_id), fitting, results.size());
    results.resize(fitting);
    Result<std::string> frame = protocol::encode_delivery_result(request_id, results);
    if (!frame)
        throw std::runtime_error("cannot encode a delivery result: " + frame.error().message());
    return *std::move(frame);
}

Server::Server(const DeliveryContext& ctx, Fd listener, uid_t peer_uid, ServerLimits limits)
    : impl_(std::make_unique<Impl>(ctx, std::move(listener), peer_uid, limits))
{
}

Server::~Server() = default;

Result<void> Server::run()
{
    return impl_->run();
}

Server::Impl::Impl(const DeliveryContext& c, Fd l, uid_t p, ServerLimits lim)
    : ctx(c)
    , listener(std::move(l))
    , peer_uid(p)
    , limits(lim)
{
}

Result<void> Server::Impl::run()
{
    if (Result<void> ready = set_up_events(); !ready)
        return ready;
    log::info("local-deliver starting");
    if (event_base_dispatch(base.get()) < 0)
        return Error::internal("event loop failed");
    log::info("local-deliver quitting");
    return ok();
}

EventPtr Server::Impl::new_event(int fd, short what, event_callback_fn callback, void* arg)
{
    EventPtr ev(event_new(base.get(), fd, what, callback, arg));
    if (!ev)
        throw std::bad_alloc();
    return ev;
}

Result<void> Server::Impl::set_up_events()
{
    base.reset(event_base_new());
    if (!base)
        return Error::internal("cannot create the event loop");
    accept_event = new_event(listener.get(), EV_READ | EV_PERSIST, on_accept, this);
    accept_resume = new_event(-1, 0, on_accept_resume, this);
    // libevent restores the dispositions it found when the loop is freed:
    // let that be "ignore", so that a second SIGTERM while quitting does
    // not kill the process. Children set their own (server_children.cc).
    struct sigaction ignore { };
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGTERM, &ignore, nullptr);
    ::sigaction(SIGINT, &ignore, nullptr);
    // SIGCHLD through the loop as well: children are reaped between events.
    for (int signo : { SIGTERM, SIGINT, SIGCHLD }) {
        event_callback_fn callback = signo == SIGCHLD ? on_child_exit : on_stop_signal;
        signal_events.push_back(new_event(signo, EV_SIGNAL | EV_PERSIST, callback, this));
    }
    if (event_add(accept_event.get(), nullptr) != 0)
        return Error::internal("cannot watch the listening socket");
    for (EventPtr& ev : signal_events)
        if (event_add(ev.get(), nullptr) != 0)
            return Error::internal("cannot watch signals");
    return ok();
}

void Server::Impl::accept_connections()
{
    for (int i = 0; i < accepts_per_wakeup && listener.valid(); ++i) {
        Result<Fd> sock = ipc::accept_seqpacket(listener, ipc::IoMode::nonblocking);
        if (!sock && ipc::is_would_block(sock.error()))
            return;
        if (!sock) {
            log::warning("accept: %s; pausing for a second", sock.error().message().c_str());
            event_del(accept_event.get());
            event_add(accept_resume.get(), &accept_pause);
            return;
        }
        if (Result<void> allowed = ipc::require_peer_uid(*sock, { peer_uid }); !allowed) {
            log::warning("connection refused: %s", allowed.error().message().c_str());
            continue;
        }
        auto connection = std::make_unique<Connection>();
        connection->impl = this;
        connection->id = next_connection++;
        connection->sock = std::move(sock).value();
        connection->readable
            = new_event(connection->sock.get(), EV_READ | EV_PERSIST, on_readable, connection.get());
        connection->writable = new_event(connection->sock.get(), EV_WRITE, on_writable, connection.get());
        event_add(connection->readable.get(), nullptr);
        log::debug(1, "connection %llu from qmgr", static_cast<unsigned long long>(connection->id));
        connections.emplace(connection->id, std::move(connection));
    }
}

void Server::Impl::read_frames(Connection& connection)
{
    std::uint64_t id = connection.id;
    for (int i = 0; i < frames_per_wakeup; ++i) {
        Result<ipc::Received> received = ipc::recv_frame(connection.sock);
        if (!received) {
            close_connection(id, "bad frame: " + received.error().message());
            return;
        }
        if (received->status == ipc::RecvStatus::would_block)
            return;
        if (received->status == ipc::RecvStatus::peer_closed) {
            close_connection(id, "");
            return;
        }
        if (Result<void> taken = take_request(connection, received->bytes, std::move(received->fd)); !taken) {
            close_connection(id, "bad frame: " + taken.error().message());
            return;
        }
        if (!connections.contains(id)) // closed by a failed send
            return;
    }
}

Result<void> Server::Impl::take_request(Connection& connection, std::string_view bytes, Fd fd)
{
    Result<ipc::FrameReader> reader = ipc::FrameReader::parse(bytes, std::move(fd));
    if (!reader)
        return std::move(reader).error();
    Result<protocol::DecodedDeliver> decoded = protocol::decode_deliver(*reader);
    if (!decoded)
        return std::move(decoded).error();
    const protocol::DeliverRequest& request = decoded->request;
    if (!QueueId::parse(request.queue_id))
        return Error::protocol("bad queue id");
    if (Result<void> checked
        = check_message(decoded->message, request.content_offset, request.content_length);
        !checked)
        return checked;

    DeliveryPlan plan = plan_delivery(request, ctx);
    log_answered(plan);
    std::uint64_t request_id = reader->request_id();
    const char* refusal = stopping                                                       ? reason_stopping
        : children.size() >= limits.max_children && waiting.size() >= limits.max_waiting ? reason_busy
                                                                                         : nullptr;
    if (plan.to_deliver.empty() || refusal != nullptr) {
        std::vector<LeafResult> results = refusal != nullptr ? defer_planned(plan, refusal) : plan.answered;
        send_result(connection.id, request_id, plan.queue_id, std::move(results));
        return ok();
    }
    std::string key = batch_key(plan);
    waiting.push_back(Job { connection.id, request_id, std::move(plan), std::move(decoded->message),
        request.content_offset, request.content_length, std::move(key) });
    start_waiting_jobs();
    return ok();
}

void Server::Impl::send_result(std::uint64_t connection, std::uint64_t request_id,
    const std::string& queue_id, std::vector<LeafResult> results)
{
    auto found = connections.find(connection);
    if (found == connections.end()) {
        log::notice("%s: the queue manager's connection is gone; result not sent", queue_id.c_str());
        return;
    }
    found->second->outgoing.push_back(encode_result(request_id, std::move(results)));
    flush(*found->second);
}

void Server::Impl::flush(Connection& connection)
{
    while (!connection.outgoing.empty()) {
        Result<void> sent = ipc::send_frame(connection.sock, connection.outgoing.front());
        if (!sent && ipc::is_would_block(sent.error())) {
            event_add(connection.writable.get(), nullptr);
            return;
        }
        if (!sent) {
            close_connection(connection.id, "send: " + sent.error().message());
            return;
        }
        connection.outgoing.pop_front();
    }
}

void Server::Impl::close_connection(std::uint64_t id, const std::string& why)
{
    auto found = connections.find(id);
    if (found == connections.end())
        return;
    if (!why.empty())
        log::warning("closing connection %llu: %s", static_cast<unsigned long long>(id), why.c_str());
    // Requests not started are dropped: qmgr counts them as deferred now, and
    // delivering them later could only duplicate its retry.
    std::erase_if(waiting, [&](const Job& job) {
        if (job.connection == id)
            log::notice("%s: request dropped with its connection", job.plan.queue_id.c_str());
        return job.connection == id;
    });
    Connection& connection = *found->second;
    event_del(connection.readable.get());
    event_del(connection.writable.get());
    connection.sock.reset();
    dead_connections.push_back(std::move(found->second));
    connections.erase(found);
}

void Server::Impl::begin_stop()
{
    if (stopping)
        return;
    stopping = true;
    log::info("local-deliver stopping: %zu deliveries running, %zu waiting", children.size(), waiting.size());
    accept_event.reset();
    accept_resume.reset();
    listener.reset();
    std::deque<Job> not_started = std::move(waiting);
    waiting.clear();
    for (Job& job : not_started)
        send_result(
            job.connection, job.request_id, job.plan.queue_id, defer_planned(job.plan, reason_stopping));
    if (children.empty()) {
        event_base_loopbreak(base.get());
        return;
    }
    stop_timer = new_event(-1, 0, on_stop_timeout, this);
    timeval wait { static_cast<time_t>(limits.stop_wait.count()), 0 };
    event_add(stop_timer.get(), &wait);
}

void Server::Impl::stop_if_idle()
{
    if (stopping && children.empty())
        event_base_loopbreak(base.get());
}

void Server::Impl::collect_garbage()
{
    dead_connections.clear();
    dead_children.clear();
}

} // namespace mm::local
