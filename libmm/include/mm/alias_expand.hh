// SPDX-License-Identifier: GPL-2.0-or-later
// Alias expansion of one top-level recipient into delivery leaves (masqmail
// §4.2, without its bugs §10 1 and 6). Alias tables are administrator-owned;
// the recipient comes from an untrusted sender, so depth, fan-out and mailbox
// names are bounded and checked. Linked by qmgr (local/remote split) and
// local-deliver, which re-expands from root-owned files (DESIGN rule 3).
#pragma once

#include "mm/address.hh"
#include "mm/alias.hh"
#include "mm/config.hh"
#include "mm/result.hh"

#include <string>
#include <vector>

namespace mm {

// Either table may be absent (alias_file / globalias_file unset). The glob
// table is consulted before the plain one at every level.
struct AliasTables {
    const config::AliasTable* glob = nullptr;
    const config::AliasTable* plain = nullptr;
};

enum class LeafKind {
    mailbox, // a local address without alias: the mailbox (user) named by its local part
    remote, // a non-local address: left to the routes
    pipe, // `|command` from an alias file
    final_address, // `\name`: delivered as is (as a mailbox when local), never looked up
};

struct AliasLeaf {
    LeafKind kind = LeafKind::mailbox;
    // mailbox, remote, final_address: the leaf itself. pipe: the alias whose
    // entry named the command (the recipient the pipe delivers for).
    Address address;
    config::Command command; // pipe only: argv split from root-owned config
    // Delivered on this host: mailbox, pipe, and final_address when
    // is_local(address). A local leaf other than a pipe goes to the mailbox
    // address.local_part(), which is_safe_mailbox_name() has accepted.
    bool local = true;
    // The top-level recipient first, ending with `address`: for logs.
    std::vector<Address> chain;

    // "a@h -> b@h -> c@h", or "a@h -> |/usr/bin/cmd arg" for a pipe.
    std::string describe() const;
};

struct Expansion {
    Address recipient; // the top-level recipient
    // In alias-file order, duplicates removed (the first chain kept). Empty
    // for an alias to nothing: the recipient is then done.
    std::vector<AliasLeaf> leaves;
};

// What a leaf delivers to, as printable ASCII: "m NAME" (a mailbox), "r
// user@domain" (remote), "p alias@domain WORD..." (a pipe; words %-encoded).
// Two leaves with one key deliver the same thing. Stored in state files as
// FinishedLeaf::key and passed to local-deliver, which compares it with its
// own expansion: it is never executed.
std::string leaf_key(const AliasLeaf& leaf, bool caseless_local);

// Expands one top-level recipient. A non-local recipient gives one remote
// leaf. Any error (loop, bad item, unsafe mailbox name, more than
// limits::alias_depth levels or limits::alias_fanout leaves) fails this
// recipient as a whole, ErrorKind::permanent, with a reason naming the chain
// ("alias loop: a@h -> b@h -> a@h") or the file and line ("bad alias item
// 'bogus@' in /etc/aliases:3"). The caller records that recipient as failed
// (final, bounced) and delivers its siblings: nothing of it is left pending.
Result<Expansion> expand_aliases(
    const Address& recipient, const AliasTables& tables, const config::MainConfig& cfg);

// Removes leaves that an earlier top-level recipient of the same message
// already has (same mailbox, same remote address, or same command for the
// same alias), keeping the first chain; failed expansions are skipped. A
// recipient left with no leaves is done: its mail goes through the kept leaf.
void drop_duplicate_leaves(std::vector<Result<Expansion>>& expansions, const config::MainConfig& cfg);

} // namespace mm
