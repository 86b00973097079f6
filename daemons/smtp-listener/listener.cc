// SPDX-License-Identifier: GPL-2.0-or-later
// smtp-listener's accept loop and connection limits (listener.hh).
#include "listener.hh"

#include "connection.hh"

#include "mm/log.hh"
#include "mm/sysexits.hh"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mm::smtp {

namespace {

constexpr int stop_wait_seconds = 8; // for messages already with enqueue (the supervisor waits 10)

struct ClientAddress {
    std::string text;
    int family = 0;
    std::array<std::uint8_t, 16> bytes{};
    bool loopback = false;
};

ClientAddress describe(const sockaddr_storage& ss)
{
    ClientAddress a;
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        a.family = AF_INET;
        std::memcpy(a.bytes.data(), &in->sin_addr, 4);
        a.loopback = a.bytes[0] == 127;
        ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    } else if (ss.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) { // ::ffff:a.b.c.d is IPv4 a.b.c.d
            a.family = AF_INET;
            std::memcpy(a.bytes.data(), in6->sin6_addr.s6_addr + 12, 4);
            a.loopback = a.bytes[0] == 127;
            ::inet_ntop(AF_INET, a.bytes.data(), buf, sizeof buf);
        } else {
            a.family = AF_INET6;
            std::memcpy(a.bytes.data(), &in6->sin6_addr, 16);
            a.loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
            ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
        }
    }
    a.text = buf;
    return a;
}

bool in_network(const ClientAddress& a, const config::Network& net)
{
    if (a.family != net.family)
        return false;
    unsigned bits = net.prefix_length;
    std::size_t whole = bits / 8;
    if (std::memcmp(a.bytes.data(), net.bytes.data(), whole) != 0)
        return false;
    if (bits % 8 == 0)
        return true;
    auto mask = static_cast<std::uint8_t>(0xff << (8 - bits % 8));
    return (a.bytes[whole] & mask) == (net.bytes[whole] & mask);
}

// Best effort, on a fresh non-blocking socket: one reply, then the socket is closed.
void refuse_connection(const Fd& sock, const std::string& reply)
{
    (void)!::send(sock.get(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

} // namespace

Listener::Listener(const config::MainConfig& config, std::vector<Fd> sockets, TlsContext tls)
    : config_(config), sockets_(std::move(sockets)), tls_(std::move(tls)),
      enqueue_path_(config.spool_dir + "/private/enqueue")
{
}

Listener::~Listener()
{
    for (Connection* c : std::set<Connection*>(connections_))
        delete c;
    for (event* e : events_)
        event_free(e);
    if (base_ != nullptr)
        event_base_free(base_);
}

int Listener::run()
{
    base_ = event_base_new();
    if (base_ == nullptr) {
        log::error("smtp-listener: cannot create the event loop");
        return ex::oserr;
    }
    for (const Fd& s : sockets_) {
        event* e = event_new(base_, s.get(), EV_READ | EV_PERSIST, &Listener::on_accept, this);
        event_add(e, nullptr);
        events_.push_back(e);
    }
    for (int sig : {SIGTERM, SIGINT}) {
        event* e = evsignal_new(base_, sig, &Listener::on_signal, this);
        event_add(e, nullptr);
        events_.push_back(e);
    }
    log::info("smtp-listener started: %zu listening socket(s)%s", sockets_.size(), tls_ ? ", STARTTLS offered" : "");
    event_base_dispatch(base_);
    log::info("smtp-listener stopped");
    return ex::ok;
}

bool Listener::stressed() const
{
    return connections_.size() * 5 > config_.smtp_max_connections * 4;
}

std::chrono::seconds Listener::command_timeout() const
{
    auto normal = std::max(config_.smtp_timeout, std::chrono::seconds(1));
    return stressed() ? std::min(normal, std::chrono::seconds(limits::smtp_overload_timeout_seconds)) : normal;
}

void Listener::on_accept(evutil_socket_t fd, short, void* self)
{
    static_cast<Listener*>(self)->accept_from(fd);
}

void Listener::accept_from(int listening)
{
    for (int i = 0; i < 64 && !stopping_; ++i) { // others get their turn after 64
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        Fd sock(::accept4(listening, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!sock.valid()) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log::error("accept: %s", std::strerror(errno));
            return;
        }
        ClientAddress a = describe(ss);
        bool may_relay = a.loopback;
        for (const config::Network& net : config_.relay_nets)
            may_relay = may_relay || in_network(a, net);
        admit(std::move(sock), a.text, may_relay);
    }
}

void Listener::admit(Fd sock, const std::string& address, bool may_relay)
{
    if (connections_.size() >= config_.smtp_max_connections) {
        log::warning("connection from %s refused: %zu connections open", address.c_str(), connections_.size());
        refuse_connection(sock, "421 4.3.2 " + config_.host_name + " Error: too many connections\r\n");
        return;
    }
    std::size_t& from_here = per_client_[address];
    if (!may_relay && from_here >= config_.smtp_max_connections_per_client) {
        log::warning("connection from %s refused: %zu connections from that address", address.c_str(), from_here);
        refuse_connection(sock, "421 4.7.0 " + config_.host_name + " Error: too many connections from " + address + "\r\n");
        if (from_here == 0)
            per_client_.erase(address);
        return;
    }
    // An early talker (bytes before our greeting) is not an SMTP client (user-needs S3).
    char peek;
    if (::recv(sock.get(), &peek, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
        log::notice("connection from %s refused: it talked before the greeting", address.c_str());
        refuse_connection(sock, "554 5.5.0 Error: SMTP protocol synchronization\r\n");
        if (from_here == 0)
            per_client_.erase(address);
        return;
    }
    ++from_here;
    log::info("connect from host %s", address.c_str());
    Peer peer{.address = address, .may_relay = may_relay, .tls_available = tls_ != nullptr,
        .enforce_synchronization = true};
    bool was_stressed = stressed();
    auto* c = new Connection(*this, std::move(sock), std::move(peer), tls_.get());
    connections_.insert(c);
    if (!was_stressed && stressed()) {
        // Into overload: the sessions already waiting get the short wait too.
        log::warning("%zu connections open: waiting at most %lld s for a client's command",
            connections_.size(), static_cast<long long>(command_timeout().count()));
        for (Connection* other : connections_)
            if (other != c)
                other->shorten_wait(command_timeout());
    }
    c->start();
}

void Listener::closed(Connection* c)
{
    connections_.erase(c);
    auto it = per_client_.find(c->peer().address);
    if (it != per_client_.end() && --it->second == 0)
        per_client_.erase(it);
    if (stopping_ && connections_.empty())
        event_base_loopexit(base_, nullptr);
}

void Listener::on_signal(evutil_socket_t, short, void* self)
{
    static_cast<Listener*>(self)->stop();
}

void Listener::on_stop_timer(evutil_socket_t, short, void* self)
{
    auto* l = static_cast<Listener*>(self);
    log::warning("smtp-listener: %zu connection(s) still open; stopping anyway", l->connections_.size());
    event_base_loopexit(l->base_, nullptr);
}

void Listener::stop()
{
    if (stopping_)
        return;
    stopping_ = true;
    log::info("smtp-listener stopping");
    for (event* e : events_)
        event_del(e);
    sockets_.clear();
    for (Connection* c : std::set<Connection*>(connections_))
        c->shut_down();
    if (connections_.empty()) {
        event_base_loopexit(base_, nullptr);
        return;
    }
    event* t = evtimer_new(base_, &Listener::on_stop_timer, this);
    timeval tv{stop_wait_seconds, 0};
    evtimer_add(t, &tv);
    events_.push_back(t);
}

} // namespace mm::smtp
