// SPDX-License-Identifier: GPL-2.0-or-later
// Alias files read into an AliasTable, and lookup of one recipient. Input is
// administrator-owned text parsed as untrusted bytes: lines, items and
// counts bounded. Linked by local-deliver, qmgr and the front end.
#include "mm/alias.hh"

#include "mm/cursor.hh"
#include "mm/limits.hh"

#include <fnmatch.h>
#include <map>

namespace mm::config {

namespace {

bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

bool key_is_valid(std::string_view key)
{
    if (key.empty() || key.size() > limits::address_text)
        return false;
    for (char c : key) {
        auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte == 0x7f)
            return false;
    }
    return true;
}

class AliasParser {
public:
    AliasParser(std::string_view file, std::string_view qualify_domain, bool keep_bad_items, Diagnostics& diag)
        : file_(file)
        , qualify_domain_(qualify_domain)
        , keep_bad_items_(keep_bad_items)
        , diag_(diag)
    {
    }

    std::vector<AliasEntry> run(std::string_view text);

private:
    void start_entry(const Line& line);
    void parse_items(std::string_view text, std::size_t line, AliasEntry& entry);
    bool take_item(Cursor& c, std::size_t line, std::string& item, bool& comment);
    static bool take_unquoted(Cursor& c, std::string& item, bool& comment);
    void add_target(std::string_view item, std::size_t line, AliasEntry& entry);
    void bad_item(std::string_view item, std::size_t line, AliasEntry& entry, std::string reason);
    void error(std::size_t line, std::string reason) { diag_.error(file_, line, std::move(reason)); }

    std::string_view file_;
    std::string_view qualify_domain_;
    bool keep_bad_items_;
    Diagnostics& diag_;
    std::vector<AliasEntry> entries_;
    // What a continuation line continues: nothing yet, the last entry, or an
    // entry line with an error (its continuations are skipped silently).
    enum class Last { nothing, entry, broken } last_ = Last::nothing;
    std::map<std::string, std::size_t, std::less<>> first_line_of_key_;
};

std::vector<AliasEntry> AliasParser::run(std::string_view text)
{
    LineReader lines(text, file_, diag_);
    while (std::optional<Line> line = lines.next()) {
        std::string_view content = trim(line->text);
        if (line->bad || content.empty() || content.front() == '#')
            continue;
        if (is_blank(line->text.front())) {
            if (last_ == Last::nothing)
                error(line->number, "continuation line without an alias entry before it");
            else if (last_ == Last::entry)
                parse_items(content, line->number, entries_.back());
            continue;
        }
        start_entry(*line);
    }
    return std::move(entries_);
}

void AliasParser::start_entry(const Line& line)
{
    last_ = Last::broken;
    std::size_t colon = line.text.find(':');
    if (colon == std::string_view::npos) {
        error(line.number, "missing ':' after the alias name");
        return;
    }
    std::string_view key = trim(line.text.substr(0, colon));
    if (!key_is_valid(key)) {
        error(line.number, "bad alias name " + in_quotes(key));
        return;
    }
    auto [it, fresh] = first_line_of_key_.emplace(key, line.number);
    if (!fresh)
        diag_.warning(file_, line.number,
            "alias " + in_quotes(key) + " ignored: already defined at line " + std::to_string(it->second));
    entries_.push_back(AliasEntry { std::string(key), {}, line.number });
    last_ = Last::entry;
    parse_items(line.text.substr(colon + 1), line.number, entries_.back());
}

void AliasParser::parse_items(std::string_view text, std::size_t line, AliasEntry& entry)
{
    Cursor c(text);
    for (;;) {
        c.skip_while(is_blank);
        if (c.at_end() || c.peek() == '#')
            return;
        std::string item;
        bool comment = false;
        if (!take_item(c, line, item, comment)) {
            if (keep_bad_items_) // the entry's users fail, rather than reach a part of it
                entry.targets.push_back(AliasTarget { AliasTargetKind::address, std::string(trim(text)), {}, {} });
            return;
        }
        if (!item.empty())
            add_target(item, line, entry);
        if (comment)
            return;
        (void)c.consume(',');
    }
}

// One item up to the next ',' (not consumed) or a comment; false on an error.
bool AliasParser::take_item(Cursor& c, std::size_t line, std::string& item, bool& comment)
{
    if (c.consume('"')) {
        std::string raw = "\""; // as written, for an address with a quoted local part
        for (;;) {
            if (c.at_end()) {
                error(line, "unterminated quote in alias item");
                return false;
            }
            char ch = c.next();
            raw += ch;
            if (ch == '"')
                break;
            if (ch == '\\' && !c.at_end()) {
                ch = c.next();
                raw += ch;
            }
            item += ch;
        }
        if (c.peek() == '@') { // "john doe"@example.org: an address, not a quoted item
            item = raw;
            return take_unquoted(c, item, comment);
        }
        c.skip_while(is_blank);
        if (!c.at_end() && c.peek() != ',' && c.peek() != '#') {
            error(line, "unexpected " + in_quotes(c.rest()) + " after a quoted alias item");
            return false;
        }
        comment = c.peek() == '#';
        return true;
    }
    return take_unquoted(c, item, comment);
}

// Appends up to the next ',' or a blank followed by '#' (a comment).
bool AliasParser::take_unquoted(Cursor& c, std::string& item, bool& comment)
{
    while (!c.at_end() && c.peek() != ',') {
        if (c.peek() == '#' && !item.empty() && is_blank(item.back())) {
            comment = true;
            break;
        }
        item += c.next();
    }
    item = std::string(trim(item));
    return true;
}

// A bad item is an error; a daemon's table keeps it as an item with no
// address, which fails each recipient whose expansion reaches it.
void AliasParser::bad_item(std::string_view item, std::size_t line, AliasEntry& entry, std::string reason)
{
    error(line, std::move(reason));
    if (keep_bad_items_)
        entry.targets.push_back(AliasTarget { AliasTargetKind::address, std::string(item), {}, {} });
}

void AliasParser::add_target(std::string_view item, std::size_t line, AliasEntry& entry)
{
    if (entry.targets.size() >= limits::alias_fanout) {
        error(line,
            "more than " + std::to_string(limits::alias_fanout) + " items in alias " + in_quotes(entry.key));
        return;
    }
    AliasTarget target;
    target.text = std::string(item);
    AddressOptions qualify { .qualify_domain = qualify_domain_ };
    if (item.front() == '|') {
        target.kind = AliasTargetKind::pipe;
        Result<Command> command = parse_command(item.substr(1));
        if (!command)
            return bad_item(item, line, entry, "bad pipe item " + in_quotes(item) + ": " + command.error().message());
        target.command = std::move(command).value();
    } else if (item.front() == '/' || item.substr(0, 9) == ":include:") {
        return bad_item(item, line, entry, "file and :include: items are not supported: " + in_quotes(item));
    } else {
        bool verbatim = item.front() == '\\';
        target.kind = verbatim ? AliasTargetKind::verbatim : AliasTargetKind::address;
        Result<Address> address = parse_address(verbatim ? item.substr(1) : item, qualify);
        if (!address)
            return bad_item(item, line, entry, "bad address " + in_quotes(item) + ": " + address.error().message());
        target.address = std::move(address).value();
    }
    entry.targets.push_back(std::move(target));
}

bool glob_matches(const std::string& key, const Address& recipient, bool fold_local)
{
    const std::string& local = recipient.local_part();
    int local_flags = fold_local ? FNM_CASEFOLD : 0;
    std::size_t at = key.rfind('@');
    if (at == std::string::npos)
        return fnmatch(key.c_str(), (local + "@" + recipient.domain()).c_str(), local_flags) == 0;
    return fnmatch(key.substr(0, at).c_str(), local.c_str(), local_flags) == 0
        && fnmatch(key.substr(at + 1).c_str(), recipient.domain().c_str(), FNM_CASEFOLD) == 0;
}

} // namespace

const AliasEntry* AliasTable::find(const Address& recipient, bool caseless_matching) const
{
    const std::string& local = recipient.local_part();
    bool fold = caseless_matching || equals_nocase(local, "postmaster");
    for (const AliasEntry& entry : entries_) {
        bool match = kind_ == AliasFileKind::glob
            ? glob_matches(entry.key, recipient, fold)
            : (fold ? equals_nocase(entry.key, local) : entry.key == local);
        if (match)
            return &entry;
    }
    return nullptr;
}

std::optional<AliasTable> parse_alias_table(std::string_view text, std::string_view file, AliasFileKind kind,
    std::string_view qualify_domain, Diagnostics& diag, BadItems bad_items)
{
    if (text.size() > limits::alias_file) {
        diag.error(file, 0, "file larger than " + std::to_string(limits::alias_file) + " bytes");
        return std::nullopt;
    }
    std::size_t errors_before = diag.error_count();
    bool keep = bad_items == BadItems::keep;
    std::vector<AliasEntry> entries = AliasParser(file, qualify_domain, keep, diag).run(text);
    if (diag.error_count() > errors_before && !keep)
        return std::nullopt;
    return AliasTable(kind, std::string(file), std::move(entries));
}

std::optional<AliasTable> read_alias_file(const std::string& path, AliasFileKind kind,
    std::string_view qualify_domain, Diagnostics& diag, BadItems bad_items)
{
    Result<ConfigFile> file = read_config_file(path, limits::alias_file);
    if (!file) {
        diag.error(path, 0, file.error().message());
        return std::nullopt;
    }
    return parse_alias_table(file->text, path, kind, qualify_domain, diag, bad_items);
}

} // namespace mm::config
