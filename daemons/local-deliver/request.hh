// SPDX-License-Identifier: GPL-2.0-or-later
// One deliver request from qmgr turned into a plan: the recipient expanded
// again with local-deliver's own alias tables, and each asked-for leaf key
// either matched to a local leaf of that expansion or answered at once. The
// request comes from qmgr (peer uid checked) and is treated as untrusted:
// it chooses which leaves, never what a leaf delivers to. Linked by
// local-deliver.
#pragma once

#include "aliases.hh"
#include "delivery.hh"

#include "mm/alias_expand.hh"
#include "mm/config.hh"
#include "mm/protocol.hh"

#include <string>
#include <sys/types.h>
#include <vector>

namespace mm::local {

// Everything a delivery needs besides the request.
struct DeliveryContext {
    const config::MainConfig* cfg = nullptr;
    const LocalAliases* aliases = nullptr;
    // A private instance delivers as the instance user and switches no identity.
    bool private_instance = false;
    uid_t instance_uid = 0;
};

struct PlannedLeaf {
    std::string key;
    AliasLeaf leaf;
};

struct DeliveryPlan {
    std::string queue_id;
    std::string recipient; // as requested, for log lines
    LocalEnvelope envelope; // rcpt is set per leaf
    std::vector<PlannedLeaf> to_deliver;
    // Keys settled without a delivery: not in this expansion, not local, or
    // the expansion failed.
    std::vector<protocol::LeafResult> answered;
};

inline constexpr const char* reason_aliases_changed
    = "alias files changed since the queue manager expanded this recipient";
inline constexpr const char* reason_not_local = "not a local leaf";

// Each distinct asked key appears once, in `to_deliver` or in `answered`.
DeliveryPlan plan_delivery(const protocol::DeliverRequest& request, const DeliveryContext& ctx);

// Every asked key answered with `outcome` and `reason` (a stopping daemon,
// a delivery process that died).
std::vector<protocol::LeafResult> answer_all(
    const std::vector<std::string>& keys, protocol::LeafOutcome outcome, const std::string& reason);

// The keys plan.answered settled, then every planned leaf deferred with
// `reason` (logged): for a request that will not be delivered now.
std::vector<protocol::LeafResult> defer_planned(const DeliveryPlan& plan, const std::string& reason);

// The masqmail-style log line of one leaf's outcome, queue id first:
//   ID => bob@host <alias@host> with mbox
//   ID == <bob@host> deferred: REASON
// `what` names the leaf (describe_leaf), `how` the transport.
void log_outcome(const std::string& queue_id, const std::string& what, const char* how,
    const protocol::LeafResult& result);
// log_outcome() for every key of plan.answered.
void log_answered(const DeliveryPlan& plan);
// "<addr>" for the recipient itself, "leaf <original>" for an alias leaf,
// "|command <original>" for a pipe.
std::string describe_leaf(const AliasLeaf& leaf, const Address& original);

} // namespace mm::local
