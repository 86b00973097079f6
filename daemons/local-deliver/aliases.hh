// SPDX-License-Identifier: GPL-2.0-or-later
// local-deliver's own alias tables (alias_file, globalias_file), read once at
// start-up while the daemon may still read root-only files, with the owner of
// each file: a `|command` runs as the owner of the file that named it
// (DESIGN rule 3: qmgr never tells local-deliver a command). The files are
// administrator-owned. Linked by local-deliver.
#pragma once

#include "mm/alias.hh"
#include "mm/alias_expand.hh"
#include "mm/config.hh"
#include "mm/result.hh"

#include <optional>
#include <sys/types.h>

namespace mm::local {

class LocalAliases {
public:
    // Reads the files the configuration names. Every diagnostic is logged
    // ("file:line: reason"); an error in either file fails the whole load.
    static Result<LocalAliases> load(const config::MainConfig& cfg);
    // From tables in memory (tests).
    LocalAliases(std::optional<config::AliasTable> glob, uid_t glob_owner,
        std::optional<config::AliasTable> plain, uid_t plain_owner);

    AliasTables tables() const;

    // The owner of the alias file whose entry named this pipe leaf: the file
    // alias expansion consults first for the leaf's alias (glob, then plain).
    uid_t pipe_owner(const AliasLeaf& leaf, bool caseless_matching) const;

private:
    std::optional<config::AliasTable> glob_;
    uid_t glob_owner_ = 0;
    std::optional<config::AliasTable> plain_;
    uid_t plain_owner_ = 0;
};

} // namespace mm::local
