// SPDX-License-Identifier: GPL-2.0-or-later
// One SMTP client connection in smtp-listener's event loop: socket and TLS
// I/O, timeouts, and the hand-over of each accepted message to enqueue over
// private/enqueue. Everything it reads is untrusted; the protocol itself is
// mm::smtp::Session's. Buffers are bounded: it reads only when the session
// has used what came before and the client has taken its replies.
#pragma once

#include "tls.hh"

#include "mm/fd.hh"
#include "mm/smtp_session.hh"

#include <chrono>
#include <event2/event.h>
#include <string>

namespace mm::smtp {

class Listener;

class Connection {
public:
    Connection(Listener& owner, Fd sock, Peer peer, SSL_CTX* tls);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Sends the greeting and starts reading. May delete the connection.
    void start();
    // The server is stopping: 421 to a client between commands, then close;
    // one whose message is with enqueue gets its answer first.
    void shut_down();
    // The listener went into overload: a wait for the client's next command
    // that would last longer than `limit` ends after `limit`.
    void shorten_wait(std::chrono::seconds limit);
    const Peer& peer() const { return peer_; }

private:
    enum class State : std::uint8_t { reading, submitting, handshaking, closing };

    static void on_socket(evutil_socket_t, short what, void* self);
    static void on_timer(evutil_socket_t, short, void* self);
    static void on_enqueue(evutil_socket_t, short what, void* self);
    static void on_submit_retry(evutil_socket_t, short, void* self);

    void socket_ready(short what);
    void read_input();
    void handle(Next next);
    void submit();
    void hand_to_enqueue();
    void enqueue_answered(bool timed_out);
    void continue_handshake();
    bool flush();
    void finish();
    void arm(short events);
    void restart_timer();
    bool destroy_if_done();

    Listener& owner_;
    Fd sock_;
    Peer peer_;
    SSL_CTX* tls_ctx_;
    TlsConnection tls_;
    Session session_;
    State state_ = State::reading;
    bool tls_pending_ = false;  // the 220 to STARTTLS is being sent; handshake after it
    bool want_read_ = false;    // the socket event waits for readability
    bool want_write_ = false;   // ... for writability (replies not yet sent)
    bool dead_ = false;         // delete at the end of the current callback
    int depth_ = 0;             // callbacks on the stack
    std::string in_;
    std::string out_;
    event* socket_event_ = nullptr;
    event* timer_ = nullptr;
    Fd enqueue_;
    event* enqueue_event_ = nullptr;
    event* submit_retry_ = nullptr;  // enqueue's listen queue was full: connect again
    std::chrono::steady_clock::time_point submit_since_;
    int submit_attempts_ = 0;
};

} // namespace mm::smtp
