// SPDX-License-Identifier: GPL-2.0-or-later
// Planning one deliver request (request.hh): parse, expand again, match the
// asked keys. The request is from qmgr and untrusted in what it asks; the
// alias tables are local-deliver's own. Linked by local-deliver.
#include "request.hh"

#include "mm/log.hh"

#include <map>
#include <set>

namespace mm::local {

namespace {

using protocol::LeafOutcome;
using protocol::LeafResult;

std::vector<std::string> distinct(const std::vector<std::string>& keys)
{
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (const std::string& key : keys)
        if (seen.insert(key).second)
            out.push_back(key);
    return out;
}

bool is_remote_key(const std::string& key)
{
    return key.starts_with("r ");
}

// The envelope of every leaf of the request, rcpt left to the leaf.
Result<LocalEnvelope> request_envelope(const protocol::DeliverRequest& request, const config::MainConfig& cfg)
{
    LocalEnvelope envelope;
    envelope.message_id = request.queue_id;
    Result<Address> recipient = parse_path(request.recipient, {});
    if (!recipient)
        return recipient.error().with_context("bad recipient in request");
    envelope.original_rcpt = *recipient;
    if (!request.return_path.empty()) {
        Result<Address> sender = parse_path(request.return_path, {});
        if (!sender)
            return sender.error().with_context("bad return path in request");
        envelope.return_path = *sender;
    }
    envelope.received_host = request.received_host;
    envelope.ident = request.ident;
    envelope.qualify_domain = cfg.host_name;
    return envelope;
}

} // namespace

std::vector<LeafResult> answer_all(
    const std::vector<std::string>& keys, LeafOutcome outcome, const std::string& reason)
{
    std::vector<LeafResult> out;
    for (const std::string& key : distinct(keys))
        out.push_back({ key, outcome, reason });
    return out;
}

DeliveryPlan plan_delivery(const protocol::DeliverRequest& request, const DeliveryContext& ctx)
{
    DeliveryPlan plan;
    plan.queue_id = request.queue_id;
    plan.recipient = request.recipient;
    Result<LocalEnvelope> envelope = request_envelope(request, *ctx.cfg);
    if (!envelope) {
        plan.answered = answer_all(request.leaves, LeafOutcome::failed, envelope.error().message());
        return plan;
    }
    plan.envelope = std::move(envelope).value();
    Result<Expansion> expansion
        = expand_aliases(plan.envelope.original_rcpt, ctx.aliases->tables(), *ctx.cfg);
    if (!expansion) {
        plan.answered = answer_all(request.leaves, LeafOutcome::failed, expansion.error().message());
        return plan;
    }
    std::map<std::string, const AliasLeaf*> by_key;
    for (const AliasLeaf& leaf : expansion->leaves)
        by_key.emplace(leaf_key(leaf, ctx.cfg->caseless_matching), &leaf);
    for (const std::string& key : distinct(request.leaves)) {
        auto found = by_key.find(key);
        if ((found != by_key.end() && !found->second->local) || (found == by_key.end() && is_remote_key(key)))
            plan.answered.push_back({ key, LeafOutcome::failed, reason_not_local });
        else if (found == by_key.end())
            plan.answered.push_back({ key, LeafOutcome::deferred, reason_aliases_changed });
        else
            plan.to_deliver.push_back({ key, *found->second });
    }
    return plan;
}

std::vector<LeafResult> defer_planned(const DeliveryPlan& plan, const std::string& reason)
{
    std::vector<LeafResult> results = plan.answered;
    for (const PlannedLeaf& planned : plan.to_deliver) {
        results.push_back({ planned.key, LeafOutcome::deferred, reason });
        log_outcome(
            plan.queue_id, describe_leaf(planned.leaf, plan.envelope.original_rcpt), "-", results.back());
    }
    return results;
}

std::string describe_leaf(const AliasLeaf& leaf, const Address& original)
{
    if (leaf.kind == LeafKind::pipe)
        return "|" + leaf.command.text + " " + original.path();
    if (leaf.address == original)
        return original.path();
    return leaf.address.str() + " " + original.path();
}

void log_outcome(
    const std::string& queue_id, const std::string& what, const char* how, const LeafResult& result)
{
    switch (result.outcome) {
    case LeafOutcome::delivered:
        log::info("%s => %s with %s", queue_id.c_str(), what.c_str(), how);
        break;
    case LeafOutcome::deferred:
        log::notice("%s == %s deferred: %s", queue_id.c_str(), what.c_str(), result.reason.c_str());
        break;
    case LeafOutcome::failed:
        log::notice("%s == %s failed: %s", queue_id.c_str(), what.c_str(), result.reason.c_str());
        break;
    }
}

void log_answered(const DeliveryPlan& plan)
{
    for (const LeafResult& result : plan.answered)
        log_outcome(plan.queue_id, "<" + plan.recipient + "> leaf '" + result.key + "'", "-", result);
}

} // namespace mm::local
