// SPDX-License-Identifier: GPL-2.0-or-later
// route-selector's decision (selector.hh).
#include "selector.hh"

#include "mm/log.hh"
#include "mm/message.hh"

#include <algorithm>
#include <chrono>

namespace mm::route {

namespace {

constexpr auto online_query_timeout = std::chrono::seconds(30);

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

} // namespace

std::optional<Address> first_from_address(std::string_view header, const std::string& qualify_domain, bool& unparsable)
{
    unparsable = false;
    auto parsed = parse_message(header);
    if (!parsed) {
        unparsable = true;
        return std::nullopt;
    }
    const HeaderField* from = find_header(*parsed, "From");
    if (from == nullptr)
        return std::nullopt;
    AddressOptions opts;
    opts.qualify_domain = qualify_domain; // "From: root" is root@host_name, as in masqmail
    auto list = parse_address_list(from->value(), opts);
    if (!list || list->empty()) {
        unparsable = true;
        return std::nullopt;
    }
    return list->front().address;
}

std::string next_hop(const config::RouteConfig& route, const Address& recipient)
{
    if (route.pipe)
        return "pipe";
    if (route.wrapper)
        return "wrapper";
    if (route.mail_host)
        return route.mail_host->str(); // "[2001:db8::1]:587" keeps its brackets
    return lower(recipient.domain());
}

void Selector::refresh(const protocol::RouteQuery& query)
{
    if (fresh_ && query.pass == pass_ && query.connection == asked_)
        return;
    fresh_ = true;
    pass_ = query.pass;
    asked_ = query.connection;
    offline_reason_.clear();
    if (query.connection) {
        connection_ = query.connection;
    } else if (cfg_.online_query) {
        std::string why;
        connection_ = query_online(*cfg_.online_query, online_query_timeout, &why);
        if (!connection_)
            offline_reason_ = why;
    } else {
        connection_.reset();
        offline_reason_ = "no online_query is set";
    }
    config::Diagnostics diag;
    plan_ = plan_routes(cfg_, connection_, diag);
    for (const config::Diagnostic& d : diag.entries())
        log::warning("%s", d.text().c_str());
    if (plan_.unknown_connection)
        log::warning("connection %s is online but there is no query_routes.%s", connection_->c_str(),
            connection_->c_str());
    log::info("pass %llu: %s; %zu route(s) usable", static_cast<unsigned long long>(pass_),
        connection_ ? ("online: " + *connection_).c_str() : ("offline: " + offline_reason_).c_str(),
        plan_.routes.size());
}

protocol::RouteAnswer Selector::answer(const protocol::RouteQuery& query, std::string_view header)
{
    refresh(query);
    protocol::RouteAnswer out;
    out.connection = connection_;
    AddressOptions opts;
    opts.allow_null = true;
    MessageFacts facts;
    bool sender_ok = true;
    if (!query.sender.empty()) {
        auto sender = parse_path("<" + query.sender + ">", opts);
        if (sender)
            facts.sender = *sender;
        sender_ok = sender.has_value();
    }
    facts.from_header = first_from_address(header, cfg_.host_name, facts.from_header_unparsable);
    std::vector<Address> recipients;
    std::vector<bool> parsed;
    for (const std::string& text : query.recipients) {
        auto a = parse_path("<" + text + ">", AddressOptions {});
        parsed.push_back(a.has_value() && sender_ok); // a bad sender must not pass as <>
        recipients.push_back(a ? *a : Address());
    }
    std::vector<RouteOffer> offers = offer_routes(plan_.routes, facts, recipients, cfg_.caseless_matching);
    out.recipients.resize(recipients.size());
    for (const RouteOffer& offer : offers)
        for (std::size_t i : offer.recipients)
            if (parsed[i])
                out.recipients[i].candidates.push_back({ offer.route->file, next_hop(*offer.route, recipients[i]) });
    for (std::size_t i = 0; i < recipients.size(); ++i) {
        protocol::RouteChoice& c = out.recipients[i];
        if (!c.candidates.empty())
            continue;
        if (!sender_ok)
            c.reason = "the sender address cannot be parsed";
        else if (!parsed[i])
            c.reason = "the address cannot be parsed";
        else if (plan_.routes.empty())
            c.reason = connection_ ? "connection " + *connection_ + " has no usable route"
                                   : "no route is online (" + offline_reason_ + ")";
        else
            c.reason = "no online route takes it (" + std::string(connection_ ? "online: " + *connection_ : "offline")
                + "; see masqmail --explain)";
    }
    return out;
}

} // namespace mm::route
