// SPDX-License-Identifier: GPL-2.0-or-later
// A SOCK_SEQPACKET server in a libevent loop: accepts connections on one
// listening socket, checks each peer's uid (SO_PEERCRED), and hands every
// received frame to the daemon's handler. A bad frame or a wrong uid closes
// that connection only. Replies may be sent later (qmgr answers runq when the
// run is done), so connections are shared and know when they were closed.
// At its connection limit a server stops accepting until one closes: new
// clients wait in the listen queue rather than being dropped. Linked by the
// daemons.
#pragma once

#include "mm/fd.hh"
#include "mm/ipc.hh"

#include <event2/event.h>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <vector>

namespace mm {

class FrameServer;

class Connection {
public:
    Connection(Fd sock, ucred peer) : sock_(std::move(sock)), peer_(peer) {}
    const ucred& peer() const { return peer_; }
    bool open() const { return sock_.valid(); }
    // Sends one frame (and a descriptor); a failure closes the connection.
    void send(const std::string& frame, const Fd* fd = nullptr);
    void close();
    const Fd& socket() const { return sock_; }

private:
    Fd sock_;
    ucred peer_;
    friend class FrameServer;
    event* ev_ = nullptr;
    FrameServer* server_ = nullptr;
};

using ConnectionPtr = std::shared_ptr<Connection>;

class FrameServer {
public:
    // Called with each frame parsed; the handler may keep the connection.
    using Handler = std::function<void(const ConnectionPtr&, ipc::FrameReader&)>;

    // `allowed`: the peer uids accepted; nothing means every uid (public sockets).
    FrameServer(event_base* base, Fd listener, std::optional<std::vector<uid_t>> allowed, Handler handler,
        std::string name);
    ~FrameServer();
    FrameServer(const FrameServer&) = delete;
    FrameServer& operator=(const FrameServer&) = delete;

    // Stops accepting (shutdown); open connections are kept.
    void stop_accepting();

private:
    static void on_accept(evutil_socket_t, short, void* self);
    static void on_readable(evutil_socket_t, short, void* arg);
    static void on_resume(evutil_socket_t, short, void* self);
    void drop(Connection* c);
    bool full();
    void pause_accepting();

    event_base* base_;
    Fd listener_;
    std::optional<std::vector<uid_t>> allowed_;
    Handler handler_;
    std::string name_;
    event* accept_ev_ = nullptr;
    event* resume_ev_ = nullptr; // while full: checks whether a connection closed
    std::vector<ConnectionPtr> connections_;
};

} // namespace mm
