// SPDX-License-Identifier: GPL-2.0-or-later
// One connection's work for remote-deliver: reach the route's smarthost (its
// addresses in order, IPv6 and IPv4, each within a timeout; never through
// MX) or start its wrapper, TLS as the route says, then every message of the
// batch over that one connection, each rewritten for the route. Blocking,
// bounded by deadlines; runs in a worker process that holds the route's
// secrets and no spool access. Linked by remote-deliver.
#pragma once

#include "mm/address.hh"
#include "mm/config.hh"
#include "mm/fd.hh"
#include "mm/route.hh"
#include "mm/smtp_client.hh"
#include "mm/tls_client.hh"

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace mm {

// Connects to `host` (a name from /etc/hosts or DNS A/AAAA, or an address
// literal) on `port`: each address in getaddrinfo's order (RFC 6724), each
// for at most `timeout`. Refused, unreachable and timed-out addresses are
// skipped; if none answers the error is temporary and names them all.
// `used` gets "ADDRESS:PORT" (IPv6 in brackets).
Result<Fd> connect_host(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout,
    std::string* used);

// Starts the route's wrapper (argv, no shell, environment PATH only) with a
// socketpair end as its stdin and stdout and stderr to /dev/null; the other
// end is returned. `child` gets its pid (the caller reaps it).
Result<Fd> spawn_wrapper(const config::Command& wrapper, pid_t* child);

struct SendItem {
    std::string queue_id; // for logs
    Address return_path;
    std::vector<Address> recipients;
    std::string content; // canonical (LF line ends) as stored
    bool eight_bit_mime = false;
};

struct SendReport {
    std::vector<smtp::MessageOutcome> outcomes; // one per item, one outcome per recipient
    std::string server; // "smtp.example.net[192.0.2.1:587]" or "wrapper ..."
    std::string tls; // "TLSv1.3 TLS_AES_256_GCM_SHA384", "" without TLS
    std::string auth; // the AUTH mechanism used, "" without
};

// One SMTP connection over a route to one next hop (the smarthost, or the
// recipient domain's mail exchangers tried in order: `next_hop` is then the
// domain), opened by the first send(). A
// message after a lost connection dials again; after a failure to connect,
// start TLS or log in, every later message gets that failure at once.
// close() says QUIT. Blocking, bounded by deadlines.
class RouteConnection {
public:
    RouteConnection(const config::RouteConfig& route, const config::MainConfig& main, std::string next_hop,
        std::chrono::milliseconds connect_timeout = std::chrono::seconds(30));
    ~RouteConnection();
    RouteConnection(const RouteConnection&) = delete;
    RouteConnection& operator=(const RouteConnection&) = delete;

    smtp::MessageOutcome send(const SendItem& item);
    void close();

    const std::string& server() const { return server_; }
    const std::string& tls() const { return tls_; }
    const std::string& auth() const { return auth_; }
    int connections() const { return connections_; } // sessions opened so far

private:
    // Where to connect (a name or an address), and the name for TLS and logs.
    struct Target {
        std::string connect;
        std::uint16_t port;
        std::string name;
    };
    Result<void> open();
    Result<void> open_direct();
    Result<void> open_first(const std::vector<Target>& targets, bool direct);
    Result<void> start_session(Fd sock, const std::string& host, std::uint16_t port, bool direct);
    Error connect_error(const Error& e) const;
    void drop();

    const config::RouteConfig& route_;
    const config::MainConfig& main_;
    std::string next_hop_;
    std::chrono::milliseconds connect_timeout_;
    Fd sock_;
    pid_t wrapper_pid_ = -1;
    std::optional<smtp::TlsTransport> transport_;
    std::optional<smtp::ClientSession> session_;
    std::optional<Error> failure_;
    std::string server_, tls_, auth_;
    int connections_ = 0;
};

// Sends the batch over `route` to its mail_host on one RouteConnection. A
// failure to connect, to start TLS or to log in defers every recipient
// (fails them with connect_error_fail for connection errors, as masqmail);
// a 5xx greeting fails them. Messages after a lost connection are deferred
// untouched.
SendReport send_via_route(const config::RouteConfig& route, const config::MainConfig& main,
    const std::vector<SendItem>& items, std::chrono::milliseconds connect_timeout = std::chrono::seconds(30));

} // namespace mm
