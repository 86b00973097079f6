// SPDX-License-Identifier: GPL-2.0-or-later
// Alias expansion (masqmail §4.2) as an iterative depth-first walk with an
// explicit stack, bounded in depth, nodes and leaves. Alias tables are
// administrator-owned; the recipient comes from an untrusted sender.
// Linked by qmgr and local-deliver.
#include "mm/alias_expand.hh"

#include "mm/cursor.hh"
#include "mm/limits.hh"
#include "mm/recipient.hh"

#include <cstddef>
#include <set>
#include <string_view>

namespace mm {

namespace {

using config::AliasEntry;
using config::AliasTable;
using config::AliasTarget;
using config::AliasTargetKind;
using config::MainConfig;

constexpr std::size_t no_parent = static_cast<std::size_t>(-1);
// Work bound besides the leaf bound: an alias tree whose branches end in
// aliases to nothing has few leaves but may have very many nodes.
constexpr std::size_t max_nodes = limits::alias_fanout * limits::alias_depth;

std::string lower(std::string_view text)
{
    std::string out(text);
    for (char& c : out)
        c = ascii_lower(c);
    return out;
}

bool is_postmaster(const Address& a)
{
    return equals_nocase(a.local_part(), "postmaster");
}

// Loop test: as the lookup compares, so postmaster is caseless here too.
bool same_alias(const Address& a, const Address& b, bool caseless)
{
    return same_recipient(a, b, caseless || (is_postmaster(a) && is_postmaster(b)));
}

std::string address_key(const Address& a, bool caseless_local)
{
    return (caseless_local ? lower(a.local_part()) : a.local_part()) + "@" + lower(a.domain());
}

Error expansion_error(std::string reason)
{
    return Error::permanent(std::move(reason));
}

// One node of the walk: the top-level recipient (no target) or an item of
// the alias entry of its parent.
struct Node {
    const AliasTarget* target = nullptr;
    Address address; // address and verbatim items; a pipe keeps its parent's
    std::size_t parent = no_parent;
    std::size_t depth = 0;
};

class Expander {
public:
    Expander(const AliasTables& tables, const MainConfig& cfg)
        : tables_(tables)
        , cfg_(cfg)
    {
    }

    Result<Expansion> run(const Address& recipient);

private:
    struct Found {
        const AliasEntry* entry = nullptr;
        const AliasTable* table = nullptr;
    };

    Found lookup(const Address& address) const;
    Result<void> visit(std::size_t index);
    Result<void> expand_entry(const Found& found, std::size_t index);
    Result<void> check_target(const AliasTarget& target, const Found& found, std::size_t parent) const;
    Result<void> add_leaf(LeafKind kind, std::size_t index);
    std::vector<Address> chain_of(std::size_t index) const;
    std::string chain_text(std::size_t index) const;

    const AliasTables& tables_;
    const MainConfig& cfg_;
    std::vector<Node> nodes_;
    std::vector<std::size_t> pending_; // the explicit stack, next node on top
    std::set<std::string> expanded_;
    std::set<std::string> leaf_keys_;
    Expansion out_;
};

Result<Expansion> Expander::run(const Address& recipient)
{
    out_.recipient = recipient;
    nodes_.push_back(Node { nullptr, recipient, no_parent, 0 });
    pending_.push_back(0);
    while (!pending_.empty()) {
        std::size_t index = pending_.back();
        pending_.pop_back();
        if (Result<void> visited = visit(index); !visited)
            return std::move(visited).error();
    }
    return std::move(out_);
}

// The address with its domain in lower case: the glob table sees this, so
// that keys without '@' ("*", "*example.org") match the domain
// case-insensitively too (masqmail §10 38).
Address with_lower_domain(const Address& address)
{
    if (address.domain().empty())
        return address;
    std::string text = address.str();
    text.replace(text.size() - address.domain().size(), std::string::npos, lower(address.domain()));
    Result<Address> folded = parse_address(text, {});
    return folded ? *std::move(folded) : address;
}

// Glob table first, then plain (masqmail §4.2).
Expander::Found Expander::lookup(const Address& address) const
{
    bool caseless = cfg_.caseless_matching;
    if (tables_.glob != nullptr) {
        if (const AliasEntry* entry = tables_.glob->find(with_lower_domain(address), caseless))
            return { entry, tables_.glob };
    }
    if (tables_.plain != nullptr) {
        if (const AliasEntry* entry = tables_.plain->find(address, caseless))
            return { entry, tables_.plain };
    }
    return {};
}

Result<void> Expander::visit(std::size_t index)
{
    const Node& node = nodes_[index];
    if (node.target != nullptr && node.target->kind == AliasTargetKind::pipe)
        return add_leaf(LeafKind::pipe, index);
    if (node.target != nullptr && node.target->kind == AliasTargetKind::verbatim)
        return add_leaf(LeafKind::final_address, index);
    if (!is_local(node.address, cfg_))
        return add_leaf(LeafKind::remote, index);
    Found found = lookup(node.address);
    if (found.entry == nullptr)
        return add_leaf(LeafKind::mailbox, index);
    // Reached before by another branch: its leaves are there already, and a
    // loop through it would have been found then (depth-first order).
    if (!expanded_.insert(address_key(node.address, cfg_.caseless_matching)).second)
        return ok();
    if (node.depth >= limits::alias_depth)
        return expansion_error(
            "alias nesting deeper than " + std::to_string(limits::alias_depth) + ": " + chain_text(index));
    return expand_entry(found, index);
}

Result<void> Expander::expand_entry(const Found& found, std::size_t index)
{
    const std::vector<AliasTarget>& targets = found.entry->targets;
    for (const AliasTarget& target : targets)
        if (Result<void> checked = check_target(target, found, index); !checked)
            return checked;
    if (nodes_.size() + targets.size() > max_nodes)
        return expansion_error("alias expansion of " + out_.recipient.str() + " has more than "
            + std::to_string(max_nodes) + " entries");
    std::size_t first = nodes_.size();
    std::size_t depth = nodes_[index].depth + 1;
    for (const AliasTarget& target : targets) {
        Address address = target.kind == AliasTargetKind::pipe ? nodes_[index].address : target.address;
        nodes_.push_back(Node { &target, std::move(address), index, depth });
    }
    for (std::size_t i = nodes_.size(); i > first; --i)
        pending_.push_back(i - 1);
    return ok();
}

// A bad item (only in a table built leniently) or a loop fails the recipient.
Result<void> Expander::check_target(const AliasTarget& target, const Found& found, std::size_t parent) const
{
    bool bad = target.kind == AliasTargetKind::pipe ? target.command.argv.empty() : target.address.is_null();
    if (bad)
        return expansion_error("bad alias item " + config::in_quotes(target.text) + " in "
            + found.table->file() + ":" + std::to_string(found.entry->line));
    if (target.kind != AliasTargetKind::address)
        return ok();
    for (std::size_t i = parent; i != no_parent; i = nodes_[i].parent)
        if (same_alias(target.address, nodes_[i].address, cfg_.caseless_matching))
            return expansion_error("alias loop: " + chain_text(parent) + " -> " + target.address.str());
    return ok();
}

Result<void> Expander::add_leaf(LeafKind kind, std::size_t index)
{
    const Node& node = nodes_[index];
    AliasLeaf leaf;
    leaf.kind = kind;
    leaf.address = node.address;
    leaf.local = kind == LeafKind::mailbox || kind == LeafKind::pipe
        || (kind == LeafKind::final_address && is_local(node.address, cfg_));
    if (kind == LeafKind::pipe)
        leaf.command = node.target->command;
    leaf.chain = chain_of(kind == LeafKind::pipe ? node.parent : index);
    if (leaf.local && kind != LeafKind::pipe && !is_safe_mailbox_name(leaf.address.local_part()))
        return expansion_error(
            "unsafe mailbox name " + config::in_quotes(leaf.address.local_part()) + ": " + chain_text(index));
    if (!leaf_keys_.insert(leaf_key(leaf, cfg_.caseless_matching)).second)
        return ok();
    if (out_.leaves.size() >= limits::alias_fanout)
        return expansion_error("alias expansion of " + out_.recipient.str() + " gives more than "
            + std::to_string(limits::alias_fanout) + " recipients");
    out_.leaves.push_back(std::move(leaf));
    return ok();
}

std::vector<Address> Expander::chain_of(std::size_t index) const
{
    std::vector<Address> chain;
    for (std::size_t i = index; i != no_parent; i = nodes_[i].parent)
        chain.push_back(nodes_[i].address);
    return { chain.rbegin(), chain.rend() };
}

std::string Expander::chain_text(std::size_t index) const
{
    AliasLeaf leaf;
    leaf.kind = LeafKind::mailbox;
    leaf.chain = chain_of(index);
    return leaf.describe();
}

} // namespace

// Where a leaf delivers: two leaves with one key deliver the same thing.
// Pipes are keyed by command and alias, as Postfix local(8) keys them by
// command and recipient: the command sees the recipient in its environment.
// Command words are %-encoded so that the key stays printable ASCII.
std::string leaf_key(const AliasLeaf& leaf, bool caseless)
{
    if (leaf.kind == LeafKind::pipe) {
        std::string key = "p " + address_key(leaf.address, caseless);
        static constexpr char hex[] = "0123456789ABCDEF";
        for (const std::string& arg : leaf.command.argv) {
            key += ' ';
            for (unsigned char c : arg) {
                if (c > 0x20 && c < 0x7f && c != '%') {
                    key += static_cast<char>(c);
                } else {
                    key += '%';
                    key += hex[c >> 4];
                    key += hex[c & 15];
                }
            }
        }
        return key;
    }
    if (!leaf.local)
        return "r " + address_key(leaf.address, false);
    return "m " + (caseless ? lower(leaf.address.local_part()) : leaf.address.local_part());
}


std::string AliasLeaf::describe() const
{
    std::string out;
    for (const Address& a : chain)
        out += (out.empty() ? "" : " -> ") + a.str();
    if (kind == LeafKind::pipe)
        out += " -> |" + command.text;
    return out;
}

Result<Expansion> expand_aliases(const Address& recipient, const AliasTables& tables, const MainConfig& cfg)
{
    return Expander(tables, cfg).run(recipient);
}

void drop_duplicate_leaves(std::vector<Result<Expansion>>& expansions, const MainConfig& cfg)
{
    std::set<std::string> seen;
    for (Result<Expansion>& expansion : expansions) {
        if (!expansion)
            continue;
        std::vector<AliasLeaf> kept;
        for (AliasLeaf& leaf : expansion->leaves)
            if (seen.insert(leaf_key(leaf, cfg.caseless_matching)).second)
                kept.push_back(std::move(leaf));
        expansion->leaves = std::move(kept);
    }
}

} // namespace mm
