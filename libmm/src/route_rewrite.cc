// SPDX-License-Identifier: GPL-2.0-or-later
// A route's address rewriting at send time. Input: untrusted message text
// (already through enqueue) and administrator-owned rewrite maps, whose text
// is checked again before it enters a message. Work is linear in the header
// section times the rules tried; output bounded by
// limits::rewritten_header_section. Linked by remote-deliver and the front end.
#include "mm/route_rewrite.hh"

#include "mm/limits.hh"
#include "mm/message.hh"
#include "mm/recipient.hh"

#include <algorithm>
#include <array>
#include <fnmatch.h>
#include <optional>
#include <set>
#include <utility>

namespace mm {

namespace {

using config::MainConfig;
using config::RewriteMap;
using config::RewriteRule;
using config::RouteConfig;

// Qualifies unqualified header addresses so that parse_address_list accepts
// them. A domain literal, because no local part ends with ']': an addr-spec
// whose text does not end with its domain was unqualified.
constexpr std::string_view unqualified_marker = "[0.0.0.0]";

struct FieldMap {
    std::string_view field;
    std::string_view map_name;
    RewriteMap RouteConfig::*map;
};

constexpr std::array<FieldMap, 4> field_maps { {
    { "From", "map_h_from_addresses", &RouteConfig::map_h_from_addresses },
    { "Sender", "map_h_sender_addresses", &RouteConfig::map_h_sender_addresses },
    { "Reply-To", "map_h_reply_to_addresses", &RouteConfig::map_h_reply_to_addresses },
    { "Mail-Followup-To", "map_h_mail_followup_to_addresses",
        &RouteConfig::map_h_mail_followup_to_addresses },
} };
constexpr FieldMap return_path_map { "Return-Path", "map_return_path_addresses",
    &RouteConfig::map_return_path_addresses };
constexpr std::string_view outgoing_name = "map_outgoing_addresses";

const FieldMap* field_map(const HeaderField& h)
{
    for (const FieldMap& fm : field_maps)
        if (h.is(fm.field))
            return &fm;
    return nullptr;
}

// Bytes [begin, end) of a header value become `text`.
struct Edit {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::string text;
};

struct Found {
    const RewriteRule* rule = nullptr; // null: no key matched
    std::string_view map;
};

bool is_fws(char c)
{
    return c == ' ' || c == '\t' || c == '\n';
}

// The local part as written in an addr-spec (quoted when it must be).
std::string written_local(const Address& a)
{
    std::string s = a.str();
    s.resize(s.size() - a.domain().size() - 1);
    return s;
}

// Whether a list parse_address_list accepted uses group syntax, which it
// flattens: a ':' or ';' outside quoted strings, comments, domain literals
// and angle brackets (where a source route may hold both).
bool has_group(std::string_view value)
{
    std::size_t comment_depth = 0;
    bool quoted = false;
    bool literal = false;
    bool angle = false;
    for (std::size_t i = 0; i < value.size(); ++i) {
        const char c = value[i];
        if ((quoted || comment_depth > 0) && c == '\\') {
            ++i;
        } else if (quoted) {
            quoted = c != '"';
        } else if (comment_depth > 0) {
            if (c == '(')
                ++comment_depth;
            else if (c == ')')
                --comment_depth;
        } else if (literal) {
            literal = c != ']';
        } else if (c == '"' || c == '(' || c == '[') {
            quoted = c == '"';
            comment_depth = c == '(' ? 1 : 0;
            literal = c == '[';
        } else if (c == '<' || c == '>') {
            angle = c == '<';
        } else if ((c == ':' || c == ';') && !angle) {
            return true;
        }
    }
    return false;
}

// Whether a bare addr-spec has a comment beside or inside it. In a list
// without groups a bare mailbox lies between commas (or the ends of the
// value), so anything there but folding white space is a comment; inside the
// addr-spec only a comment brings a '(' outside a quoted string.
bool has_comment(std::string_view value, const Mailbox& box)
{
    std::size_t i = box.spec_begin;
    while (i > 0 && is_fws(value[i - 1]))
        --i;
    std::size_t j = box.spec_end;
    while (j < value.size() && is_fws(value[j]))
        ++j;
    if ((i > 0 && value[i - 1] != ',') || (j < value.size() && value[j] != ','))
        return true;
    bool quoted = false;
    for (std::size_t k = box.spec_begin; k < box.spec_end; ++k) {
        if (quoted && value[k] == '\\')
            ++k;
        else if (value[k] == '"')
            quoted = !quoted;
        else if (value[k] == '(' && !quoted)
            return true;
    }
    return false;
}

std::size_t blanks_after(std::string_view value, std::size_t pos)
{
    std::size_t n = 0;
    while (pos + n < value.size() && is_ascii_space(value[pos + n]))
        ++n;
    return n;
}

// `raw` with `edits` (in order, not overlapping) applied to its value, which
// starts at `base`.
Result<std::string> apply_edits(std::string_view raw, std::size_t base, const std::vector<Edit>& edits)
{
    std::string out;
    std::size_t pos = 0;
    for (const Edit& e : edits) {
        out.append(raw.substr(pos, base + e.begin - pos));
        out += e.text;
        pos = base + e.end;
        if (out.size() > limits::rewritten_header_section)
            return Error::permanent("header section too large after rewriting");
    }
    out.append(raw.substr(pos));
    return out;
}

// Where each parsed field starts in `stored`: the fields are its first lines,
// in order, after an mbox "From " line that parse_message dropped.
Result<std::vector<std::size_t>> field_offsets(std::string_view stored, const ParsedMessage& m)
{
    std::size_t pos = 0;
    if (!m.headers.empty()) {
        const std::string& first = m.headers.front().raw;
        if (!stored.starts_with(first) || (stored.size() > first.size() && stored[first.size()] != '\n'))
            pos = std::min(stored.size(), stored.find('\n') + 1);
    }
    std::vector<std::size_t> offsets;
    offsets.reserve(m.headers.size());
    for (const HeaderField& h : m.headers) {
        if (stored.compare(pos, h.raw.size(), h.raw) != 0)
            return Error::internal("header fields not where parse_message found them");
        offsets.push_back(pos);
        pos = std::min(stored.size(), pos + h.raw.size() + 1);
    }
    return offsets;
}

class Rewriter {
public:
    Rewriter(const RouteConfig& route, const MainConfig& cfg, std::vector<AddressRewrite>* log)
        : route_(route)
        , cfg_(cfg)
        , log_(log)
    {
    }

    Result<Address> return_path(const Address& address);
    // The field rewritten, or nullopt when it stays as it is.
    Result<std::optional<std::string>> field(const HeaderField& h, const FieldMap& fm);
    Result<std::string> message(std::string_view stored);

private:
    Result<Found> find(const FieldMap& fm, const std::string& local_part);
    Result<void> check(const RewriteRule& rule, std::string_view map, std::size_t index);
    Result<std::optional<Edit>> mailbox_edit(std::string_view value, const Mailbox& box, const FieldMap& fm);
    void record(
        std::string_view field, std::string_view map, std::string old_address, std::string new_address)
    {
        if (log_ != nullptr)
            log_->push_back(AddressRewrite { field, map, std::move(old_address), std::move(new_address) });
    }

    const RouteConfig& route_;
    const MainConfig& cfg_;
    std::vector<AddressRewrite>* log_;
    std::set<const RewriteRule*> checked_;
};

// RewriteRule is a plain struct: whatever built it, nothing but one address
// (or a valid domain) free of control bytes may enter a message.
Result<void> Rewriter::check(const RewriteRule& rule, std::string_view map, std::size_t index)
{
    if (checked_.contains(&rule))
        return ok();
    std::string problem;
    if (rule.local_glob.find('\0') != std::string::npos) {
        problem = "NUL in its key";
    } else if (!rule.domain_only.empty()) {
        if (!is_valid_domain(rule.domain_only))
            problem = "invalid domain";
    } else if (!is_header_safe(rule.replacement)) {
        problem = "control character in its replacement";
    } else {
        Result<Address> again = parse_address(rule.replacement, AddressOptions {});
        if (rule.address.is_null() || !again || !(*again == rule.address))
            problem = "its replacement is not one qualified address";
    }
    if (!problem.empty())
        return Error::temporary("route " + route_.file + ": entry " + std::to_string(index + 1) + " of "
            + std::string(map) + " refused: " + problem);
    checked_.insert(&rule);
    return ok();
}

// The field's own map first, then map_outgoing_addresses; the first key wins.
Result<Found> Rewriter::find(const FieldMap& fm, const std::string& local_part)
{
    const int flags = cfg_.caseless_matching ? FNM_CASEFOLD : 0;
    const std::array<std::pair<const RewriteMap*, std::string_view>, 2> maps { {
        { &(route_.*fm.map), fm.map_name },
        { &route_.map_outgoing_addresses, outgoing_name },
    } };
    for (const auto& [map, name] : maps)
        for (std::size_t i = 0; i < map->size(); ++i) {
            const RewriteRule& rule = (*map)[i];
            if (fnmatch(rule.local_glob.c_str(), local_part.c_str(), flags) != 0)
                continue;
            if (Result<void> checked = check(rule, name, i); !checked)
                return std::move(checked).error();
            return Found { &rule, name };
        }
    return Found {};
}

// Never the null sender (masqmail §10 37), only a local one.
Result<Address> Rewriter::return_path(const Address& address)
{
    if (address.is_null() || !is_local_domain(address.domain(), cfg_))
        return address;
    Result<Found> found = find(return_path_map, address.local_part());
    if (!found)
        return std::move(found).error();
    if (found->rule == nullptr)
        return address;
    Address result = found->rule->address;
    if (!found->rule->domain_only.empty()) {
        Result<Address> moved = parse_path(written_local(address) + "@" + found->rule->domain_only, {});
        if (!moved)
            return Error::permanent("return path too long after rewriting");
        result = std::move(*moved);
    }
    record(return_path_map.field, found->map, address.str(), result.str());
    return result;
}

Result<std::optional<Edit>> Rewriter::mailbox_edit(
    std::string_view value, const Mailbox& box, const FieldMap& fm)
{
    const Address& a = box.address;
    if (a.is_null())
        return std::optional<Edit> {};
    const std::size_t begin = box.spec_begin;
    const std::size_t end = box.spec_end;
    const bool qualified = value.substr(begin, end - begin).ends_with(a.domain());
    if (qualified && !is_local_domain(a.domain(), cfg_))
        return std::optional<Edit> {};
    Result<Found> found = find(fm, a.local_part());
    if (!found)
        return std::move(found).error();
    if (found->rule == nullptr)
        return std::optional<Edit> {};
    const RewriteRule& rule = *found->rule;
    Edit edit;
    std::string now;
    if (!rule.domain_only.empty()) {
        edit = qualified ? Edit { end - a.domain().size(), end, rule.domain_only }
                         : Edit { end, end, "@" + rule.domain_only };
        now = written_local(a) + "@" + rule.domain_only;
    } else if (box.angle || has_comment(value, box)) {
        edit = Edit { begin, end, rule.address.str() };
        now = edit.text;
    } else {
        edit = Edit { begin, end + blanks_after(value, end), rule.replacement };
        now = rule.replacement;
    }
    record(fm.field, found->map, qualified ? a.str() : written_local(a), std::move(now));
    return std::optional<Edit>(std::move(edit));
}

// A value that does not parse, or uses group syntax, is kept (masqmail §3.4).
Result<std::optional<std::string>> Rewriter::field(const HeaderField& h, const FieldMap& fm)
{
    if ((route_.*fm.map).empty() && route_.map_outgoing_addresses.empty())
        return std::optional<std::string> {};
    const std::string_view value = h.value();
    Result<std::vector<Mailbox>> list = parse_address_list(
        value, AddressOptions { .qualify_domain = unqualified_marker, .allow_null = true });
    if (!list || has_group(value))
        return std::optional<std::string> {};
    std::vector<Edit> edits;
    for (const Mailbox& box : *list) {
        Result<std::optional<Edit>> edit = mailbox_edit(value, box, fm);
        if (!edit)
            return std::move(edit).error();
        if (*edit)
            edits.push_back(std::move(**edit));
    }
    if (edits.empty())
        return std::optional<std::string> {};
    Result<std::string> raw = apply_edits(h.raw, h.raw.size() - value.size(), edits);
    if (!raw)
        return std::move(raw).error();
    return std::optional<std::string>(std::move(*raw));
}

Result<std::string> Rewriter::message(std::string_view stored)
{
    Result<ParsedMessage> parsed = parse_message(stored);
    if (!parsed)
        return parsed.error().with_context("stored message");
    Result<std::vector<std::size_t>> offsets = field_offsets(stored, *parsed);
    if (!offsets)
        return std::move(offsets).error();
    std::size_t header_size = 0;
    for (const HeaderField& h : parsed->headers)
        header_size += h.raw.size() + 1;
    std::string out;
    std::size_t pos = 0;
    for (std::size_t i = 0; i < parsed->headers.size(); ++i) {
        const HeaderField& h = parsed->headers[i];
        const FieldMap* fm = field_map(h);
        if (fm == nullptr)
            continue;
        Result<std::optional<std::string>> changed = field(h, *fm);
        if (!changed)
            return std::move(changed).error();
        if (!*changed)
            continue;
        header_size = header_size - h.raw.size() + (*changed)->size();
        if (header_size > limits::rewritten_header_section)
            return Error::permanent("header section too large after rewriting");
        out.append(stored.substr(pos, (*offsets)[i] - pos));
        out += **changed;
        pos = (*offsets)[i] + h.raw.size();
    }
    out.append(stored.substr(pos));
    return out;
}

bool has_header_maps(const RouteConfig& route)
{
    for (const FieldMap& fm : field_maps)
        if (!(route.*fm.map).empty())
            return true;
    return !route.map_outgoing_addresses.empty();
}

} // namespace

Result<RoutedCopy> rewrite_for_route(
    const RouteConfig& route, const MainConfig& cfg, std::string_view stored, const Address& return_path)
{
    RoutedCopy copy;
    Rewriter rewriter(route, cfg, &copy.rewrites);
    Result<Address> path = rewriter.return_path(return_path);
    if (!path)
        return std::move(path).error();
    copy.return_path = std::move(*path);
    if (!has_header_maps(route)) {
        copy.message = std::string(stored);
        return copy;
    }
    Result<std::string> text = rewriter.message(stored);
    if (!text)
        return std::move(text).error();
    copy.message = std::move(*text);
    return copy;
}

Result<Address> rewrite_return_path(const RouteConfig& route, const MainConfig& cfg,
    const Address& return_path, std::vector<AddressRewrite>* rewrites)
{
    return Rewriter(route, cfg, rewrites).return_path(return_path);
}

Result<std::vector<AddressRewrite>> explain_rewrites(
    const RouteConfig& route, const MainConfig& cfg, std::string_view stored, const Address& return_path)
{
    Result<RoutedCopy> copy = rewrite_for_route(route, cfg, stored, return_path);
    if (!copy)
        return std::move(copy).error();
    return std::move(copy->rewrites);
}

Result<std::vector<AddressRewrite>> explain_address_rewrites(
    const RouteConfig& route, const MainConfig& cfg, const Address& address)
{
    std::vector<AddressRewrite> rewrites;
    Rewriter rewriter(route, cfg, &rewrites);
    if (Result<Address> path = rewriter.return_path(address); !path)
        return std::move(path).error();
    for (const FieldMap& fm : field_maps) {
        const HeaderField h { std::string(fm.field), std::string(fm.field) + ": " + address.str() };
        if (Result<std::optional<std::string>> changed = rewriter.field(h, fm); !changed)
            return std::move(changed).error();
    }
    return rewrites;
}

} // namespace mm
