// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail --explain (explain.hh).
#include "explain.hh"

#include "mm/alias_expand.hh"
#include "mm/recipient.hh"
#include "mm/route_rewrite.hh"
#include "mm/route_select.hh"
#include "mm/sysexits.hh"

#include <algorithm>
#include <cstdio>

namespace mm::frontend {

namespace {

using config::MboxMethod;
using config::RouteConfig;

// masqmail §4.3's order: mbox_users, mda_users, maildir_users, mbox_default.
std::string local_delivery(const std::string& mailbox, const config::MainConfig& cfg)
{
    auto listed = [&](const std::vector<std::string>& users) {
        return std::find(users.begin(), users.end(), mailbox) != users.end();
    };
    MboxMethod method = listed(cfg.mbox_users) ? MboxMethod::mbox
        : listed(cfg.mda_users)                ? MboxMethod::mda
        : listed(cfg.maildir_users)            ? MboxMethod::maildir
                                               : cfg.mbox_default;
    switch (method) {
    case MboxMethod::mbox: return "mbox " + cfg.mail_dir + "/" + mailbox;
    case MboxMethod::maildir: return "Maildir of " + mailbox;
    case MboxMethod::mda: return cfg.mda ? "the MDA " + cfg.mda->text : "the MDA (mda is not set: it would fail)";
    }
    return {};
}

const char* tls_name(config::TlsMode mode)
{
    switch (mode) {
    case config::TlsMode::none: return "none";
    case config::TlsMode::opportunistic: return "opportunistic";
    case config::TlsMode::starttls: return "starttls";
    case config::TlsMode::implicit: return "implicit";
    }
    return "";
}

// "smarthost smtp.example.net:587, TLS starttls (verified), AUTH as joe".
std::string transport_of(const RouteConfig& r)
{
    std::string out;
    if (r.pipe)
        return "the pipe " + r.pipe->text;
    if (r.mail_host) {
        out = "smarthost " + r.mail_host->str();
        for (const config::HostPort& h : r.more_mail_hosts)
            out += ", else " + h.str();
    }
    else
        out = "direct to the MX hosts of the domain, port " + std::to_string(r.smtp_port);
    if (r.wrapper)
        out += ", through the wrapper " + r.wrapper->text;
    out += std::string(", TLS ") + tls_name(r.tls);
    if (r.tls != config::TlsMode::none)
        out += r.tls_fingerprint ? " (pinned certificate)" : r.tls_verify ? " (verified)" : " (not verified)";
    if (r.auth_login && (r.auth_secret || r.auth_secret_file || r.auth_secret_command))
        out += ", AUTH as " + *r.auth_login;
    return out;
}

void print_rewrites(const RouteConfig& route, const config::MainConfig& cfg, const Address& sender)
{
    if (sender.is_null())
        return;
    auto rewrites = explain_address_rewrites(route, cfg, sender);
    if (!rewrites) {
        std::printf("      rewriting: %s\n", rewrites.error().message().c_str());
        return;
    }
    for (const AddressRewrite& r : *rewrites)
        std::printf("      rewrites the sender in %.*s: %s -> %s (%.*s)\n", static_cast<int>(r.field.size()),
            r.field.data(), r.old_address.c_str(), r.new_address.c_str(), static_cast<int>(r.map.size()), r.map.data());
}

} // namespace

int explain_address(const Context& ctx)
{
    const config::MainConfig& cfg = ctx.config;
    AddressOptions opts { .qualify_domain = cfg.host_name, .allow_null = false };
    auto recipient = parse_address(ctx.invocation.explain_address, opts);
    if (!recipient)
        return report(Error::permanent("not an address: " + recipient.error().message()).exit_as(ex::dataerr));
    AddressOptions sender_opts { .qualify_domain = cfg.host_name, .allow_null = true };
    auto sender = parse_address(ctx.invocation.sender.value_or(ctx.login), sender_opts);
    if (!sender)
        return report(Error::permanent("not a sender address: " + sender.error().message()).exit_as(ex::dataerr));

    std::printf("recipient: <%s>\n", recipient->str().c_str());
    std::printf("sender: <%s>\n", sender->str().c_str());

    config::Diagnostics diag;
    std::optional<config::AliasTable> glob, plain;
    if (cfg.globalias_file)
        glob = config::read_alias_file(*cfg.globalias_file, config::AliasFileKind::glob, cfg.host_name, diag,
            config::BadItems::keep);
    if (cfg.alias_file)
        plain = config::read_alias_file(*cfg.alias_file, config::AliasFileKind::plain, cfg.host_name, diag,
            config::BadItems::keep);
    AliasTables tables { glob ? &*glob : nullptr, plain ? &*plain : nullptr };
    auto expansion = expand_aliases(*recipient, tables, cfg);
    if (!expansion) {
        std::printf("aliases: %s: the recipient would fail and its sender get a bounce\n",
            expansion.error().message().c_str());
        diag.print(stderr);
        return ex::ok;
    }
    if (expansion->leaves.empty())
        std::printf("aliases: an alias to nothing: the mail is dropped\n");

    std::vector<const AliasLeaf*> remote;
    for (const AliasLeaf& leaf : expansion->leaves) {
        std::printf("%s\n", leaf.describe().c_str());
        if (leaf.kind == LeafKind::pipe)
            std::printf("  local: the command %s, as the alias file's owner\n", leaf.command.text.c_str());
        else if (leaf.local)
            std::printf("  local: %s\n", local_delivery(std::string(leaf.address.local_part()), cfg).c_str());
        else {
            std::printf("  remote\n");
            remote.push_back(&leaf);
        }
    }
    if (remote.empty()) {
        diag.print(stderr);
        return ex::ok;
    }

    std::optional<std::string> connection;
    if (cfg.online_query) {
        std::string why;
        connection = query_online(*cfg.online_query, std::chrono::seconds(30), &why);
        if (connection)
            std::printf("online: %s (online_query says so)\n", connection->c_str());
        else
            std::printf("%s (online_query)\n", why.c_str());
    } else {
        std::printf("online_query is not set: only the permanent routes are used\n");
    }
    RoutePlan plan = plan_routes(cfg, connection, diag);
    if (plan.unknown_connection)
        std::printf("there is no query_routes.%s: that connection has no routes\n", connection->c_str());
    for (const std::string& path : plan.unreadable)
        std::printf("route %s cannot be used (see the errors below)\n", path.c_str());

    MessageFacts facts { *sender, std::nullopt, false };
    std::vector<Address> addresses;
    for (const AliasLeaf* leaf : remote)
        addresses.push_back(leaf->address);
    std::vector<RouteOffer> offers = offer_routes(plan.routes, facts, addresses, cfg.caseless_matching);
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        std::printf("<%s>:\n", addresses[i].str().c_str());
        bool taken = false;
        for (const RouteConfig& route : plan.routes) {
            auto offer = std::find_if(offers.begin(), offers.end(), [&](const RouteOffer& o) {
                return o.route == &route
                    && std::find(o.recipients.begin(), o.recipients.end(), i) != o.recipients.end();
            });
            if (offer == offers.end()) {
                std::string why = route_refusal(route, facts, addresses[i], cfg.caseless_matching);
                std::printf("  route %s: not taken: %s\n", route.file.c_str(),
                    why.empty() ? "an earlier last_route route took it" : why.c_str());
                continue;
            }
            std::printf("  route %s%s: %s\n", route.file.c_str(), taken ? " (if the one above fails)" : "",
                transport_of(route).c_str());
            print_rewrites(route, cfg, *sender);
            taken = true;
        }
        if (!taken)
            std::printf("  no route takes it now: it stays queued (offline time never counts toward bouncing)\n");
    }
    diag.print(stderr);
    return ex::ok;
}

} // namespace mm::frontend
