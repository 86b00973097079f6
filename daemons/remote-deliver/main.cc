// SPDX-License-Identifier: GPL-2.0-or-later
// remote-deliver: sends queued messages over the routes route-selector chose,
// as qmgr asks on private/remote. Started by the supervisor as
// `remote-deliver -C /abs/masqmail.conf` with private/remote listening on
// descriptor 3; runs as masqmail-remote with no capability until SIGTERM. It
// never opens the spool: each message arrives as a read-only descriptor.
// Route files (and the secrets they name) are read by its workers, one per
// route and next hop, each holding one SMTP connection (worker.hh).
#include "worker.hh"

#include "mm/daemon.hh"
#include "mm/frame_server.hh"
#include "mm/log.hh"
#include "mm/protocol.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <event2/event.h>
#include <fcntl.h>
#include <map>
#include <memory>
#include <set>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace protocol = mm::protocol;

constexpr std::size_t max_workers = 20;       // connections at once (Postfix: default_process_limit 100)
constexpr std::size_t max_per_worker = 10;    // requests handed to one worker ahead of its answers
const timeval idle_close { 2, 0 };            // a worker with nothing to do says QUIT after this

int fail(const char* what, const mm::Error& error)
{
    mm::log::error("%s: %s", what, error.message().c_str());
    (void)std::fprintf(stderr, "remote-deliver: %s: %s\n", what, error.message().c_str());
    return error.exit_code();
}

struct Pending {
    mm::ConnectionPtr client;
    std::uint64_t client_rid = 0;
    std::size_t recipients = 0;
    protocol::RemoteRequest request;
    mm::Fd message;
};

class Dispatcher;

struct Worker {
    Dispatcher* owner = nullptr;
    std::string key;
    std::string route, next_hop;
    pid_t pid = -1;
    mm::Fd sock;
    event* readable = nullptr;
    event* idle = nullptr;
    std::map<std::uint64_t, Pending> sent; // by our request id
};

class Dispatcher {
public:
    Dispatcher(event_base* base, const mm::config::MainConfig& cfg) : base_(base), cfg_(cfg)
    {
        for (const std::string& p : cfg.permanent_routes)
            known_routes_.insert(p);
        for (const auto& [name, list] : cfg.query_routes)
            known_routes_.insert(list.begin(), list.end());
    }
    ~Dispatcher()
    {
        for (auto& [key, w] : workers_)
            release(*w);
    }

    void request(const mm::ConnectionPtr& c, mm::ipc::FrameReader& frame)
    {
        auto decoded = protocol::decode_remote_deliver(frame);
        if (!decoded) {
            mm::log::warning("bad remote delivery request: %s", decoded.error().message().c_str());
            return c->close();
        }
        Pending p { c, frame.request_id(), decoded->request.recipients.size(), std::move(decoded->request),
            std::move(decoded->message) };
        if (known_routes_.count(p.request.route) == 0) {
            // Rule 3: the route must be one the configuration names.
            return answer_all(p, "route " + p.request.route + " is not in the configuration");
        }
        std::string key = p.request.route + '\n' + p.request.next_hop;
        queue_[key].push_back(std::move(p));
        dispatch();
    }

    void reap()
    {
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
            for (auto& [key, w] : workers_)
                if (w->pid == pid) {
                    w->pid = -1;
                    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        mm::log::warning("worker for %s (%s) ended with status %d", w->route.c_str(),
                            w->next_hop.c_str(), status);
                    break;
                }
    }

private:
    void answer_all(const Pending& p, const std::string& reason)
    {
        protocol::RemoteResult r;
        r.recipients.assign(p.recipients, { protocol::LeafOutcome::deferred, reason });
        if (auto frame = protocol::encode_remote_result(p.client_rid, r))
            p.client->send(*frame);
    }

    void dispatch()
    {
        for (auto it = queue_.begin(); it != queue_.end();) {
            auto& [key, waiting] = *it;
            Worker* w = worker_for(key, waiting.front().request);
            while (w != nullptr && !waiting.empty() && w->sent.size() < max_per_worker) {
                Pending p = std::move(waiting.front());
                waiting.pop_front();
                hand(*w, std::move(p));
            }
            it = waiting.empty() ? queue_.erase(it) : std::next(it);
        }
    }

    Worker* worker_for(const std::string& key, const protocol::RemoteRequest& q)
    {
        if (auto it = workers_.find(key); it != workers_.end())
            return it->second.get();
        if (workers_.size() >= max_workers)
            return nullptr;
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
            mm::log::error("socketpair: %s", std::strerror(errno));
            return nullptr;
        }
        mm::Fd ours(sv[0]), theirs(sv[1]);
        const pid_t parent = ::getpid();
        pid_t pid = ::fork();
        if (pid < 0) {
            mm::log::error("cannot start a worker: %s", std::strerror(errno));
            return nullptr;
        }
        if (pid == 0) {
            // The worker keeps its socket alone: no listener, no client, and
            // no other worker's socket (its copy would hide that worker's end).
            for (int sig : { SIGTERM, SIGINT, SIGCHLD, SIGHUP })
                std::signal(sig, SIG_DFL);
            // A worker hung on a silent server (10 minutes for the reply to
            // the final dot) must not outlive remote-deliver when the
            // supervisor kills it at shutdown: the message is still queued.
            if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent)
                ::_exit(1);
            int keep = mm::daemon::first_listen_fd;
            if (::dup2(theirs.get(), keep) < 0)
                ::_exit(1);
            int log_fd = mm::log::file_descriptor();
            if (log_fd > keep) {
                ::close_range(keep + 1, static_cast<unsigned>(log_fd - 1), 0);
                ::close_range(static_cast<unsigned>(log_fd + 1), ~0U, 0);
            } else {
                ::close_range(keep + 1, ~0U, 0);
            }
            (void)ours.release();
            (void)theirs.release();
            mm::remote::run_worker(cfg_, q.route, q.next_hop, mm::Fd(mm::daemon::first_listen_fd));
        }
        auto w = std::make_unique<Worker>();
        w->owner = this;
        w->key = key;
        w->route = q.route;
        w->next_hop = q.next_hop;
        w->pid = pid;
        w->sock = std::move(ours);
        ::fcntl(w->sock.get(), F_SETFL, ::fcntl(w->sock.get(), F_GETFL) | O_NONBLOCK);
        w->readable = event_new(base_, w->sock.get(), EV_READ | EV_PERSIST, &Dispatcher::on_worker, w.get());
        w->idle = evtimer_new(base_, &Dispatcher::on_idle, w.get());
        event_add(w->readable, nullptr);
        Worker* raw = w.get();
        workers_.emplace(key, std::move(w));
        return raw;
    }

    void hand(Worker& w, Pending p)
    {
        std::uint64_t rid = ++last_rid_;
        auto frame = protocol::encode_remote_deliver(rid, p.request);
        if (!frame || !mm::ipc::send_frame(w.sock, *frame, &p.message)) {
            answer_all(p, "remote-deliver could not hand the message to its worker");
            return;
        }
        p.message = mm::Fd(); // the worker has its own copy now
        evtimer_del(w.idle);
        w.sent.emplace(rid, std::move(p));
    }

    void worker_readable(Worker& w)
    {
        for (;;) {
            auto got = mm::ipc::recv_frame(w.sock);
            if (got && got->status == mm::ipc::RecvStatus::would_block)
                break;
            if (!got || got->status == mm::ipc::RecvStatus::peer_closed)
                return worker_gone(w);
            auto frame = mm::ipc::FrameReader::parse(got->bytes);
            auto result = frame ? protocol::decode_remote_result(*frame) : mm::Result<protocol::RemoteResult>(frame.error());
            if (!result)
                return worker_gone(w);
            auto it = w.sent.find(frame->request_id());
            if (it == w.sent.end())
                continue;
            if (auto out = protocol::encode_remote_result(it->second.client_rid, *result))
                it->second.client->send(*out);
            w.sent.erase(it);
        }
        dispatch();
        if (w.sent.empty())
            evtimer_add(w.idle, &idle_close);
    }

    // The worker's socket closed or it sent garbage: whatever it still had is deferred.
    void worker_gone(Worker& w)
    {
        for (auto& [rid, p] : w.sent)
            answer_all(p, "the delivery process for route " + w.route + " ended before answering");
        std::string key = w.key;
        release(w);
        workers_.erase(key);
        dispatch();
    }

    void release(Worker& w)
    {
        event_free(w.readable);
        event_free(w.idle);
        w.sock = mm::Fd(); // the worker reads the end, says QUIT and exits
    }

    void idle(Worker& w)
    {
        if (!w.sent.empty())
            return;
        std::string key = w.key;
        release(w);
        workers_.erase(key);
        dispatch();
    }

    static void on_worker(evutil_socket_t, short, void* arg)
    {
        auto* w = static_cast<Worker*>(arg);
        w->owner->worker_readable(*w);
    }
    static void on_idle(evutil_socket_t, short, void* arg)
    {
        auto* w = static_cast<Worker*>(arg);
        w->owner->idle(*w);
    }

    event_base* base_;
    const mm::config::MainConfig& cfg_;
    std::set<std::string> known_routes_;
    std::map<std::string, std::unique_ptr<Worker>> workers_;
    std::map<std::string, std::deque<Pending>> queue_;
    std::uint64_t last_rid_ = 0;
};

void on_signal(evutil_socket_t, short, void* base)
{
    event_base_loopexit(static_cast<event_base*>(base), nullptr);
}

void on_child(evutil_socket_t, short, void* dispatcher)
{
    static_cast<Dispatcher*>(dispatcher)->reap();
}

} // namespace

int main(int argc, char** argv)
{
    namespace daemon = mm::daemon;

    auto started = daemon::start(argc, argv, "remote-deliver");
    if (!started)
        return fail("start", started.error());
    daemon::common_signals(); // SIGPIPE ignored: TLS writes to a closed peer return an error
    auto listener = daemon::inherited_listener(0); // spool_dir/private/remote
    if (!listener)
        return fail("listener", listener.error());
    auto qmgr = daemon::peer_uid(*started, daemon::queue_user);
    if (!qmgr)
        return fail("queue manager user", qmgr.error());
    if (auto became = daemon::become(*started, daemon::remote_user, {}); !became)
        return fail("privileges", became.error());

    event_base* base = event_base_new();
    {
        Dispatcher dispatcher(base, started->config);
        mm::FrameServer server(base, std::move(listener).value(), std::vector<uid_t> { *qmgr },
            [&](const mm::ConnectionPtr& c, mm::ipc::FrameReader& frame) { dispatcher.request(c, frame); },
            "remote");
        event* term = evsignal_new(base, SIGTERM, on_signal, base);
        event* intr = evsignal_new(base, SIGINT, on_signal, base);
        event* child = evsignal_new(base, SIGCHLD, on_child, &dispatcher);
        for (event* e : { term, intr, child })
            event_add(e, nullptr);
        mm::log::info("remote-deliver started");
        event_base_dispatch(base);
        for (event* e : { term, intr, child })
            event_free(e);
    }
    event_base_free(base);
    while (::waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
    }
    return mm::ex::ok;
}
