// SPDX-License-Identifier: GPL-2.0-or-later
// Which routes take a message's remote recipients now (masqmail §3.1, §3.2,
// with §10's bugs fixed): every permanent route in order, then the routes of
// the connection that is online (query_routes.NAME), each offered the
// recipients its filters let through; a last_route route keeps what reached
// it from every later route. And online detection: online_query's first
// line, run without a shell and with a timeout. Linked by route-selector and
// the front end (--explain).
#pragma once

#include "mm/address.hh"
#include "mm/config.hh"
#include "mm/route.hh"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace mm {

// The routes to try now, in order: permanent_routes, then
// query_routes[connection] when a connection is online. A route that cannot
// be read is left out and named in `unreadable` (masqmail skips it too);
// the reasons go to `diag` with file and line.
struct RoutePlan {
    std::vector<config::RouteConfig> routes;
    std::vector<std::string> unreadable; // route file paths
    std::optional<std::string> connection; // the online connection's name
    bool unknown_connection = false; // online_query named a NAME without query_routes.NAME
};
RoutePlan plan_routes(const config::MainConfig& main, const std::optional<std::string>& connection,
    config::Diagnostics& diag);

// What a route is offered of one message.
struct RouteOffer {
    const config::RouteConfig* route = nullptr;
    std::vector<std::size_t> recipients; // indices into the message's remote recipients
};

// The message as the filters see it.
struct MessageFacts {
    Address sender; // the envelope sender; null for "<>"
    std::optional<Address> from_header; // the first From: address; unset when none
    bool from_header_unparsable = false; // a From: that does not parse skips filtered routes
};

// For each route of the plan in order, the remote recipients it takes
// (§3.1 step 5): recipients already claimed by an earlier last_route route
// are gone; allowed_recipients/denied_recipients per recipient;
// allowed/denied_senders and allowed/denied_from_hdrs for the whole message.
// Routes that take none are left out.
std::vector<RouteOffer> offer_routes(const std::vector<config::RouteConfig>& routes, const MessageFacts& message,
    const std::vector<Address>& recipients, bool caseless_local);

// Why a route takes nothing of a message, or "" when it takes something:
// for --explain and the queue listing.
std::string route_refusal(const config::RouteConfig& route, const MessageFacts& message, const Address& recipient,
    bool caseless_local);

// Runs a command from the configuration (argv, no shell, empty environment
// but PATH, stdin and stderr /dev/null, its own process group) for at most
// `timeout` and returns the first line of its output, trimmed of blanks.
// Empty output, a failure, a non-zero exit, control characters or the
// timeout give nullopt, and `why` says which.
std::optional<std::string> first_output_line(
    const config::Command& command, std::chrono::milliseconds timeout, std::string* why);

// online_query: the first line names the connection; nullopt means offline.
std::optional<std::string> query_online(const config::Command& query, std::chrono::milliseconds timeout, std::string* why);

} // namespace mm
