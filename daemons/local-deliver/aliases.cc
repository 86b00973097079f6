// SPDX-License-Identifier: GPL-2.0-or-later
// Reading local-deliver's alias tables and finding which file named a pipe.
// The files are administrator-owned, parsed as untrusted bytes by mm/alias.hh.
// Linked by local-deliver.
#include "aliases.hh"

#include "mm/config_lexer.hh"
#include "mm/cursor.hh"
#include "mm/limits.hh"
#include "mm/log.hh"

#include <string>

namespace mm::local {

namespace {

struct LoadedTable {
    std::optional<config::AliasTable> table;
    uid_t owner = 0;
};

// One file, or nothing when the option is unset.
Result<LoadedTable> load_table(
    const std::optional<std::string>& path, config::AliasFileKind kind, const config::MainConfig& cfg)
{
    if (!path)
        return LoadedTable {};
    Result<config::ConfigFile> file = config::read_config_file(*path, limits::alias_file);
    if (!file)
        return Error::permanent(*path + ": " + file.error().message());
    config::Diagnostics diag;
    // Bad items stay in the table and fail only the recipients that reach
    // them (qmgr reads the files the same way); the rest is delivered.
    std::optional<config::AliasTable> table
        = config::parse_alias_table(file->text, *path, kind, cfg.host_name, diag, config::BadItems::keep);
    for (const config::Diagnostic& d : diag.entries())
        log::warning("%s", d.text().c_str());
    if (!table)
        return Error::permanent("errors in alias file " + *path);
    return LoadedTable { std::move(table), file->owner };
}

// As alias expansion looks an address up in the glob table: with its domain
// in lower case, so that keys without '@' match the domain caseless too.
Address with_lower_domain(const Address& address)
{
    if (address.domain().empty())
        return address;
    std::string text = address.str();
    std::size_t at = text.size() - address.domain().size();
    for (std::size_t i = at; i < text.size(); ++i)
        text[i] = ascii_lower(text[i]);
    Result<Address> folded = parse_address(text, {});
    return folded ? *std::move(folded) : address;
}

} // namespace

Result<LocalAliases> LocalAliases::load(const config::MainConfig& cfg)
{
    Result<LoadedTable> glob = load_table(cfg.globalias_file, config::AliasFileKind::glob, cfg);
    if (!glob)
        return std::move(glob).error();
    Result<LoadedTable> plain = load_table(cfg.alias_file, config::AliasFileKind::plain, cfg);
    if (!plain)
        return std::move(plain).error();
    return LocalAliases(std::move(glob->table), glob->owner, std::move(plain->table), plain->owner);
}

LocalAliases::LocalAliases(std::optional<config::AliasTable> glob, uid_t glob_owner,
    std::optional<config::AliasTable> plain, uid_t plain_owner)
    : glob_(std::move(glob))
    , glob_owner_(glob_owner)
    , plain_(std::move(plain))
    , plain_owner_(plain_owner)
{
}

AliasTables LocalAliases::tables() const
{
    return { glob_ ? &*glob_ : nullptr, plain_ ? &*plain_ : nullptr };
}

uid_t LocalAliases::pipe_owner(const AliasLeaf& leaf, bool caseless_matching) const
{
    if (glob_ && glob_->find(with_lower_domain(leaf.address), caseless_matching) != nullptr)
        return glob_owner_;
    return plain_owner_;
}

} // namespace mm::local
