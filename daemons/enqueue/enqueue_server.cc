// SPDX-License-Identifier: GPL-2.0-or-later
// The enqueue daemon (enqueue_server.hh).
#include "enqueue_server.hh"

#include "mm/caller.hh"
#include "mm/enqueue.hh"
#include "mm/frame_server.hh"
#include "mm/log.hh"
#include "mm/protocol.hh"
#include "mm/spool.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <csignal>
#include <event2/event.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mm::enqueue {

namespace {

class Server {
public:
    Server(const daemon::Started& started, Spool spool, uid_t queue_uid)
        : started_(started), config_(started.config), spool_(std::move(spool)), queue_uid_(queue_uid)
    {
    }

    // One submit_begin frame: commit, reply, tell qmgr.
    void submit(const ConnectionPtr& c, ipc::FrameReader& frame)
    {
        auto request = protocol::decode_submit(frame);
        if (!request) {
            log::warning("bad submission from pid %ld: %s", static_cast<long>(c->peer().pid),
                request.error().message().c_str());
            c->close();
            return;
        }
        Result<std::string> queued = commit(c->peer().uid, request->request, request->content);
        if (!queued)
            log::notice("message from uid %u not accepted: %s", static_cast<unsigned>(c->peer().uid),
                queued.error().message().c_str());
        if (auto reply = protocol::encode_submit_result(frame.request_id(), queued))
            c->send(*reply);
        else
            c->close();
        if (queued && !request->request.queue_only && !config_.do_queue)
            notify_qmgr(*queued);
    }

private:
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
        std::string content(size, '\0');
        std::size_t done = 0;
        while (done < size) {
            ssize_t n = ::pread(fd.get(), content.data() + done, size - done, static_cast<off_t>(done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return Error::from_errno("read of the submitted message", errno);
            if (n == 0)
                break; // shrank under us: take what is there
            done += static_cast<std::size_t>(n);
        }
        content.resize(done);
        return content;
    }

    Result<std::string> commit(uid_t uid, const protocol::SubmitRequest& request, const Fd& content_fd)
    {
        std::optional<uid_t> owner;
        if (started_.private_instance)
            owner = started_.instance_uid;
        Caller caller = identify_caller(uid, owner);
        caller.privileged = caller.privileged || uid == queue_uid_;
        auto submission = local_submission(request, caller, config_);
        if (!submission)
            return std::move(submission).error();
        auto content = read_content(content_fd);
        if (!content)
            return std::move(content).error();
        auto accepted = accept_message(spool_, config_, *submission, *content);
        if (!accepted)
            return std::move(accepted).error();
        return accepted->id.str();
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

    const daemon::Started& started_;
    const config::MainConfig& config_;
    Spool spool_;
    uid_t queue_uid_;
    Fd qmgr_;
};

void on_signal(evutil_socket_t, short, void* base)
{
    event_base_loopexit(static_cast<event_base*>(base), nullptr);
}

} // namespace

int serve(const daemon::Started& started, Sockets sockets, uid_t queue_uid)
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
    auto handle = [&](const ConnectionPtr& c, ipc::FrameReader& frame) {
        if (frame.type() == ipc::MessageType::submit_begin)
            server.submit(c, frame);
        else
            c->close();
    };
    {
        FrameServer internal(base, std::move(sockets.internal), std::vector<uid_t>{queue_uid}, handle, "enqueue");
        FrameServer submit(base, std::move(sockets.submit), std::nullopt, handle, "submit");
        // Maildrop files are picked up by the queue run; the wake-up itself carries nothing.
        FrameServer pickup(base, std::move(sockets.pickup), std::nullopt,
            [](const ConnectionPtr& c, ipc::FrameReader&) { c->close(); }, "pickup");
        event* term = evsignal_new(base, SIGTERM, on_signal, base);
        event* intr = evsignal_new(base, SIGINT, on_signal, base);
        event_add(term, nullptr);
        event_add(intr, nullptr);
        log::info("enqueue started");
        event_base_dispatch(base);
        event_free(term);
        event_free(intr);
    }
    event_base_free(base);
    log::info("enqueue stopped");
    return ex::ok;
}

} // namespace mm::enqueue
