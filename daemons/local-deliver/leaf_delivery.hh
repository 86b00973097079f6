// SPDX-License-Identifier: GPL-2.0-or-later
// The delivery of a planned request's leaves, in the request's child process:
// for each leaf the transport and the user are re-derived from the
// configuration (masqmail §4.3, §4.4), and the leaf is delivered by a worker
// process that first becomes that user, holding no capability. Message
// content is untrusted and only ever read through the passed descriptor.
// Linked by local-deliver.
#pragma once

#include "request.hh"

#include "mm/priv.hh"
#include "mm/protocol.hh"
#include "mm/result.hh"

#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace mm::local {

enum class Method { mbox, maildir, mda, pipe };
const char* method_name(Method method);

// Where and as whom one leaf is delivered.
struct Target {
    Method method = Method::mbox;
    std::string mailbox; // the local part (every method but pipe)
    // The user the worker becomes; none in a private instance.
    std::optional<priv::Identity> identity;
    uid_t owner = 0; // the uid that must own the mbox file or Maildir
};

// A mailbox leaf (mailbox, or a local final_address): mbox_users, mda_users,
// maildir_users, else mbox_default; in a system install the user named by
// the local part (none: failed "no such user"; uid 0: failed). A pipe leaf:
// in a system install the owner of the alias file that named it, or `nobody`
// when that owner is root (Postfix's default_privs rule).
Result<Target> choose_target(const AliasLeaf& leaf, const DeliveryContext& ctx);

// Delivers every leaf of `plan` one after another, each in its own worker
// process, logging one line per leaf. One result per planned leaf.
std::vector<protocol::LeafResult> deliver_leaves(
    const DeliveryPlan& plan, const MessageSource& message, const DeliveryContext& ctx);

// The key of the requests that can be delivered together with this one: a
// plan with exactly one leaf, a local mailbox, gives "mailbox NAME"; any
// other plan gives "" (delivered alone).
std::string batch_key(const DeliveryPlan& plan);

// One request of a batch: its plan (borrowed) and its message.
struct BatchItem {
    const DeliveryPlan* plan = nullptr;
    MessageSource message;
};

// Delivers the one leaf of each item, all with the same batch_key(), in one
// worker process as that mailbox's user: an mbox is locked once and fsynced
// once for them all. Logs one line per leaf; one result per item, in order.
std::vector<protocol::LeafResult> deliver_batch(const std::vector<BatchItem>& items, const DeliveryContext& ctx);

} // namespace mm::local
