// SPDX-License-Identifier: GPL-2.0-or-later
// The daemons' frame server (mm/frame_server.hh).
#include "mm/frame_server.hh"

#include "mm/limits.hh"
#include "mm/log.hh"

#include <algorithm>

namespace mm {

namespace {

// Connections per server: a local user must not exhaust descriptors.
constexpr std::size_t max_connections = 256;
constexpr int resume_check_ms = 20; // while full, how often to look for a closed connection

} // namespace

void Connection::send(const std::string& frame, const Fd* fd)
{
    if (!open())
        return;
    if (auto sent = ipc::send_frame(sock_, frame, fd); !sent) {
        log::warning("reply to pid %ld not sent: %s", static_cast<long>(peer_.pid), sent.error().message().c_str());
        close();
    }
}

void Connection::close()
{
    if (ev_ != nullptr) {
        event_free(ev_);
        ev_ = nullptr;
    }
    sock_ = Fd();
}

FrameServer::FrameServer(event_base* base, Fd listener, std::optional<std::vector<uid_t>> allowed,
    Handler handler, std::string name)
    : base_(base), listener_(std::move(listener)), allowed_(std::move(allowed)), handler_(std::move(handler)),
      name_(std::move(name))
{
    accept_ev_ = event_new(base_, listener_.get(), EV_READ | EV_PERSIST, &FrameServer::on_accept, this);
    event_add(accept_ev_, nullptr);
    resume_ev_ = evtimer_new(base_, &FrameServer::on_resume, this);
}

FrameServer::~FrameServer()
{
    stop_accepting();
    for (auto& c : connections_)
        c->close();
}

void FrameServer::stop_accepting()
{
    for (event** e : {&accept_ev_, &resume_ev_}) {
        if (*e != nullptr) {
            event_free(*e);
            *e = nullptr;
        }
    }
}

bool FrameServer::full()
{
    // Forget connections that were closed since.
    std::erase_if(connections_, [](const ConnectionPtr& c) { return !c->open(); });
    return connections_.size() >= max_connections;
}

// Accepting and closing at once would turn a burst from trusted clients (the
// smtp-listener's sessions all ending DATA together) into failures; their
// connections wait in the listen queue instead (and a non-blocking connect
// gets EAGAIN), and are taken as connections close.
void FrameServer::pause_accepting()
{
    log::warning("%s: %zu connections open; new ones wait", name_.c_str(), connections_.size());
    event_del(accept_ev_);
    timeval tv{0, resume_check_ms * 1000};
    evtimer_add(resume_ev_, &tv);
}

void FrameServer::on_resume(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<FrameServer*>(arg);
    if (self->accept_ev_ == nullptr)
        return;
    if (self->full()) {
        timeval tv{0, resume_check_ms * 1000};
        evtimer_add(self->resume_ev_, &tv);
        return;
    }
    event_add(self->accept_ev_, nullptr);
}

void FrameServer::on_accept(evutil_socket_t, short, void* arg)
{
    auto* self = static_cast<FrameServer*>(arg);
    for (;;) {
        if (self->full()) {
            self->pause_accepting();
            return;
        }
        auto sock = ipc::accept_seqpacket(self->listener_);
        if (!sock) {
            if (!ipc::is_would_block(sock.error()))
                log::warning("%s: accept: %s", self->name_.c_str(), sock.error().message().c_str());
            return;
        }
        auto cred = ipc::peer_credentials(*sock);
        if (!cred)
            continue;
        if (self->allowed_ &&
            std::find(self->allowed_->begin(), self->allowed_->end(), cred->uid) == self->allowed_->end()) {
            log::warning("%s: connection from uid %u refused", self->name_.c_str(), static_cast<unsigned>(cred->uid));
            continue;
        }
        auto c = std::make_shared<Connection>(std::move(sock).value(), *cred);
        c->ev_ = event_new(self->base_, c->sock_.get(), EV_READ | EV_PERSIST, &FrameServer::on_readable,
            c.get());
        c->server_ = self;
        event_add(c->ev_, nullptr);
        self->connections_.push_back(std::move(c));
    }
}

void FrameServer::drop(Connection* c)
{
    c->close();
}

void FrameServer::on_readable(evutil_socket_t, short, void* arg)
{
    auto* connection = static_cast<Connection*>(arg);
    FrameServer* self = connection->server_;
    auto it = std::find_if(self->connections_.begin(), self->connections_.end(),
        [&](const ConnectionPtr& c) { return c.get() == connection; });
    if (it == self->connections_.end())
        return;
    ConnectionPtr c = *it; // alive while the handler runs
    auto got = ipc::recv_frame(c->sock_);
    bool end = !got || got->status == ipc::RecvStatus::peer_closed;
    if (got && got->status == ipc::RecvStatus::would_block)
        return;
    if (!end) {
        auto frame = ipc::FrameReader::parse(got->bytes, std::move(got->fd));
        if (!frame) {
            log::warning("%s: bad frame from pid %ld: %s", self->name_.c_str(), static_cast<long>(c->peer_.pid),
                frame.error().message().c_str());
            end = true;
        } else {
            self->handler_(c, *frame);
        }
    } else if (!got) {
        log::warning("%s: %s", self->name_.c_str(), got.error().message().c_str());
    }
    if (end || !c->open()) {
        c->close();
        std::erase_if(self->connections_, [&](const ConnectionPtr& p) { return p.get() == c.get(); });
    }
}

} // namespace mm
