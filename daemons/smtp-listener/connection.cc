// SPDX-License-Identifier: GPL-2.0-or-later
// One SMTP client connection (connection.hh). The socket event is armed for
// reading only while the session may take input and fewer than out_limit
// reply bytes wait for the client, so neither a flood of commands nor a
// client that never reads its replies makes a buffer grow.
#include "connection.hh"

#include "listener.hh"

#include "mm/ipc.hh"
#include "mm/log.hh"
#include "mm/protocol.hh"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mm::smtp {

namespace {

constexpr std::size_t out_limit = 64 * 1024;     // reply bytes waiting before reading stops
constexpr int enqueue_timeout_seconds = 120;     // enqueue's answer to one submission
constexpr int submit_retry_max_ms = 500;         // longest pause before connecting to a busy enqueue again
constexpr int close_timeout_seconds = 10;        // to send the last replies before closing

const char* who(const Peer& p)
{
    return p.address.empty() ? "unknown" : p.address.c_str();
}

} // namespace

Connection::Connection(Listener& owner, Fd sock, Peer peer, SSL_CTX* tls)
    : owner_(owner), sock_(std::move(sock)), peer_(std::move(peer)), tls_ctx_(tls),
      session_(owner.config(), peer_)
{
    socket_event_ = event_new(owner_.base(), sock_.get(), EV_READ | EV_WRITE | EV_PERSIST, &Connection::on_socket, this);
    timer_ = evtimer_new(owner_.base(), &Connection::on_timer, this);
    submit_retry_ = evtimer_new(owner_.base(), &Connection::on_submit_retry, this);
}

Connection::~Connection()
{
    for (event* e : {socket_event_, timer_, enqueue_event_, submit_retry_})
        if (e != nullptr)
            event_free(e);
}

void Connection::start()
{
    ++depth_;
    restart_timer();
    handle(session_.greet(out_));
    --depth_;
    (void)destroy_if_done();
}

void Connection::shut_down()
{
    if (state_ == State::submitting || state_ == State::closing)
        return; // the answer from enqueue comes first; closing ones are on their way
    ++depth_;
    if (state_ == State::reading && !session_.in_data())
        session_.shutting_down(out_);
    finish();
    --depth_;
    (void)destroy_if_done();
}

// --- events ---

void Connection::on_socket(evutil_socket_t, short what, void* self)
{
    auto* c = static_cast<Connection*>(self);
    ++c->depth_;
    c->socket_ready(what);
    --c->depth_;
    (void)c->destroy_if_done();
}

void Connection::on_timer(evutil_socket_t, short, void* self)
{
    auto* c = static_cast<Connection*>(self);
    ++c->depth_;
    if (c->state_ == State::closing) {
        c->dead_ = true; // the client does not take its last replies
    } else {
        log::info("connection from %s timed out", who(c->peer_));
        c->session_.timed_out(c->out_);
        c->finish();
    }
    --c->depth_;
    (void)c->destroy_if_done();
}

void Connection::on_enqueue(evutil_socket_t, short what, void* self)
{
    auto* c = static_cast<Connection*>(self);
    ++c->depth_;
    c->enqueue_answered((what & EV_TIMEOUT) != 0);
    --c->depth_;
    (void)c->destroy_if_done();
}

void Connection::on_submit_retry(evutil_socket_t, short, void* self)
{
    auto* c = static_cast<Connection*>(self);
    ++c->depth_;
    c->hand_to_enqueue();
    --c->depth_;
    (void)c->destroy_if_done();
}

bool Connection::destroy_if_done()
{
    if (!dead_ || depth_ > 0)
        return false;
    owner_.closed(this);
    delete this;
    return true;
}

void Connection::socket_ready(short what)
{
    if (state_ == State::handshaking) {
        continue_handshake();
        return;
    }
    if ((what & EV_WRITE) != 0 && !flush())
        return;
    if ((what & EV_READ) != 0 && state_ == State::reading)
        read_input();
}

// --- reading and the session ---

void Connection::read_input()
{
    char buf[limits::smtp_read_chunk];
    while (state_ == State::reading && !dead_ && out_.size() < out_limit) {
        ssize_t n;
        if (tls_) {
            ERR_clear_error();
            int r = SSL_read(tls_.get(), buf, sizeof buf);
            n = r;
            if (r <= 0) {
                int e = SSL_get_error(tls_.get(), r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    arm(e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
                    return;
                }
                n = e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
                if (n < 0)
                    log::info("TLS error from %s: %s", who(peer_), tls_error_text().c_str());
            }
        } else {
            n = ::recv(sock_.get(), buf, sizeof buf, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                arm(EV_READ);
                return;
            }
        }
        if (n <= 0) {
            // A client that goes mid-DATA leaves nothing: the memfd dies with the session.
            log::info("connection from %s: %s%s", who(peer_), n == 0 ? "received EOF" : "read error",
                session_.in_data() ? " during DATA; nothing queued" : "");
            dead_ = true;
            return;
        }
        // The timeout is a deadline per command line and per line of DATA,
        // not per read: a client trickling bytes cannot hold the session.
        std::size_t pending_before = in_.size();
        bool line_end = std::memchr(buf, '\n', static_cast<std::size_t>(n)) != nullptr;
        in_.append(buf, static_cast<std::size_t>(n));
        bool was_data = session_.in_data();
        handle(session_.advance(in_, out_));
        if (state_ == State::reading && (was_data ? line_end : in_.size() <= pending_before))
            restart_timer();
    }
    if (state_ == State::reading && !dead_)
        arm(0); // replies pile up: wait until the client takes them
}

void Connection::handle(Next next)
{
    switch (next) {
    case Next::read:
        (void)flush();
        return;
    case Next::submit:
        state_ = State::submitting;
        (void)flush();
        submit();
        return;
    case Next::start_tls:
        in_.clear(); // RFC 3207 §4.2: what came before the handshake is discarded
        tls_pending_ = true;
        state_ = State::handshaking;
        if (flush())
            continue_handshake();
        return;
    case Next::close:
        finish();
        return;
    }
}

// --- writing ---

// Sends what it can of out_; false when the connection died.
bool Connection::flush()
{
    while (!out_.empty()) {
        ssize_t n;
        if (tls_ && !tls_pending_) {
            ERR_clear_error();
            int r = SSL_write(tls_.get(), out_.data(), static_cast<int>(std::min<std::size_t>(out_.size(), 1 << 20)));
            if (r <= 0) {
                int e = SSL_get_error(tls_.get(), r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    arm(EV_WRITE);
                    return true;
                }
                dead_ = true;
                return false;
            }
            n = r;
        } else {
            n = ::send(sock_.get(), out_.data(), out_.size(), MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                arm(EV_WRITE);
                return true;
            }
            if (n < 0) {
                dead_ = true;
                return false;
            }
        }
        out_.erase(0, static_cast<std::size_t>(n));
    }
    if (state_ == State::closing) {
        dead_ = true;
        return false;
    }
    if (state_ == State::handshaking && tls_pending_)
        return true; // the caller starts the handshake now
    arm(state_ == State::reading ? EV_READ : 0);
    return true;
}

void Connection::finish()
{
    state_ = State::closing;
    in_.clear();
    timeval tv{close_timeout_seconds, 0};
    evtimer_add(timer_, &tv);
    (void)flush();
}

void Connection::arm(short events)
{
    bool r = (events & EV_READ) != 0;
    bool w = (events & EV_WRITE) != 0 || !out_.empty();
    if (r == want_read_ && w == want_write_)
        return;
    want_read_ = r;
    want_write_ = w;
    event_del(socket_event_);
    if (!r && !w)
        return;
    event_assign(socket_event_, owner_.base(), sock_.get(),
        static_cast<short>((r ? EV_READ : 0) | (w ? EV_WRITE : 0) | EV_PERSIST), &Connection::on_socket, this);
    event_add(socket_event_, nullptr);
}

void Connection::shorten_wait(std::chrono::seconds limit)
{
    timeval expiry {}, now {};
    if (state_ != State::reading || !evtimer_pending(timer_, &expiry)
        || event_base_gettimeofday_cached(owner_.base(), &now) != 0)
        return;
    if (expiry.tv_sec - now.tv_sec > limit.count()) {
        timeval tv { static_cast<time_t>(limit.count()), 0 };
        evtimer_add(timer_, &tv);
    }
}

void Connection::restart_timer()
{
    timeval tv{static_cast<time_t>(owner_.command_timeout().count()), 0};
    evtimer_add(timer_, &tv);
}

// --- STARTTLS ---

void Connection::continue_handshake()
{
    if (!tls_) {
        tls_pending_ = false;
        tls_.reset(SSL_new(tls_ctx_));
        if (!tls_ || SSL_set_fd(tls_.get(), sock_.get()) != 1) {
            log::error("cannot start TLS for %s: %s", who(peer_), tls_error_text().c_str());
            dead_ = true;
            return;
        }
        restart_timer();
    }
    ERR_clear_error();
    int r = SSL_accept(tls_.get());
    if (r == 1) {
        state_ = State::reading;
        session_.tls_started();
        log::info("connection from %s: TLS started with %s, %s", who(peer_), SSL_get_version(tls_.get()),
            SSL_get_cipher_name(tls_.get()));
        restart_timer();
        read_input(); // OpenSSL may hold client bytes already
        return;
    }
    int e = SSL_get_error(tls_.get(), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        want_read_ = want_write_ = false; // re-arm for exactly what OpenSSL waits for
        event_del(socket_event_);
        event_assign(socket_event_, owner_.base(), sock_.get(),
            static_cast<short>((e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE) | EV_PERSIST), &Connection::on_socket,
            this);
        event_add(socket_event_, nullptr);
        return;
    }
    log::info("TLS handshake with %s failed: %s", who(peer_), tls_error_text().c_str());
    dead_ = true;
}

// --- the message to enqueue ---

void Connection::submit()
{
    evtimer_del(timer_);
    submit_since_ = std::chrono::steady_clock::now();
    submit_attempts_ = 0;
    hand_to_enqueue();
}

// EAGAIN from connect means enqueue's listen queue is full: it is busy with
// other sessions' messages, not gone. Many sessions ending DATA at once
// (more than the backlog) would all get 451; they wait and connect again
// instead, with growing pauses, until enqueue_timeout_seconds have passed.
void Connection::hand_to_enqueue()
{
    Result<std::string> failed = Error::temporary("enqueue is not running");
    auto sock = ipc::connect_seqpacket(owner_.enqueue_path(), ipc::IoMode::nonblocking);
    if (!sock && sock.error().sys_errno() == EAGAIN
        && std::chrono::steady_clock::now() - submit_since_ < std::chrono::seconds(enqueue_timeout_seconds)) {
        int ms = std::min(submit_retry_max_ms, 5 << std::min(submit_attempts_++, 7));
        timeval tv{0, ms * 1000};
        evtimer_add(submit_retry_, &tv);
        return;
    }
    auto frame = protocol::encode_submit(1, session_.submission());
    Fd content = session_.take_content();
    if (sock && frame) {
        auto sent = ipc::send_frame(*sock, *frame, &content);
        if (sent) {
            enqueue_ = std::move(sock).value();
            enqueue_event_ = event_new(owner_.base(), enqueue_.get(), EV_READ, &Connection::on_enqueue, this);
            timeval tv{enqueue_timeout_seconds, 0};
            event_add(enqueue_event_, &tv);
            return;
        }
        failed = std::move(sent).error();
    } else if (!frame) {
        failed = std::move(frame).error();
    } else {
        failed = std::move(sock).error();
    }
    log::error("cannot hand a message from %s to enqueue: %s", who(peer_), failed.error().message().c_str());
    session_.submitted(Error::temporary("cannot reach enqueue"), out_);
    state_ = State::reading;
    handle(session_.advance(in_, out_));
    if (state_ == State::reading)
        read_input();
}

void Connection::enqueue_answered(bool timed_out)
{
    Result<std::string> result = Error::temporary("no answer from enqueue");
    if (!timed_out) {
        auto got = ipc::recv_frame(enqueue_);
        if (got && got->status == ipc::RecvStatus::frame) {
            auto parsed = ipc::FrameReader::parse(got->bytes);
            auto decoded = parsed ? protocol::decode_submit_result(*parsed)
                                  : Result<Result<std::string>>(std::move(parsed).error());
            if (decoded)
                result = std::move(decoded).value();
            else
                result = Error::temporary("bad answer from enqueue");
        }
    }
    if (!result)
        log::warning("message from %s not queued: %s", who(peer_), result.error().message().c_str());
    event_free(enqueue_event_);
    enqueue_event_ = nullptr;
    enqueue_ = Fd();
    session_.submitted(result, out_);
    state_ = State::reading;
    restart_timer();
    handle(session_.advance(in_, out_)); // commands pipelined after the dot
    if (state_ == State::reading && !dead_)
        read_input();
}

} // namespace mm::smtp
