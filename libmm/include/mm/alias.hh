// SPDX-License-Identifier: GPL-2.0-or-later
// Alias files (masqmail §4.1, without its bugs §10 42) read into a table, and
// lookup of one recipient in it; expansion lives elsewhere. Input is
// administrator-owned (alias_file, globalias_file), parsed as untrusted bytes.
// Linked by local-deliver, qmgr and the front end (--check-config, -bi).
#pragma once

#include "mm/address.hh"
#include "mm/config_lexer.hh"
#include "mm/config_value.hh"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm::config {

// plain (alias_file): the key is a local part. glob (globalias_file): the key
// is an fnmatch pattern for the whole address; first matching entry wins.
enum class AliasFileKind { plain, glob };

enum class AliasTargetKind {
    address, // "bob", "bob@example.org": expanded further
    verbatim, // "\bob": delivered as is, not expanded further
    pipe, // "|/usr/bin/cmd args": the message piped to a command
};

struct AliasTarget {
    AliasTargetKind kind = AliasTargetKind::address;
    std::string text; // the item as written, quotes removed
    Address address; // address and verbatim, qualified with the host name
    Command command; // pipe
};

struct AliasEntry {
    std::string key;
    std::vector<AliasTarget> targets; // may be empty: an alias to nothing
    std::size_t line = 0;
};

class AliasTable {
public:
    AliasTable(AliasFileKind kind, std::string file, std::vector<AliasEntry> entries)
        : kind_(kind)
        , file_(std::move(file))
        , entries_(std::move(entries))
    {
    }

    AliasFileKind kind() const { return kind_; }
    const std::string& file() const { return file_; }
    const std::vector<AliasEntry>& entries() const { return entries_; }

    // The first entry for `recipient`, or nullptr. Local parts compare
    // case-insensitively with caseless_matching, and `postmaster` always
    // (RFC 5321); glob domains always compare case-insensitively.
    const AliasEntry* find(const Address& recipient, bool caseless_matching) const;

private:
    AliasFileKind kind_;
    std::string file_;
    std::vector<AliasEntry> entries_;
};

// The format, as masqmail's with these changes (all documented in
// masqmail.aliases(5)):
//  * `KEY: item, item, ...`; lines up to limits::config_line bytes, never split.
//  * A line starting with a space or tab continues the previous entry
//    (sendmail style); an item never spans lines.
//  * Lines whose first non-blank byte is `#` are comments, and so is
//    whitespace + `#` outside quotes up to the end of a line (quote an item
//    that needs " #").
//  * Items: "quoted" (backslash escapes), `\name`, `|command`, or an address;
//    unqualified addresses get @qualify_domain. `/file` and `:include:` are
//    refused, not misread as addresses.
//  * The first entry of a key wins; a later duplicate is a warning.
// Any error gives nullopt, unless bad items are kept (the daemons): then
// the errors are still reported, the table holds every good entry, and a
// bad item stays in its entry as an item with no address, which fails each
// recipient whose expansion reaches it (and no other). A file that cannot
// be read, or a line with no alias name, gives no entry at all.
enum class BadItems { refuse, keep };
std::optional<AliasTable> read_alias_file(const std::string& path, AliasFileKind kind,
    std::string_view qualify_domain, Diagnostics& diag, BadItems bad_items = BadItems::refuse);
std::optional<AliasTable> parse_alias_table(std::string_view text, std::string_view file, AliasFileKind kind,
    std::string_view qualify_domain, Diagnostics& diag, BadItems bad_items = BadItems::refuse);

} // namespace mm::config
