// SPDX-License-Identifier: GPL-2.0-or-later
// route-selector's decision (main.cc serves it): which routes take each
// remote recipient of one message now. The online connection is detected
// once per qmgr pass (online_query, or the name runq -qo gave); the route
// files are read then too, so a changed route file counts from the next
// pass on. Separate from the loop for the unit tests.
#pragma once

#include "mm/config.hh"
#include "mm/protocol.hh"
#include "mm/route_select.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mm::route {

class Selector {
public:
    explicit Selector(const config::MainConfig& cfg) : cfg_(cfg) {}

    // `header` is the message's header section as stored (hostile text).
    protocol::RouteAnswer answer(const protocol::RouteQuery& query, std::string_view header);

private:
    void refresh(const protocol::RouteQuery& query);

    const config::MainConfig& cfg_;
    bool fresh_ = false;
    std::uint64_t pass_ = 0;
    std::optional<std::string> asked_; // the -qo name the plan was made for
    std::optional<std::string> connection_;
    std::string offline_reason_;
    RoutePlan plan_;
};

// The first address of the first From: header, qualified with
// `qualify_domain` (host_name); `unparsable` when there is a From: that
// does not parse (masqmail then skips routes with From filters).
std::optional<Address> first_from_address(std::string_view header, const std::string& qualify_domain, bool& unparsable);

// The next hop of `route` for `recipient`: "host:port" of its mail_host,
// "pipe", "wrapper", or the recipient's domain in lower case (direct).
std::string next_hop(const config::RouteConfig& route, const Address& recipient);

} // namespace mm::route
