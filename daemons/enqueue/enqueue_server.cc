// SPDX-License-Identifier: GPL-2.0-or-later
// The enqueue daemon (enqueue_server.hh).
#include "enqueue_server.hh"

#include "mm/caller.hh"
#include "mm/enqueue.hh"
#include "mm/frame_server.hh"
#include "mm/fs.hh"
#include "mm/log.hh"
#include "mm/maildrop.hh"
#include "mm/protocol.hh"
#include "mm/spool.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <csignal>
#include <event2/event.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mm::enqueue {

namespace {

constexpr int maildrop_rescan_seconds = 10; // maildrop/ is read again this often without a wake-up

class Server {
public:
    Server(const daemon::Started& started, Spool spool, uid_t queue_uid)
        : started_(started), config_(started.config), spool_(std::move(spool)), queue_uid_(queue_uid)
    {
    }

    // One submit_begin frame: checked and written to tmp/ now, made durable
    // with the others that arrived in the same turn of the loop (one group
    // commit), then answered. `internal`: it came over private/enqueue
    // (qmgr, smtp-listener), whose peers are daemons.
    void submit(const ConnectionPtr& c, ipc::FrameReader& frame, bool internal)
    {
        auto request = protocol::decode_submit(frame);
        if (!request) {
            log::warning("bad submission from pid %ld: %s", static_cast<long>(c->peer().pid),
                request.error().message().c_str());
            c->close();
            return;
        }
        const protocol::SubmitRequest& req = request->request;
        Result<StagedMessage> staged = Error::internal("not read");
        if (req.smtp && !req.smtp->peer_address.empty() && !internal && !privileged(c->peer().uid)) {
            staged = Error::permanent("an SMTP peer address is taken only from the SMTP listener");
        } else {
            auto content = read_content(request->content);
            staged = content ? stage(c->peer().uid, req, *content) : Result<StagedMessage>(std::move(content).error());
        }
        if (!staged) {
            answer(c, frame.request_id(), Result<std::string>(staged.error()), c->peer().uid);
            return;
        }
        batch_.push_back(std::move(staged).value());
        waiting_.push_back(Waiting{c, frame.request_id(), c->peer().uid});
        if (!flush_scheduled_) {
            flush_scheduled_ = true;
            event_active(flush_, EV_TIMEOUT, 0); // after every frame already read this turn
        }
    }

    // The group commit of every message staged since the last one.
    void commit_batch()
    {
        flush_scheduled_ = false;
        std::vector<StagedMessage> batch = std::move(batch_);
        std::vector<Waiting> waiting = std::move(waiting_);
        batch_.clear();
        waiting_.clear();
        std::vector<Result<Accepted>> results = commit_staged(batch);
        for (std::size_t i = 0; i < batch.size(); ++i) {
            Result<std::string> queued = results[i] ? Result<std::string>(results[i]->id.str())
                                                    : Result<std::string>(results[i].error());
            answer(waiting[i].connection, waiting[i].request_id, queued, waiting[i].uid);
            if (queued && batch[i].destination == MessageWriter::Destination::deliver_now)
                notify_qmgr(*queued); // a queue-only message went to queue/, for the next queue run
        }
    }

    static void on_flush(evutil_socket_t, short, void* self) { static_cast<Server*>(self)->commit_batch(); }

    void set_flush_event(event* e) { flush_ = e; }

    Result<std::string> read_content(const Fd& fd)
    {
        struct stat st{};
        if (::fstat(fd.get(), &st) != 0)
            return Error::from_errno("fstat of the submitted message", errno);
        if (!S_ISREG(st.st_mode))
            return Error::permanent("the submitted message is not a file");
        auto size = static_cast<std::uint64_t>(st.st_size);
        if (size > max_message_size(config_))
            return Error::permanent("message too large (" + std::to_string(size) + " bytes, at most " +
                                    std::to_string(max_message_size(config_)) + ")");
        return read_range(fd, 0, static_cast<std::size_t>(size)); // a file that shrank: what is there
    }

    // Commits every complete file in maildrop/ (postdrop's), as its owner.
    static void on_rescan(evutil_socket_t, short, void* self) { static_cast<Server*>(self)->pickup(); }

    void pickup()
    {
        const Dir& drops = spool_.area(SpoolArea::maildrop);
        int dup = ::fcntl(drops.get(), F_DUPFD_CLOEXEC, 0);
        DIR* dir = dup >= 0 ? ::fdopendir(dup) : nullptr;
        if (dir == nullptr) {
            if (dup >= 0)
                ::close(dup);
            log::error("cannot read maildrop/: %s", std::strerror(errno));
            return;
        }
        // The copy shares the directory's read position with maildrop/'s
        // descriptor, which the last pickup left at the end.
        ::rewinddir(dir);
        std::vector<std::string> names;
        while (dirent* e = ::readdir(dir)) {
            std::string_view name = e->d_name;
            if (maildrop::is_drop_name(name) || maildrop::is_temporary_name(name))
                names.emplace_back(name);
            if (names.size() >= 10000)
                break; // the rest at the next pickup
        }
        ::closedir(dir);
        for (const std::string& name : names)
            pickup_one(drops, name);
    }

private:
    void pickup_one(const Dir& drops, const std::string& name)
    {
        Fd fd(::openat(drops.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
        struct stat st{};
        if (!fd.valid() && errno == ELOOP) {
            // A planted symlink is never followed, and never retried at every pickup either.
            set_aside(drops, name, "a symbolic link");
            return;
        }
        if (!fd.valid() && errno != ENOENT)
            log::error("maildrop/%s: cannot open it (%s); left in place", name.c_str(), std::strerror(errno));
        if (!fd.valid() || ::fstat(fd.get(), &st) != 0)
            return;
        if (maildrop::is_temporary_name(name)) {
            if (std::time(nullptr) - st.st_mtime > maildrop::stale_temporary_age.count())
                ::unlinkat(drops.get(), name.c_str(), 0); // its postdrop died: never acknowledged
            return;
        }
        if (!S_ISREG(st.st_mode) || st.st_nlink != 1 ||
            static_cast<std::uint64_t>(st.st_size) > maildrop::max_file_size()) {
            set_aside(drops, name, "not a plain drop file");
            return;
        }
        auto bytes = read_range(fd, 0, static_cast<std::size_t>(st.st_size));
        if (!bytes)
            return; // read error: try again at the next pickup
        auto drop = maildrop::parse(*bytes);
        if (!drop) {
            set_aside(drops, name, drop.error().message());
            return;
        }
        auto queued = commit(st.st_uid, drop->request, drop->content);
        if (!queued && queued.error().is_temporary()) {
            log::warning("maildrop/%s: %s; kept for the next pickup", name.c_str(), queued.error().message().c_str());
            return;
        }
        if (!queued) {
            // The user's sendmail has already exited: all that can be done is tell the log.
            log::error("maildrop/%s from uid %u refused: %s", name.c_str(), static_cast<unsigned>(st.st_uid),
                queued.error().message().c_str());
            set_aside(drops, name, queued.error().message());
            return;
        }
        ::unlinkat(drops.get(), name.c_str(), 0); // a crash before this: a duplicate, never a loss
        if (!drop->request.queue_only && !config_.do_queue)
            notify_qmgr(*queued);
    }

    // Keeps a drop file that cannot be committed in corrupt/, for the administrator.
    void set_aside(const Dir& drops, const std::string& name, const std::string& why)
    {
        std::string target = "maildrop." + name;
        if (::renameat(drops.get(), name.c_str(), spool_.area(SpoolArea::corrupt).get(), target.c_str()) != 0)
            log::error("maildrop/%s: %s; cannot move it aside: %s", name.c_str(), why.c_str(), std::strerror(errno));
        else
            log::error("maildrop/%s moved to corrupt/%s: %s", name.c_str(), target.c_str(), why.c_str());
    }

    bool privileged(uid_t uid) const
    {
        std::optional<uid_t> owner;
        if (started_.private_instance)
            owner = started_.instance_uid;
        return uid == queue_uid_ || identify_caller(uid, owner).privileged;
    }

    Result<Submission> submission_of(uid_t uid, const protocol::SubmitRequest& request) const
    {
        std::optional<uid_t> owner;
        if (started_.private_instance)
            owner = started_.instance_uid;
        Caller caller;
        caller.uid = uid;
        // A network client's message (smtp-listener) owes nothing to who
        // relayed it: no passwd or group lookup for it.
        if (!request.smtp || request.smtp->peer_address.empty())
            caller = identify_caller(uid, owner);
        caller.privileged = caller.privileged || uid == queue_uid_;
        return local_submission(request, caller, config_);
    }

    Result<StagedMessage> stage(uid_t uid, const protocol::SubmitRequest& request, std::string_view content)
    {
        auto submission = submission_of(uid, request);
        if (!submission)
            return std::move(submission).error();
        return stage_message(spool_, config_, *submission, content);
    }

    Result<std::string> commit(uid_t uid, const protocol::SubmitRequest& request, std::string_view content)
    {
        auto submission = submission_of(uid, request);
        if (!submission)
            return std::move(submission).error();
        auto accepted = accept_message(spool_, config_, *submission, content);
        if (!accepted)
            return std::move(accepted).error();
        return accepted->id.str();
    }

    void answer(const ConnectionPtr& c, std::uint64_t request_id, const Result<std::string>& queued, uid_t uid)
    {
        if (!queued)
            log::notice("message from uid %u not accepted: %s", static_cast<unsigned>(uid),
                queued.error().message().c_str());
        if (!c->open())
            return; // the client went; a committed message stays (at worst a duplicate)
        if (auto reply = protocol::encode_submit_result(request_id, queued))
            c->send(*reply);
        else
            c->close();
    }

    void notify_qmgr(const std::string& id)
    {
        for (int attempt = 0; attempt < 2; ++attempt) {
            if (!qmgr_.valid()) {
                auto sock = ipc::connect_seqpacket(config_.spool_dir + "/private/qmgr", ipc::IoMode::nonblocking);
                if (!sock)
                    return; // qmgr scans new/ when it starts
                qmgr_ = std::move(sock).value();
            }
            auto frame = protocol::encode_new_message(0, id);
            if (frame && ipc::send_frame(qmgr_, *frame))
                return;
            qmgr_ = Fd(); // qmgr restarted: connect again once
        }
        log::warning("%s: qmgr not told; the next queue run takes it", id.c_str());
    }

    struct Waiting {
        ConnectionPtr connection;
        std::uint64_t request_id;
        uid_t uid;
    };

    const daemon::Started& started_;
    const config::MainConfig& config_;
    Spool spool_;
    uid_t queue_uid_;
    Fd qmgr_;
    event* flush_ = nullptr;
    bool flush_scheduled_ = false;
    std::vector<StagedMessage> batch_;
    std::vector<Waiting> waiting_;
};

void on_signal(evutil_socket_t, short, void* base)
{
    event_base_loopexit(static_cast<event_base*>(base), nullptr);
}

} // namespace

int serve(const daemon::Started& started, Sockets sockets, uid_t queue_uid, uid_t smtp_uid)
{
    auto spool = Spool::open(started.config.spool_dir, false);
    if (!spool) {
        log::error("enqueue cannot open the spool: %s", spool.error().message().c_str());
        return ex::tempfail;
    }
    if (auto cleaned = spool->clean_tmp(); cleaned && *cleaned > 0)
        log::info("removed %zu unfinished files from tmp/", *cleaned);
    Server server(started, std::move(spool).value(), queue_uid);
    event_base* base = event_base_new();
    event* flush = event_new(base, -1, 0, &Server::on_flush, &server);
    server.set_flush_event(flush);
    auto handler = [&](bool internal) {
        return [&server, internal](const ConnectionPtr& c, ipc::FrameReader& frame) {
            if (frame.type() == ipc::MessageType::submit_begin)
                server.submit(c, frame, internal);
            else
                c->close();
        };
    };
    {
        FrameServer internal(base, std::move(sockets.internal), std::vector<uid_t>{queue_uid, smtp_uid},
            handler(true), "enqueue");
        FrameServer submit(base, std::move(sockets.submit), std::nullopt, handler(false), "submit");
        // postdrop's wake-up carries nothing: any frame means "look in maildrop/".
        FrameServer pickup(base, std::move(sockets.pickup), std::nullopt,
            [&](const ConnectionPtr& c, ipc::FrameReader&) {
                c->close();
                server.pickup();
            },
            "pickup");
        server.pickup(); // what was dropped while no daemon ran
        // A wake-up can be lost (postdrop's went to the sockets of a
        // supervisor that was being replaced): look again every few seconds,
        // as qmgr does in new/.
        event* rescan = event_new(base, -1, EV_PERSIST, &Server::on_rescan, &server);
        const timeval rescan_every { maildrop_rescan_seconds, 0 };
        event_add(rescan, &rescan_every);
        event* term = evsignal_new(base, SIGTERM, on_signal, base);
        event* intr = evsignal_new(base, SIGINT, on_signal, base);
        event_add(term, nullptr);
        event_add(intr, nullptr);
        log::info("enqueue started");
        event_base_dispatch(base);
        event_free(term);
        event_free(intr);
        event_free(rescan);
    }
    event_free(flush);
    event_base_free(base);
    log::info("enqueue stopped");
    return ex::ok;
}

} // namespace mm::enqueue
