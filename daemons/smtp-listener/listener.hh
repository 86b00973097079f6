// SPDX-License-Identifier: GPL-2.0-or-later
// smtp-listener's event loop: accepts TCP connections on the sockets the
// supervisor bound, enforces the connection limits (in all and per client
// address), decides who may relay (loopback, relay_nets), and owns every
// Connection. Client addresses come from the kernel; the rest is untrusted.
#pragma once

#include "tls.hh"

#include "mm/config.hh"
#include "mm/fd.hh"

#include <chrono>
#include <event2/event.h>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace mm::smtp {

class Connection;

class Listener {
public:
    Listener(const config::MainConfig& config, std::vector<Fd> sockets, TlsContext tls);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    // Runs until SIGTERM; returns the exit status.
    int run();

    // For connections.
    event_base* base() const { return base_; }
    const config::MainConfig& config() const { return config_; }
    const std::string& enqueue_path() const { return enqueue_path_; }
    // The wait for a client's next command: smtp_timeout, or 10 s while
    // more than 80% of the connection slots are taken (as Postfix's stress mode).
    std::chrono::seconds command_timeout() const;
    void closed(Connection* c);

private:
    static void on_accept(evutil_socket_t fd, short, void* self);
    static void on_signal(evutil_socket_t, short, void* self);
    static void on_stop_timer(evutil_socket_t, short, void* self);
    void accept_from(int listening);
    void admit(Fd sock, const std::string& address, bool loopback_or_relay_net);
    bool stressed() const;
    void stop();

    const config::MainConfig& config_;
    std::vector<Fd> sockets_;
    TlsContext tls_;
    std::string enqueue_path_;
    event_base* base_ = nullptr;
    std::vector<event*> events_;
    std::set<Connection*> connections_;
    std::map<std::string, std::size_t, std::less<>> per_client_;
    bool stopping_ = false;
};

} // namespace mm::smtp
