// SPDX-License-Identifier: GPL-2.0-or-later
// Typed values of masqmail.conf and route files (booleans, intervals, lists
// with file inclusion, host:port, commands, address globs, rewrite maps,
// networks) and the option-table dispatch both readers share. Values are
// administrator text checked byte by byte. Linked by every process that
// reads configuration.
#pragma once

#include "mm/address.hh"
#include "mm/config_lexer.hh"
#include "mm/cursor.hh"
#include "mm/result.hh"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mm::config {

// ---- value types ----

struct HostPort {
    std::string host; // name, dotted quad, or IPv6 address without brackets
    std::uint16_t port = 25;

    // "host:port", "[v6]:port".
    std::string str() const;
};

// A command line, split like sh (no shell ever runs it, DESIGN rule 4);
// `$var` / `${var}` are left in the words for expansion at run time.
struct Command {
    std::string text; // as written, for messages
    std::vector<std::string> argv; // argv[0] is an absolute path
};

// One item of an address glob list (allowed_senders, ...): split at the last
// '@'; no '@' means any domain. `<>` is the null sender (masqmail §10 38a).
struct AddressGlob {
    std::string local_glob;
    std::string domain_glob = "*";
    bool null_sender = false;

    // Local part per caseless_local (masqmail §10 38: it was always
    // case-sensitive), domain always case-insensitive. The null sender
    // matches `<>`, and any glob that matches two empty strings ("*").
    bool matches(const Address& address, bool caseless_local) const;
};

// One `key: value` item of a map_* rewrite list (masqmail §3.4).
struct RewriteRule {
    std::string local_glob; // glob on the local part
    std::string replacement; // as written; header maps may carry a display name
    Address address; // the parsed replacement, unless domain_only
    // Non-empty for "*@domain": keep the local part, replace the domain.
    std::string domain_only;
};
using RewriteMap = std::vector<RewriteRule>;

// A network in CIDR notation ("192.168.0.0/16", "2001:db8::/32", "::1").
struct Network {
    int family = 0; // AF_INET or AF_INET6
    std::array<std::uint8_t, 16> bytes {};
    unsigned prefix_length = 0;
    std::string text;
};

// The name server asked for MX and address records instead of those of
// /etc/resolv.conf: a numeric address (never a name, which would need a
// name server to find), port 53 unless given.
struct DnsServer {
    int family = 0; // AF_INET or AF_INET6
    std::string address; // numeric, without brackets
    std::uint16_t port = 53;

    // "192.0.2.53:53", "[2001:db8::53]:53".
    std::string str() const;
};

// ---- pure parsers: the error message is the reason alone ----

// Exactly yes/no/on/off/true/false, case-insensitive.
std::optional<bool> parse_bool(std::string_view text);
// Digits and exactly one unit s, m, h, d or w.
Result<std::chrono::seconds> parse_interval(std::string_view text);
// "host", "host:port", "[v6]", "[v6]:port".
Result<HostPort> parse_host_port(std::string_view text, std::uint16_t default_port);
// sh-style words: blanks separate, '…' literal, "…" with \ before $ ` " \ and
// newline, \ outside quotes takes the next byte. First word absolute.
Result<Command> parse_command(std::string_view text);
Result<AddressGlob> parse_address_glob(std::string_view item);
// "key: value" with value a full address or "*@domain" ("lacks domain" if
// the value has no domain).
Result<RewriteRule> parse_rewrite_rule(std::string_view item);
Result<Network> parse_network(std::string_view text);
// "192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]", "[2001:db8::53]:5353".
Result<DnsServer> parse_dns_server(std::string_view text);

// ---- a value in its place: reports to the diagnostics as "'name': reason" ----

struct Setting {
    Diagnostics& diag;
    std::string_view file;
    std::size_t line = 0;
    std::string_view name;
    std::string_view value;

    void error(std::string_view reason) const;
    void warning(std::string_view reason) const;
};

// Whether an item starting with '/' names a file whose lines are spliced in.
enum class ListFiles { included, literal };

std::optional<bool> bool_value(const Setting& s);
std::optional<std::chrono::seconds> interval_value(const Setting& s);
std::optional<std::string> string_value(const Setting& s);
std::optional<std::string> absolute_path_value(const Setting& s);
std::optional<HostPort> host_port_value(const Setting& s);
std::optional<Command> command_value(const Setting& s);
// `;`-separated, items trimmed, empty items dropped, bounded.
std::optional<std::vector<std::string>> list_value(const Setting& s, ListFiles files);
std::optional<std::vector<std::string>> string_list_value(const Setting& s); // files included
std::optional<std::vector<std::string>> route_list_value(const Setting& s); // paths, no inclusion
std::optional<std::vector<std::chrono::seconds>> interval_list_value(const Setting& s);
std::optional<std::vector<HostPort>> host_port_list_value(const Setting& s);
std::optional<std::vector<AddressGlob>> address_glob_list_value(const Setting& s);
std::optional<RewriteMap> rewrite_map_value(const Setting& s);
std::optional<std::vector<Network>> network_list_value(const Setting& s);
std::optional<DnsServer> dns_server_value(const Setting& s);

template <class T> std::optional<T> integer_value(const Setting& s, T min, T max)
{
    std::optional<T> v = parse_decimal<T>(s.value);
    if (!v || *v < min || *v > max) {
        s.error("not a number from " + std::to_string(min) + " to " + std::to_string(max) + ": "
            + in_quotes(s.value));
        return std::nullopt;
    }
    return v;
}

// ---- option tables ----

// What a name of an option table is today (DESIGN rule 8, compatibility).
enum class OptionStatus : std::uint8_t {
    current, // masqmail 1.0's, or new in this version
    deprecated, // an older name whose meaning is carried over to `replacement`
    ignored, // an older name that no longer has an effect
};

// An option as the documentation and --check-config see it. `replacement`:
// for a deprecated name the option that replaces it (a family ending in '.'
// keeps the NAME suffix); for an ignored one the option to use instead, or
// "". `note`: how the value is carried over, or why the name is gone; "{}"
// in it stands for the value as written.
struct OptionInfo {
    std::string_view name;
    OptionStatus status = OptionStatus::current;
    std::string_view replacement = {};
    std::string_view note = {};
};

// An option of a table: an exact name, or a prefix ending in '.' for the
// NAME-suffixed options (query_routes.NAME). `apply` parses the value into
// the builder's config or reports why it cannot; for an ignored name it may
// be null. The table is the one list of names: the reader, --check-config's
// deprecation warnings and the man page test (test/unit/doc_options_test.cc)
// all take them from it.
template <class Builder> struct OptionRule {
    std::string_view name;
    void (*apply)(Builder&, const Setting&);
    OptionStatus status = OptionStatus::current;
    std::string_view replacement = {};
    std::string_view note = {};

    constexpr OptionInfo info() const { return { name, status, replacement, note }; }
};

template <class Builder> std::vector<OptionInfo> option_infos(std::span<const OptionRule<Builder>> rules)
{
    std::vector<OptionInfo> out;
    out.reserve(rules.size());
    for (const auto& r : rules)
        out.push_back(r.info());
    return out;
}

// The usual rule: parse with `Parse`, store into config.*Member.
template <auto Parse, auto Member, class Builder> void assign(Builder& b, const Setting& s)
{
    if (auto v = Parse(s))
        b.config.*Member = std::move(*v);
}

// Applies statements in order (a later one overrides an earlier one, with a
// warning); unknown names are warned about and ignored; a deprecated or
// ignored name gets its warning from the table (warn_legacy) before it applies.
void warn_unknown(const Setting& s);
void warn_repeated(const Setting& s, std::size_t first_line);
// "'NAME' is deprecated, use 'REPLACEMENT'; NOTE" or
// "'NAME' is deprecated and ignored: NOTE".
void warn_legacy(const Setting& s, const OptionInfo& info);
bool rule_name_matches(std::string_view rule, std::string_view name);

template <class Builder>
void apply_statements(Builder& b, std::span<const OptionRule<Builder>> rules,
    const std::vector<Statement>& statements, std::string_view file, Diagnostics& diag)
{
    std::map<std::string, std::size_t, std::less<>> seen;
    for (const Statement& st : statements) {
        Setting s { diag, file, st.line, st.name, st.value };
        const OptionRule<Builder>* rule = nullptr;
        for (const auto& r : rules)
            if (rule_name_matches(r.name, st.name) && (rule == nullptr || r.name.size() > rule->name.size()))
                rule = &r;
        if (rule == nullptr) {
            warn_unknown(s);
            continue;
        }
        auto [it, fresh] = seen.emplace(st.name, st.line);
        if (!fresh) {
            warn_repeated(s, it->second);
            it->second = st.line;
        }
        if (rule->status != OptionStatus::current)
            warn_legacy(s, rule->info());
        if (rule->apply != nullptr)
            rule->apply(b, s);
    }
}

} // namespace mm::config
