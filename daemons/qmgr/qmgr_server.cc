// SPDX-License-Identifier: GPL-2.0-or-later
// The queue manager (qmgr_server.hh). One attempt of a message: open and
// verify the file, read its state, expand each due local recipient's aliases,
// ask local-deliver for the leaves not yet done, and when every answer is in,
// bounce what failed, warn about what waits, and either remove the message
// (every recipient final) or write its new state (rule 1: state first,
// removal last).
#include "qmgr_server.hh"

#include "mm/alias.hh"
#include "mm/alias_expand.hh"
#include "mm/caller.hh"
#include "mm/dsn.hh"
#include "mm/frame_server.hh"
#include "mm/limits.hh"
#include "mm/fs.hh"
#include "mm/maildrop.hh"
#include "mm/log.hh"
#include "mm/protocol.hh"
#include "mm/queue_listing.hh"
#include "mm/recipient.hh"
#include "mm/spool.hh"
#include "mm/sysexits.hh"
#include "mm_build_config.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <deque>
#include <event2/event.h>
#include <fcntl.h>
#include <map>
#include <set>
#include <cstring>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <type_traits>
#include <unistd.h>

namespace mm::qmgr {

namespace {

// "3 days", "5 hours", "12 minutes", "40 seconds": the largest unit that fits.
std::string duration_text(std::int64_t seconds)
{
    struct Unit { std::int64_t size; const char* name; };
    static constexpr Unit units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
    if (seconds < 0)
        seconds = 0;
    for (const Unit& u : units)
        if (seconds >= u.size || u.size == 1) {
            std::int64_t n = seconds / u.size;
            return std::to_string(n) + " " + u.name + (n == 1 ? "" : "s");
        }
    return {};
}

constexpr std::size_t max_in_flight = 100;       // deliver requests outstanding
constexpr std::int64_t min_backoff = 300;        // seconds, doubled per attempt
constexpr std::int64_t max_backoff = 4000;       // as Postfix's maximal_backoff_time
constexpr std::int64_t no_local_deliver_retry = 60;
constexpr int max_listers = 4;            // queue listings running at once
constexpr std::int64_t once_pickup_seconds = 30; // --once waits this long for maildrop/ to be taken
constexpr time_t listing_send_timeout = 30; // seconds a mailq client may stall the listing
constexpr std::size_t dsn_include_limit = 100 * 1024;
constexpr std::int64_t never = INT64_MAX;

std::int64_t now_seconds()
{
    return static_cast<std::int64_t>(std::time(nullptr));
}

std::int64_t backoff(std::uint32_t attempts)
{
    std::int64_t delay = min_backoff;
    for (std::uint32_t i = 1; i < attempts && delay < max_backoff; ++i)
        delay *= 2;
    return std::min(delay, max_backoff);
}

// A remote address of one message: a remote top-level recipient, or a
// remote leaf of a local recipient's aliases (key: its leaf_key). The
// candidates are the routes route-selector named, tried in order.
struct RemoteTarget {
    std::size_t recipient = 0;
    std::string key; // "" for the top-level recipient
    std::string address;
    std::vector<protocol::RouteCandidate> candidates;
    std::size_t stage = 0; // the candidate being tried
};

// A question to route-selector or remote-deliver: the targets it is about.
struct RemoteRequestContext {
    std::string id;
    std::vector<std::size_t> targets; // indices into Job::targets
};

// One deliver request waiting for local-deliver's answer.
struct Request {
    std::string id;
    std::size_t recipient = 0;
    std::vector<std::string> keys;
    bool remote_left = false; // the recipient also has remote leaves
};

// A message qmgr knows about. During an attempt it holds the open file and
// the state being built.
struct Job {
    explicit Job(const QueueId& queue_id) : id(queue_id) {}
    QueueId id;
    std::int64_t next_try = 0;
    bool busy = false;
    bool ready = false; // in Manager::ready_
    bool forced = false;
    bool remove_requested = false;
    std::optional<OpenMessage> message;
    DeliveryState state;
    DeliveryState state_read; // as read at the start of the attempt
    std::size_t outstanding = 0;
    // The attempt's remote side.
    bool remote_only = false; // runq -qo: local recipients wait for the next -q
    std::optional<std::string> connection; // runq -qo NAME
    std::vector<RemoteTarget> targets;
    bool route_tried = false; // a route attempted one of the targets
    std::vector<bool> remote; // per recipient: has a remote target this attempt
    std::vector<bool> stamped; // per recipient: a route attempted it this attempt
    std::vector<std::vector<std::string>> leaf_keys; // per local recipient: its alias leaves
};

template <class Map> std::vector<std::uint64_t> keys_of(const Map& requests)
{
    std::vector<std::uint64_t> ids;
    for (const auto& entry : requests)
        ids.push_back(entry.first);
    return ids;
}

// A daemon qmgr sends requests to over a private socket, connected when
// first needed and again after it went away.
struct Peer {
    const char* name;
    event_callback_fn on_readable;
    Fd sock;
    event* ev = nullptr;

    bool connect(event_base* base, const std::string& path, void* manager)
    {
        if (sock.valid())
            return true;
        auto s = ipc::connect_seqpacket(path, ipc::IoMode::nonblocking);
        if (!s)
            return false;
        sock = std::move(s).value();
        ev = event_new(base, sock.get(), EV_READ | EV_PERSIST, on_readable, manager);
        event_add(ev, nullptr);
        return true;
    }
    void close()
    {
        if (ev != nullptr)
            event_free(ev);
        ev = nullptr;
        sock = Fd();
    }
};

struct Run {
    ConnectionPtr client; // null for the periodic run and --once
    std::uint64_t request_id = 0;
    std::set<std::string> waiting;
};

// Time between two attempts that counts as online at most (online_seconds):
// the longest retry interval. Offline time is never counted beyond it.
constexpr std::int64_t max_online_step = max_backoff;
// A new pass (route-selector runs online_query again) at least this often.
constexpr std::int64_t pass_seconds = 60;

bool leaf_finished(const RecipientProgress& p, const std::string& key)
{
    return std::any_of(p.finished_leaves.begin(), p.finished_leaves.end(),
        [&](const FinishedLeaf& f) { return f.key == key; });
}

bool any_leaf_failed(const RecipientProgress& p)
{
    return std::any_of(
        p.finished_leaves.begin(), p.finished_leaves.end(), [](const FinishedLeaf& f) { return !f.delivered; });
}

// errmsg_file / warnmsg_file; "" (the built-in text) when unset or unreadable.
std::string read_template(const std::string& path)
{
    if (path.empty())
        return {};
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) {
        bool default_missing = errno == ENOENT && path.starts_with(MM_DATADIR "/tpl/");
        if (!default_missing) // one the administrator named: say why it is not used
            log::warning("template %s cannot be read (%s); using the built-in text", path.c_str(),
                std::strerror(errno));
        return {};
    }
    auto text = read_all(fd, 64 * 1024);
    if (!text) {
        log::error("template %s: %s", path.c_str(), text.error().message().c_str());
        return {};
    }
    return std::move(text).value();
}

class Manager {
public:
    Manager(const daemon::Started& started, Spool spool, event_base* base, uid_t queue_uid)
        : started_(started), cfg_(started.config), spool_(std::move(spool)), base_(base), queue_uid_(queue_uid)
    {
        load_aliases();
        fail_template_ = read_template(cfg_.errmsg_file);
        warn_template_ = read_template(cfg_.warnmsg_file);
    }

    ~Manager()
    {
        local_.close();
        route_.close();
        remote_.close();
    }
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;

    // --- entry points from the event loop ---

    void start()
    {
        claim_new();
        pump();
    }

    void new_message(const std::string& text)
    {
        if (auto id = QueueId::parse(text))
            claim_one(*id);
        pump();
    }

    // A queue run: everything in new/ and queue/ is tried now.
    // `connection`: runq -qo NAME, a remote-only run through NAME's routes.
    void start_run(ConnectionPtr client, std::uint64_t request_id,
        const std::optional<std::string>& connection = std::nullopt)
    {
        claim_new();
        new_pass();
        Run run{std::move(client), request_id, {}};
        for (auto& [key, job] : jobs_) {
            run.waiting.insert(key);
            job.forced = true;
            if (!job.busy) {
                job.remote_only = connection.has_value();
                job.connection = connection;
            }
            make_ready(job);
        }
        runs_.push_back(std::move(run));
        finish_runs();
        pump();
    }

    void tick()
    {
        if (now_seconds() - pass_started_ >= pass_seconds)
            new_pass();
        reap_listers();
        claim_incoming();
        std::int64_t now = now_seconds();
        for (auto& [key, job] : jobs_)
            if (job.next_try <= now)
                make_ready(job);
        pump();
        if (started_.options.once)
            finish_runs(); // the wait for maildrop/ may be over
    }

    void control(const ConnectionPtr& c, ipc::FrameReader& frame)
    {
        std::optional<uid_t> owner;
        if (started_.private_instance)
            owner = started_.instance_uid;
        Caller caller = identify_caller(c->peer().uid, owner);
        bool privileged = caller.privileged || c->peer().uid == queue_uid_;
        switch (frame.type()) {
        case ipc::MessageType::run_queue:
            if (!frame.finish())
                return c->close();
            if (!privileged)
                return reply(c, frame.request_id(),
                    Error::permanent("only root, mail or the instance's owner may run the queue").exit_as(ex::noperm));
            log::info("queue run requested by %s", caller.login.c_str());
            return start_run(c, frame.request_id());
        case ipc::MessageType::run_route: {
            auto name = protocol::decode_run_route(frame);
            if (!name)
                return c->close();
            if (!privileged)
                return reply(c, frame.request_id(),
                    Error::permanent("only root, mail or the instance's owner may run the queue").exit_as(ex::noperm));
            log::info("queue run for connection %s requested by %s", name->c_str(), caller.login.c_str());
            return start_run(c, frame.request_id(), *name);
        }
        case ipc::MessageType::remove_message: {
            auto ids = protocol::decode_remove(frame);
            if (!ids)
                return c->close();
            return reply(c, frame.request_id(), remove(*ids, caller, privileged));
        }
        case ipc::MessageType::queue_list:
            if (!frame.finish())
                return c->close();
            return list_queue(c, frame.request_id(), ListingViewer{privileged, c->peer().uid});
        default:
            return c->close();
        }
    }

    // mailq for those who cannot read the spool. Reading every message may
    // take a while with a long queue: a child process does it and sends the
    // frames on the connection, which this process then lets go of; the loop
    // goes on meanwhile. Children are reaped by tick().
    void list_queue(const ConnectionPtr& c, std::uint64_t request_id, const ListingViewer& viewer)
    {
        reap_listers();
        if (listers_ >= max_listers) {
            auto busy = protocol::encode_queue_list_end(
                request_id, Error::temporary("too many queue listings at once; try again").exit_as(ex::tempfail));
            if (busy)
                c->send(*busy);
            return;
        }
        pid_t pid = ::fork();
        if (pid < 0) {
            log::warning("cannot fork for a queue listing: %s", std::strerror(errno));
            return c->close();
        }
        if (pid == 0)
            send_listing(c->socket(), request_id, viewer);
        ++listers_;
        c->close();
    }

    [[noreturn]] void send_listing(const Fd& sock, std::uint64_t request_id, const ListingViewer& viewer)
    {
        int status = 0;
        try {
            ::fcntl(sock.get(), F_SETFL, ::fcntl(sock.get(), F_GETFL) & ~O_NONBLOCK);
            timeval limit{listing_send_timeout, 0};
            ::setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
            auto listing = read_queue_listing(spool_, viewer, cfg_);
            Result<void> sent = ok();
            if (listing) {
                for (const protocol::ListedMessage& m : *listing) {
                    auto frames = protocol::encode_queue_list_entry(request_id, m);
                    if (!frames) {
                        log::warning("%s: not listed: %s", m.id.c_str(), frames.error().message().c_str());
                        continue;
                    }
                    for (const std::string& frame : *frames)
                        if (sent = ipc::send_frame(sock, frame); !sent)
                            break;
                    if (!sent)
                        break;
                }
            }
            if (sent) {
                auto end = protocol::encode_queue_list_end(
                    request_id, listing ? ok() : Result<void>(listing.error()));
                sent = end ? ipc::send_frame(sock, *end) : Result<void>(end.error());
            }
            if (!sent)
                status = 1;
        } catch (...) {
            status = 1;
        }
        ::_exit(status);
    }

    void reap_listers()
    {
        int status = 0;
        while (listers_ > 0 && ::waitpid(-1, &status, WNOHANG) > 0)
            --listers_;
    }

    // Every answer waiting on `peer`, each decoded and handed on; a closed
    // connection or a bad frame closes it, and `lost` answers what it had.
    template <class Decode, class OnAnswer, class Lost>
    void read_answers(Peer& peer, Decode decode, OnAnswer on_answer, Lost lost)
    {
        using Decoded = std::invoke_result_t<Decode, ipc::FrameReader&>;
        for (;;) {
            auto got = ipc::recv_frame(peer.sock);
            if (got && got->status == ipc::RecvStatus::would_block)
                return;
            std::string why = got ? "connection closed" : got.error().message();
            if (got && got->status == ipc::RecvStatus::frame) {
                auto frame = ipc::FrameReader::parse(got->bytes);
                Decoded value = frame ? decode(*frame) : Decoded(frame.error());
                if (value) {
                    on_answer(frame->request_id(), *value);
                    continue;
                }
                why = "bad answer: " + value.error().message();
            }
            log::warning("lost the connection to %s: %s", peer.name, why.c_str());
            peer.close();
            lost();
            return;
        }
    }

    void local_readable()
    {
        read_answers(local_, protocol::decode_delivery_result,
            [this](std::uint64_t rid, const std::vector<protocol::LeafResult>& leaves) { answer(rid, leaves, ""); },
            [this] {
                std::vector<protocol::LeafResult> none;
                for (std::uint64_t rid : keys_of(requests_))
                    answer(rid, none, "local-deliver went away during the delivery");
            });
    }

    // Answers from route-selector; a lost connection leaves what it had waiting for a route.
    void route_readable()
    {
        read_answers(route_, protocol::decode_route_answer,
            [this](std::uint64_t rid, const protocol::RouteAnswer& a) { route_answered(rid, &a, ""); },
            [this] {
                for (std::uint64_t rid : keys_of(route_requests_))
                    route_answered(rid, nullptr, "route-selector went away");
            });
    }

    void remote_readable()
    {
        read_answers(remote_, protocol::decode_remote_result,
            [this](std::uint64_t rid, const protocol::RemoteResult& r) { remote_answered(rid, &r, ""); },
            [this] {
                for (std::uint64_t rid : keys_of(remote_requests_))
                    remote_answered(rid, nullptr, "remote-deliver went away during the delivery");
            });
    }

    bool once_done() const { return started_.options.once && runs_.empty(); }

    // --once (runq without the daemons): enqueue commits postdrop's files
    // from maildrop/ when it starts, perhaps after this run found the queue
    // empty; the run waits for them (at most once_pickup_seconds), so that
    // mail sendmail handed to postdrop goes out with this run.
    bool drops_waiting() const
    {
        if (!started_.options.once || now_seconds() - once_started_ > once_pickup_seconds)
            return false;
        auto names = list_dir(spool_.area(SpoolArea::maildrop), limits::queue_entries_scanned);
        return names && std::any_of(names->begin(), names->end(),
                            [](const std::string& n) { return maildrop::is_drop_name(n); });
    }

private:
    // --- the queue ---

    void load_aliases()
    {
        config::Diagnostics diag;
        // As local-deliver reads them: a bad item fails the recipients that reach it.
        auto keep = config::BadItems::keep;
        if (cfg_.alias_file)
            plain_ = config::read_alias_file(*cfg_.alias_file, config::AliasFileKind::plain, cfg_.host_name, diag, keep);
        if (cfg_.globalias_file)
            glob_ = config::read_alias_file(*cfg_.globalias_file, config::AliasFileKind::glob, cfg_.host_name, diag, keep);
        if (diag.has_errors())
            log::error("alias files have errors; recipients using a bad entry fail; see masqmail -bi");
    }

    AliasTables tables() const
    {
        return AliasTables{glob_ ? &*glob_ : nullptr, plain_ ? &*plain_ : nullptr};
    }

    void add_job(const QueueId& id, std::int64_t next_try)
    {
        auto [it, fresh] = jobs_.try_emplace(id.str(), id);
        if (fresh)
            it->second.next_try = next_try;
        if (it->second.next_try <= now_seconds())
            make_ready(it->second);
    }

    void make_ready(Job& job)
    {
        if (job.busy || job.ready)
            return;
        job.ready = true;
        ready_.push_back(job.id.str());
    }

    // Claims one message of new/ (enqueue's notice, or found there) and
    // makes it due now.
    void claim_one(const QueueId& id)
    {
        if (auto claimed = spool_.claim_for_delivery(id); !claimed) {
            if (claimed.error().sys_errno() != ENOENT)
                log::warning("%s: cannot claim: %s", id.c_str(), claimed.error().message().c_str());
            return;
        }
        add_job(id, 0);
        for (Run& run : runs_)
            if (run.client == nullptr)
                run.waiting.insert(id.str()); // --once: mail made during the run is part of it
    }

    // new/ holds only mail to deliver at once (queue-only mail is committed
    // to queue/): what is there when enqueue's notice was lost (enqueue
    // killed between its commit and the notice) is claimed here, every tick.
    void claim_incoming()
    {
        auto names = list_dir(spool_.area(SpoolArea::incoming), limits::queue_entries_scanned);
        if (!names) {
            log::error("cannot list new/: %s", names.error().message().c_str());
            return;
        }
        for (const std::string& name : *names)
            if (auto id = QueueId::parse(name))
                claim_one(*id);
    }

    // Claims everything in new/ and learns every message in queue/.
    void claim_new()
    {
        auto listing = spool_.list_queue();
        if (!listing) {
            log::error("cannot list the queue: %s", listing.error().message().c_str());
            return;
        }
        for (const QueueEntry& e : listing->messages) {
            if (e.area == SpoolArea::incoming) {
                if (auto claimed = spool_.claim_for_delivery(e.id); !claimed) {
                    log::warning("%s: cannot claim: %s", e.id.c_str(), claimed.error().message().c_str());
                    continue;
                }
            }
            add_job(e.id, 0);
        }
        for (const QueueId& orphan : listing->orphan_states)
            (void)spool_.remove_message(orphan);
    }

    void pump()
    {
        while (!ready_.empty() && in_flight_ < max_in_flight) {
            std::string key = ready_.front();
            ready_.pop_front();
            auto it = jobs_.find(key);
            if (it == jobs_.end())
                continue;
            it->second.ready = false;
            if (!it->second.busy)
                begin_attempt(it->second);
        }
    }

    void begin_attempt(Job& job)
    {
        job.busy = true;
        auto opened = spool_.open_for_delivery(job.id, SpoolArea::queue);
        if (!opened) {
            if (opened.error().is_temporary() && opened.error().sys_errno() != ENOENT) {
                log::warning("%s: %s", job.id.c_str(), opened.error().message().c_str());
                job.busy = false;
                job.next_try = now_seconds() + no_local_deliver_retry;
                return;
            }
            forget(job.id.str()); // removed, or quarantined as corrupt
            return;
        }
        job.message = std::move(opened).value();
        const Envelope& env = job.message->message.envelope;
        auto state = spool_.read_state(job.id, env.recipients.size());
        if (!state) {
            log::warning("%s: %s", job.id.c_str(), state.error().message().c_str());
            job.message.reset();
            if (state.error().is_temporary()) {
                job.busy = false;
                job.next_try = now_seconds() + no_local_deliver_retry;
            } else {
                forget(job.id.str());
            }
            return;
        }
        job.state = std::move(state).value();
        job.state_read = job.state;
        std::int64_t now = now_seconds();
        // Every recipient is expanded, due or not, so that a leaf two of them
        // share goes to the first one only, on every attempt alike (To: bob
        // and an alias that includes bob: bob gets one copy).
        std::vector<Result<Expansion>> expansions;
        for (const auto& rcpt : env.recipients)
            expansions.push_back(expand_aliases(rcpt.address, tables(), cfg_));
        drop_duplicate_leaves(expansions, cfg_);
        job.targets.clear();
        job.route_tried = false;
        job.remote.assign(env.recipients.size(), false);
        job.stamped.assign(env.recipients.size(), false);
        job.leaf_keys.assign(env.recipients.size(), {});
        for (std::size_t i = 0; i < env.recipients.size(); ++i) {
            RecipientProgress& p = job.state.recipients[i];
            if (p.state != RecipientState::pending || (!job.forced && p.next_attempt > now))
                continue;
            collect_remote(job, i, expansions[i]);
            if (!job.remote_only)
                plan_recipient(job, i, expansions[i], now);
        }
        if (!job.targets.empty())
            ask_routes(job);
        if (job.outstanding == 0)
            finish_attempt(job);
    }

    // --- remote recipients: route-selector, then remote-deliver ---

    void new_pass()
    {
        ++pass_;
        pass_started_ = now_seconds();
    }

    // The remote addresses of recipient i: itself when it is not local, else
    // the remote leaves of its aliases not yet done.
    void collect_remote(Job& job, std::size_t i, const Result<Expansion>& expansion)
    {
        const Address& rcpt = job.message->message.envelope.recipients[i].address;
        const RecipientProgress& p = job.state.recipients[i];
        if (!is_local(rcpt, cfg_)) {
            job.targets.push_back({ i, "", rcpt.str(), {}, 0 });
            job.remote[i] = true;
            return;
        }
        if (!expansion)
            return;
        for (const AliasLeaf& leaf : expansion->leaves) {
            std::string key = leaf_key(leaf, cfg_.caseless_matching);
            job.leaf_keys[i].push_back(key);
            if (leaf.local || leaf.kind != LeafKind::remote || leaf_finished(p, key))
                continue;
            job.targets.push_back({ i, std::move(key), leaf.address.str(), {}, 0 });
            job.remote[i] = true;
        }
    }

    void ask_routes(Job& job)
    {
        const StoredMessage& m = job.message->message;
        protocol::RouteQuery q;
        q.pass = pass_;
        q.connection = job.connection;
        q.queue_id = job.id.str();
        q.sender = m.envelope.return_path.is_null() ? "" : m.envelope.return_path.str();
        RemoteRequestContext ctx { job.id.str(), {} };
        for (std::size_t k = 0; k < job.targets.size(); ++k) {
            q.recipients.push_back(job.targets[k].address);
            ctx.targets.push_back(k);
        }
        q.content_offset = m.layout.offset;
        q.header_length = m.layout.header_length;
        std::uint64_t rid = ++last_request_;
        auto frame = protocol::encode_route_query(rid, q);
        bool sent = frame && route_.connect(base_, cfg_.spool_dir + "/private/route", this)
            && ipc::send_frame(route_.sock, *frame, &job.message->fd);
        job.outstanding++;
        in_flight_++;
        route_requests_.emplace(rid, std::move(ctx));
        if (!sent)
            route_answered(rid, nullptr, frame ? "route-selector is not running" : frame.error().message());
    }

    void route_answered(std::uint64_t rid, const protocol::RouteAnswer* answer, const std::string& error)
    {
        auto rit = route_requests_.find(rid);
        if (rit == route_requests_.end())
            return;
        RemoteRequestContext ctx = std::move(rit->second);
        route_requests_.erase(rit);
        in_flight_--;
        auto jit = jobs_.find(ctx.id);
        if (jit == jobs_.end())
            return;
        Job& job = jit->second;
        std::vector<std::size_t> routed;
        for (std::size_t j = 0; j < ctx.targets.size(); ++j) {
            RemoteTarget& t = job.targets[ctx.targets[j]];
            RecipientProgress& p = job.state.recipients[t.recipient];
            if (answer != nullptr && j < answer->recipients.size())
                t.candidates = answer->recipients[j].candidates;
            if (!t.candidates.empty()) {
                routed.push_back(ctx.targets[j]);
                continue;
            }
            // No route now: it waits, and the wait is not counted (rule 7).
            std::string why = answer == nullptr ? error
                : j < answer->recipients.size() ? answer->recipients[j].reason : "route-selector gave no answer";
            p.last_error = sanitize_error_text("waiting for a route: " + why);
        }
        if (!routed.empty())
            send_remote(job, routed);
        if (--job.outstanding == 0)
            finish_attempt(job);
        pump();
    }

    // One remote_deliver request per route and next hop the targets take now.
    void send_remote(Job& job, const std::vector<std::size_t>& targets)
    {
        std::map<std::pair<std::string, std::string>, std::vector<std::size_t>> groups;
        for (std::size_t k : targets) {
            const protocol::RouteCandidate& c = job.targets[k].candidates[job.targets[k].stage];
            groups[{ c.route, c.next_hop }].push_back(k);
        }
        const StoredMessage& m = job.message->message;
        for (auto& [hop, members] : groups) {
            protocol::RemoteRequest q;
            q.queue_id = job.id.str();
            q.route = hop.first;
            q.next_hop = hop.second;
            q.return_path = m.envelope.return_path.is_null() ? "" : m.envelope.return_path.str();
            for (std::size_t k : members)
                q.recipients.push_back(job.targets[k].address);
            q.eight_bit_mime = m.envelope.eight_bit_mime;
            q.content_offset = m.layout.offset;
            q.content_length = m.layout.length;
            std::uint64_t rid = ++last_request_;
            auto frame = protocol::encode_remote_deliver(rid, q);
            bool sent = frame && remote_.connect(base_, cfg_.spool_dir + "/private/remote", this)
                && ipc::send_frame(remote_.sock, *frame, &job.message->fd);
            job.outstanding++;
            in_flight_++;
            remote_requests_.emplace(rid, RemoteRequestContext { job.id.str(), members });
            if (!sent)
                remote_answered(rid, nullptr, frame ? "remote-deliver is not running" : frame.error().message());
        }
    }

    void remote_answered(std::uint64_t rid, const protocol::RemoteResult* result, const std::string& error)
    {
        auto rit = remote_requests_.find(rid);
        if (rit == remote_requests_.end())
            return;
        RemoteRequestContext ctx = std::move(rit->second);
        remote_requests_.erase(rit);
        in_flight_--;
        auto jit = jobs_.find(ctx.id);
        if (jit == jobs_.end())
            return;
        Job& job = jit->second;
        job.route_tried = true;
        std::int64_t now = now_seconds();
        std::vector<std::size_t> next_route;
        for (std::size_t j = 0; j < ctx.targets.size(); ++j) {
            RemoteTarget& t = job.targets[ctx.targets[j]];
            RecipientProgress& p = job.state.recipients[t.recipient];
            protocol::RemoteRecipientResult r { protocol::LeafOutcome::deferred,
                error.empty() ? "no answer from remote-deliver" : error };
            if (result != nullptr && j < result->recipients.size())
                r = result->recipients[j];
            if (!job.stamped[t.recipient]) {
                stamp(p, now);
                job.stamped[t.recipient] = true;
            }
            const char* to = t.address.c_str();
            switch (r.outcome) {
            case protocol::LeafOutcome::delivered:
                if (t.key.empty())
                    p.state = RecipientState::delivered;
                else
                    p.finished_leaves.push_back({ t.key, true });
                break;
            case protocol::LeafOutcome::failed:
                p.last_error = sanitize_error_text(r.reason);
                if (t.key.empty())
                    p.state = RecipientState::failed;
                else
                    p.finished_leaves.push_back({ t.key, false });
                log::notice("%s failed <%s>: %s", job.id.c_str(), to, p.last_error.c_str());
                break;
            case protocol::LeafOutcome::deferred:
                if (t.stage + 1 < t.candidates.size()) {
                    ++t.stage; // the next route that takes it, in this attempt (masqmail)
                    next_route.push_back(ctx.targets[j]);
                    break;
                }
                p.last_error = sanitize_error_text(r.reason);
                p.next_attempt = now + backoff(p.attempts);
                log::info("%s deferred <%s>: %s", job.id.c_str(), to, p.last_error.c_str());
                break;
            }
        }
        if (!next_route.empty())
            send_remote(job, next_route);
        if (--job.outstanding == 0)
            finish_attempt(job);
        pump();
    }

    // A local recipient whose every alias leaf is done (some remotely) is final.
    void settle(Job& job)
    {
        for (std::size_t i = 0; i < job.state.recipients.size(); ++i) {
            RecipientProgress& p = job.state.recipients[i];
            if (p.state != RecipientState::pending || !job.remote[i] || job.leaf_keys[i].empty())
                continue;
            bool all_done = std::all_of(job.leaf_keys[i].begin(), job.leaf_keys[i].end(),
                [&](const std::string& key) { return leaf_finished(p, key); });
            if (all_done)
                p.state = any_leaf_failed(p) ? RecipientState::failed : RecipientState::delivered;
        }
    }

    // Time queued while a route for the message was online: the time since
    // the last attempt a route made, at most max_online_step (the time
    // between two attempts of a host that stayed online).
    void count_online_time(Job& job, std::int64_t now)
    {
        if (!job.route_tried)
            return;
        std::int64_t previous = 0;
        for (std::size_t i = 0; i < job.stamped.size(); ++i)
            if (job.stamped[i] && job.remote[i])
                previous = std::max(previous, job.state_read.recipients[i].last_attempt);
        if (previous > 0 && now > previous)
            job.state.online_seconds += std::min(now - previous, max_online_step);
    }

    // Whether recipient i's delay counts in online time (it goes through routes).
    bool counts_online(const Job& job, std::size_t i) const
    {
        return !is_local(job.message->message.envelope.recipients[i].address, cfg_)
            || (i < job.remote.size() && job.remote[i]);
    }

    void plan_recipient(Job& job, std::size_t i, const Result<Expansion>& expansion, std::int64_t now)
    {
        const Envelope& env = job.message->message.envelope;
        const Address& rcpt = env.recipients[i].address;
        RecipientProgress& p = job.state.recipients[i];
        if (!is_local(rcpt, cfg_))
            return; // waits for a route (the routes issue); nothing was attempted, nothing to record
        if (!expansion) {
            p.state = RecipientState::failed;
            p.last_error = sanitize_error_text(expansion.error().message());
            stamp(p, now);
            log::notice("%s failed %s: %s", job.id.c_str(), rcpt.str().c_str(), p.last_error.c_str());
            return;
        }
        Request req{job.id.str(), i, {}, false};
        for (const AliasLeaf& leaf : expansion->leaves) {
            std::string key = leaf_key(leaf, cfg_.caseless_matching);
            if (leaf_finished(p, key))
                continue;
            if (!leaf.local)
                req.remote_left = true;
            else
                req.keys.push_back(std::move(key));
        }
        if (req.keys.empty()) {
            if (req.remote_left) {
                p.last_error = "an alias leads to a remote address: waiting for a route";
            } else {
                p.state = any_leaf_failed(p) ? RecipientState::failed : RecipientState::delivered;
                stamp(p, now);
            }
            return;
        }
        send_request(job, std::move(req));
    }

    static void stamp(RecipientProgress& p, std::int64_t now)
    {
        p.attempts++;
        if (p.first_attempt == 0)
            p.first_attempt = now;
        p.last_attempt = now;
    }

    void send_request(Job& job, Request req)
    {
        const StoredMessage& m = job.message->message;
        protocol::DeliverRequest d;
        d.queue_id = job.id.str();
        d.return_path = m.envelope.return_path.is_null() ? "" : m.envelope.return_path.str();
        d.recipient = m.envelope.recipients[req.recipient].address.str();
        d.leaves = req.keys;
        d.ident = m.envelope.ident;
        d.received_host = m.envelope.peer_address;
        d.content_offset = m.layout.offset;
        d.content_length = m.layout.length;
        std::uint64_t rid = ++last_request_;
        auto frame = protocol::encode_deliver(rid, d);
        bool sent = frame && local_.connect(base_, cfg_.spool_dir + "/private/local", this)
            && ipc::send_frame(local_.sock, *frame, &job.message->fd);
        job.outstanding++;
        in_flight_++;
        requests_.emplace(rid, std::move(req));
        if (!sent) {
            std::vector<protocol::LeafResult> none;
            answer(rid, none, frame ? "local-deliver is not running" : frame.error().message());
        }
    }

    // local-deliver's answer to one request; keys it does not mention are deferred with `missing`.
    void answer(std::uint64_t rid, const std::vector<protocol::LeafResult>& leaves, const std::string& missing)
    {
        auto rit = requests_.find(rid);
        if (rit == requests_.end())
            return;
        Request req = std::move(rit->second);
        requests_.erase(rit);
        in_flight_--;
        auto jit = jobs_.find(req.id);
        if (jit == jobs_.end())
            return;
        Job& job = jit->second;
        RecipientProgress& p = job.state.recipients[req.recipient];
        const Address& rcpt = job.message->message.envelope.recipients[req.recipient].address;
        std::int64_t now = now_seconds();
        std::string deferral;
        bool all_done = true;
        for (const std::string& key : req.keys) {
            auto it = std::find_if(leaves.begin(), leaves.end(), [&](const auto& l) { return l.key == key; });
            if (it == leaves.end()) {
                all_done = false;
                deferral = missing.empty() ? "no answer from local-deliver" : missing;
            } else if (it->outcome == protocol::LeafOutcome::deferred) {
                all_done = false;
                deferral = it->reason;
            } else {
                p.finished_leaves.push_back({key, it->outcome == protocol::LeafOutcome::delivered});
                if (it->outcome == protocol::LeafOutcome::failed)
                    p.last_error = sanitize_error_text(it->reason);
            }
        }
        stamp(p, now);
        if (all_done && !req.remote_left) {
            p.state = any_leaf_failed(p) ? RecipientState::failed : RecipientState::delivered;
        } else if (!all_done) {
            p.last_error = sanitize_error_text(deferral);
            p.next_attempt = now + (missing.empty() ? backoff(p.attempts) : no_local_deliver_retry);
            log::info("%s deferred %s: %s", job.id.c_str(), rcpt.str().c_str(), p.last_error.c_str());
        }
        if (--job.outstanding == 0)
            finish_attempt(job);
        pump();
    }

    // --- the end of an attempt ---

    void finish_attempt(Job& job)
    {
        std::int64_t now = now_seconds();
        const StoredMessage& m = job.message->message;
        settle(job);
        count_online_time(job, now);
        expire(job, now);
        bounce(job, now);
        warn(job, now);
        std::string key = job.id.str();
        if (job.state.all_final() || job.remove_requested) {
            if (auto removed = spool_.remove_message(job.id); !removed) {
                log::error("%s: cannot remove: %s", job.id.c_str(), removed.error().message().c_str());
                job.next_try = now + no_local_deliver_retry;
            } else {
                log::info("%s %s", job.id.c_str(), job.remove_requested ? "removed" : "completed");
                forget(key);
                return;
            }
        } else if (job.state == job.state_read) {
            // Nothing was attempted (remote recipients waiting for a route): no write.
        } else if (auto written = spool_.write_state(job.id, job.state); !written) {
            log::error("%s: cannot write state: %s", job.id.c_str(), written.error().message().c_str());
        }
        // A recipient that was attempted and deferred is tried again at its
        // next_attempt; one that no route took (offline) or that a -qo run
        // left alone waits for the next queue run (masqmail).
        job.next_try = never;
        for (std::size_t i = 0; i < m.envelope.recipients.size(); ++i) {
            const RecipientProgress& p = job.state.recipients[i];
            if (p.state == RecipientState::failed)
                job.next_try = std::min(job.next_try, now + no_local_deliver_retry); // DSN not yet accepted
            else if (p.state == RecipientState::pending && p.next_attempt > now)
                job.next_try = std::min(job.next_try, p.next_attempt);
        }
        job.message.reset();
        job.targets.clear();
        job.busy = false;
        job.forced = false;
        job.remote_only = false;
        job.connection.reset();
        attempt_done(key);
    }

    void forget(const std::string& key)
    {
        jobs_.erase(key);
        attempt_done(key);
    }

    void attempt_done(const std::string& key)
    {
        for (Run& run : runs_)
            run.waiting.erase(key);
        finish_runs();
    }

    void finish_runs()
    {
        for (auto it = runs_.begin(); it != runs_.end();) {
            if (it->waiting.empty() && started_.options.once)
                adopt_new(*it); // bounces made during the run are part of it
            if (!it->waiting.empty() || (it->client == nullptr && drops_waiting())) {
                ++it;
                continue;
            }
            if (it->client)
                reply(it->client, it->request_id, Result<void>());
            it = runs_.erase(it);
        }
        if (once_done())
            event_base_loopexit(base_, nullptr);
    }

    void adopt_new(Run& run)
    {
        std::size_t known = jobs_.size();
        claim_new();
        if (jobs_.size() == known)
            return;
        for (auto& [key, job] : jobs_)
            if (!job.busy && job.next_try <= now_seconds()) {
                run.waiting.insert(key);
                make_ready(job);
            }
    }

    // Recipients deferred for longer than max_defer_time fail: local ones
    // counted from their first attempt, remote ones in the time a route was
    // online (time offline never counts, DESIGN rule 7).
    void expire(Job& job, std::int64_t now)
    {
        for (std::size_t i = 0; i < job.state.recipients.size(); ++i) {
            RecipientProgress& p = job.state.recipients[i];
            if (p.state != RecipientState::pending || p.first_attempt == 0)
                continue;
            bool online = counts_online(job, i);
            if (online && !job.stamped[i])
                continue; // not attempted by a route now: nothing new is known
            std::int64_t delay = online ? job.state.online_seconds : now - p.first_attempt;
            if (expired(std::chrono::seconds(delay), cfg_.max_defer_time)) {
                p.state = RecipientState::failed;
                p.last_error = sanitize_error_text("gave up after " + duration_text(delay)
                    + (online ? " of trying while online" : "") + ": " + p.last_error);
            }
        }
    }

    DsnInput dsn_input(const Job& job, DsnKind kind, std::int64_t now)
    {
        const StoredMessage& m = job.message->message;
        DsnInput in;
        in.kind = kind;
        in.host_name = cfg_.host_name;
        in.reporting_mta_version = std::string("masqmail ") + MM_VERSION;
        in.original_queue_id = job.id.str();
        in.original_sender = m.envelope.return_path;
        in.arrival_time = static_cast<std::time_t>(m.envelope.received_time);
        in.now = static_cast<std::time_t>(now);
        in.include_limit = dsn_include_limit;
        in.to_postmaster = m.envelope.return_path.is_null();
        in.received_host = m.envelope.peer_address;
        in.ident = m.envelope.ident;
        return in;
    }

    std::string original_content(const Job& job, bool whole)
    {
        const StoredMessage& m = job.message->message;
        std::uint64_t want = whole && m.layout.length <= dsn_include_limit ? m.layout.length : m.layout.header_length;
        auto text = read_range(job.message->fd, m.layout.offset, static_cast<std::size_t>(want));
        return text ? std::move(text).value() : std::string();
    }

    // A server's reply ("550 5.1.1 no such user") is reported as an smtp
    // diagnostic with its enhanced code; our own texts as x-local.
    static DsnRecipient dsn_recipient(const EnvelopeRecipient& rcpt, const RecipientProgress& p, DsnAction action)
    {
        DsnRecipient r;
        r.address = rcpt.address;
        r.original = rcpt.original;
        r.status = action == DsnAction::failed ? "5.0.0" : "4.0.0";
        r.action = action;
        r.diagnostic = "x-local; " + p.last_error;
        std::string_view e = p.last_error;
        auto is_class = [](char c) { return c == '4' || c == '5'; };
        auto digit = [&](std::size_t k) { return k < e.size() && e[k] >= '0' && e[k] <= '9'; };
        // remote-deliver's own error carries its enhanced code in front: "5.1.10 text".
        if (e.size() >= 6 && is_class(e[0]) && e[1] == '.' && digit(2)) {
            std::size_t end = e.find(' ');
            if (end != std::string_view::npos) {
                r.status = std::string(e.substr(0, end));
                e.remove_prefix(end + 1);
                r.diagnostic = "x-local; " + std::string(e);
            }
        }
        // A server's reply, alone or after the command it answered
        // ("550 5.1.1 no such user", "MAIL FROM: 550 ..."): an smtp diagnostic.
        auto reply_at = [&](std::size_t k) {
            return k + 3 < e.size() && is_class(e[k]) && digit(k + 1) && digit(k + 2) && (e[k + 3] == ' ' || e[k + 3] == '-');
        };
        std::size_t at = reply_at(0) ? 0 : std::string_view::npos;
        if (at == std::string_view::npos)
            if (std::size_t colon = e.find(": "); colon != std::string_view::npos && colon < 32 && reply_at(colon + 2))
                at = colon + 2;
        if (at != std::string_view::npos) {
            std::string_view reply = e.substr(at);
            r.diagnostic = "smtp; " + std::string(reply);
            std::size_t end = reply.find(' ', 4);
            std::string_view code = reply.substr(4, end == std::string_view::npos ? std::string_view::npos : end - 4);
            if (code.size() >= 5 && code[0] == reply[0] && code[1] == '.')
                r.status = std::string(code); // build_dsn checks it and falls back to x.0.0
        }
        r.last_attempt = static_cast<std::time_t>(p.last_attempt);
        return r;
    }

    void bounce(Job& job, std::int64_t now)
    {
        const Envelope& env = job.message->message.envelope;
        DsnInput in = dsn_input(job, DsnKind::failure, now);
        std::vector<std::size_t> failed;
        for (std::size_t i = 0; i < env.recipients.size(); ++i) {
            const RecipientProgress& p = job.state.recipients[i];
            if (p.state != RecipientState::failed)
                continue;
            failed.push_back(i);
            in.recipients.push_back(dsn_recipient(env.recipients[i], p, DsnAction::failed));
        }
        if (failed.empty())
            return;
        std::string content = original_content(job, true);
        in.original_content = content;
        if (send_dsn(job, in, fail_template_))
            for (std::size_t i : failed)
                job.state.recipients[i].state = RecipientState::dsn_sent;
    }

    void warn(Job& job, std::int64_t now)
    {
        const Envelope& env = job.message->message.envelope;
        if (env.return_path.is_null())
            return;
        DsnInput in = dsn_input(job, DsnKind::delay, now);
        // The message's delay: its age, or only the time a route was online
        // when every waiting recipient goes through routes (an offline
        // laptop's mail is not late). last_warning keeps received_time plus
        // the delay at the last warning, so both compare alike.
        bool local_waiting = false;
        std::int64_t max_defer = static_cast<std::int64_t>(cfg_.max_defer_time.count());
        for (std::size_t i = 0; i < env.recipients.size(); ++i) {
            const RecipientProgress& p = job.state.recipients[i];
            if (p.state != RecipientState::pending || p.first_attempt == 0)
                continue; // never attempted: waits for a route; offline time is no delay
            bool online = counts_online(job, i);
            local_waiting = local_waiting || !online;
            DsnRecipient r = dsn_recipient(env.recipients[i], p, DsnAction::delayed);
            r.will_retry_until = static_cast<std::time_t>(online
                    ? now + std::max<std::int64_t>(0, max_defer - job.state.online_seconds)
                    : p.first_attempt + max_defer);
            in.recipients.push_back(std::move(r));
        }
        if (in.recipients.empty())
            return;
        std::int64_t delay = local_waiting ? now - env.received_time : job.state.online_seconds;
        std::optional<std::chrono::seconds> age_at_last;
        if (job.state.last_warning != 0)
            age_at_last = std::chrono::seconds(job.state.last_warning - env.received_time);
        if (!warning_due(cfg_.warn_intervals, std::chrono::seconds(delay), age_at_last))
            return;
        std::string content = original_content(job, false);
        in.original_content = content;
        if (send_dsn(job, in, warn_template_))
            job.state.last_warning = env.received_time + delay;
    }

    // Builds the report and commits it through enqueue. True when nothing
    // more is to be done for it (sent, or nobody to send it to).
    bool send_dsn(const Job& job, const DsnInput& in, const std::string& tpl)
    {
        auto built = tpl.empty() ? build_dsn(in) : build_dsn_from_template(in, tpl);
        if (!built) {
            log::error("%s: cannot build the report: %s", job.id.c_str(), built.error().message().c_str());
            return false;
        }
        if (!built->sent()) {
            log::notice("%s: no report sent: %s", job.id.c_str(), dsn_not_sent_text(built->reason));
            return true;
        }
        auto queued = submit_generated(*built->message);
        if (!queued) {
            log::warning("%s: report not queued: %s", job.id.c_str(), queued.error().message().c_str());
            return false;
        }
        log::info("%s: %s report %s to %s", job.id.c_str(), in.kind == DsnKind::failure ? "failure" : "delay",
            queued->c_str(), built->message->recipient.str().c_str());
        return true;
    }

    Result<std::string> submit_generated(const GeneratedMessage& g)
    {
        auto sock = ipc::connect_seqpacket(cfg_.spool_dir + "/private/enqueue");
        if (!sock)
            return std::move(sock).error();
        Fd fd(::memfd_create("masqmail-dsn", MFD_CLOEXEC));
        if (!fd.valid())
            return Error::from_errno("memfd_create", errno);
        if (::write(fd.get(), g.content.data(), g.content.size()) != static_cast<ssize_t>(g.content.size()))
            return Error::from_errno("write", errno);
        protocol::SubmitRequest q;
        q.sender = "<>";
        q.recipients.push_back(g.recipient.str());
        auto frame = protocol::encode_submit(1, q);
        if (!frame)
            return std::move(frame).error();
        auto answer = protocol::call(*sock, *frame, &fd, 60'000);
        if (!answer)
            return std::move(answer).error();
        auto parsed = ipc::FrameReader::parse(answer->bytes);
        if (!parsed)
            return std::move(parsed).error();
        auto result = protocol::decode_submit_result(*parsed);
        if (!result)
            return std::move(result).error();
        return std::move(result).value();
    }

    // --- control ---

    Result<void> remove(const std::vector<std::string>& ids, const Caller& caller, bool privileged)
    {
        // The front end sends one id a request; more are allowed, and the
        // first failure is the answer.
        Result<void> first;
        for (const std::string& text : ids) {
            auto outcome = remove_one(text, caller, privileged);
            if (!outcome && first)
                first = std::move(outcome);
        }
        return first;
    }

    Result<void> remove_one(const std::string& text, const Caller& caller, bool privileged)
    {
        auto id = QueueId::parse(text);
        if (!id)
            return Error::permanent("invalid queue id '" + text + "'").exit_as(ex::usage);
        (void)spool_.claim_for_delivery(*id); // from new/ if it waits there
        auto env = spool_.read_envelope(*id, SpoolArea::queue);
        if (!env)
            return Error::permanent("no message " + text + " in the queue").exit_as(ex::noinput);
        if (!privileged && env->envelope.submitter_uid != caller.uid)
            return Error::permanent("message " + text + " is not yours").exit_as(ex::noperm);
        auto it = jobs_.find(id->str());
        if (it != jobs_.end() && it->second.busy) {
            it->second.remove_requested = true; // removed when the attempt ends
        } else {
            if (auto removed = spool_.remove_message(*id); !removed)
                return Error::temporary(text + ": " + removed.error().message());
            if (it != jobs_.end())
                forget(id->str());
        }
        log::info("%s removed by %s", id->c_str(), caller.login.c_str());
        return {};
    }

    static void reply(const ConnectionPtr& c, std::uint64_t request_id, const Result<void>& status)
    {
        if (auto frame = protocol::encode_status(request_id, status))
            c->send(*frame);
    }

    static void on_local(evutil_socket_t, short, void* self)
    {
        static_cast<Manager*>(self)->local_readable();
    }
    static void on_route(evutil_socket_t, short, void* self)
    {
        static_cast<Manager*>(self)->route_readable();
    }
    static void on_remote(evutil_socket_t, short, void* self)
    {
        static_cast<Manager*>(self)->remote_readable();
    }

    const daemon::Started& started_;
    const config::MainConfig& cfg_;
    Spool spool_;
    event_base* base_;
    uid_t queue_uid_;
    std::optional<config::AliasTable> plain_;
    std::optional<config::AliasTable> glob_;
    std::string fail_template_;
    std::string warn_template_;
    std::map<std::string, Job> jobs_;
    std::deque<std::string> ready_;
    int listers_ = 0; // listing children not yet reaped
    std::map<std::uint64_t, Request> requests_;
    std::map<std::uint64_t, RemoteRequestContext> route_requests_;
    std::map<std::uint64_t, RemoteRequestContext> remote_requests_;
    Peer local_ { "local-deliver", &Manager::on_local, Fd(), nullptr };
    Peer route_ { "route-selector", &Manager::on_route, Fd(), nullptr };
    Peer remote_ { "remote-deliver", &Manager::on_remote, Fd(), nullptr };
    std::uint64_t pass_ = 0;
    std::int64_t pass_started_ = 0;
    std::int64_t once_started_ = now_seconds();
    std::vector<Run> runs_;
    std::size_t in_flight_ = 0;
    std::uint64_t last_request_ = 0;
};

void on_signal(evutil_socket_t, short, void* base)
{
    event_base_loopexit(static_cast<event_base*>(base), nullptr);
}

void on_tick(evutil_socket_t, short, void* manager)
{
    static_cast<Manager*>(manager)->tick();
}

void on_queue_run(evutil_socket_t, short, void* manager)
{
    static_cast<Manager*>(manager)->start_run(nullptr, 0);
}

} // namespace

int serve(const daemon::Started& started, Fd notices, Fd control, uid_t queue_uid)
{
    auto spool = Spool::open(started.config.spool_dir, false);
    if (!spool) {
        log::error("qmgr cannot open the spool: %s", spool.error().message().c_str());
        return ex::tempfail;
    }
    if (auto cleaned = spool->clean_state_leftovers(); !cleaned)
        log::warning("qmgr: %s", cleaned.error().message().c_str());
    else if (*cleaned > 0)
        log::info("removed %zu half-written state file(s) of an earlier qmgr", *cleaned);
    event_base* base = event_base_new();
    {
        Manager manager(started, std::move(spool).value(), base, queue_uid);
        FrameServer notice_server(base, std::move(notices), std::vector<uid_t>{queue_uid},
            [&](const ConnectionPtr& c, ipc::FrameReader& frame) {
                auto id = protocol::decode_new_message(frame);
                if (!id)
                    return c->close();
                manager.new_message(*id);
            },
            "qmgr");
        FrameServer control_server(base, std::move(control), std::nullopt,
            [&](const ConnectionPtr& c, ipc::FrameReader& frame) { manager.control(c, frame); }, "qmgr-ctl");
        event* term = evsignal_new(base, SIGTERM, on_signal, base);
        event* intr = evsignal_new(base, SIGINT, on_signal, base);
        event_add(term, nullptr);
        event_add(intr, nullptr);
        event* tick = event_new(base, -1, EV_PERSIST, on_tick, &manager);
        timeval five{5, 0};
        event_add(tick, &five);
        event* queue_run = nullptr;
        if (started.options.queue_interval > 0) {
            queue_run = event_new(base, -1, EV_PERSIST, on_queue_run, &manager);
            timeval every{static_cast<time_t>(started.options.queue_interval), 0};
            event_add(queue_run, &every);
        }
        if (started.options.once)
            manager.start_run(nullptr, 0, started.options.connection);
        else
            manager.start(); // claims what waits in new/: a start is a queue run
        log::info("qmgr started%s", started.options.once ? " for one queue run" : "");
        if (!manager.once_done())
            event_base_dispatch(base);
        for (event* e : {term, intr, tick, queue_run})
            if (e != nullptr)
                event_free(e);
    }
    event_base_free(base);
    log::info("qmgr stopped");
    return ex::ok;
}

} // namespace mm::qmgr
