// SPDX-License-Identifier: GPL-2.0-or-later
// Typed configuration values. Input: values lexed from administrator-owned
// files, checked byte by byte and bounded (limits.hh). Linked by every
// process that reads configuration.
#include "mm/config_value.hh"

#include "mm/limits.hh"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <set>
#include <sys/socket.h>

namespace mm::config {

namespace {

constexpr std::size_t path_max = 4096;

bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view trim_blank(std::string_view s)
{
    while (!s.empty() && is_blank(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back()))
        s.remove_suffix(1);
    return s;
}

bool has_control_byte(std::string_view s)
{
    for (char c : s) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7f)
            return true;
    }
    return false;
}

bool is_host_char(char c)
{
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '-' || c == '.' || c == '_';
}

Error invalid(std::string reason)
{
    return Error::permanent(std::move(reason));
}

} // namespace

std::string HostPort::str() const
{
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string DnsServer::str() const
{
    return (family == AF_INET6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

bool AddressGlob::matches(const Address& address, bool caseless_local) const
{
    if (null_sender)
        return address.is_null();
    if (address.is_null()) // as masqmail: "" against both globs, so "*" matches it
        return fnmatch(local_glob.c_str(), "", 0) == 0 && fnmatch(domain_glob.c_str(), "", 0) == 0;
    int local_flags = caseless_local ? FNM_CASEFOLD : 0;
    return fnmatch(local_glob.c_str(), address.local_part().c_str(), local_flags) == 0
        && fnmatch(domain_glob.c_str(), address.domain().c_str(), FNM_CASEFOLD) == 0;
}

std::optional<bool> parse_bool(std::string_view text)
{
    for (std::string_view yes : { "yes", "on", "true" })
        if (equals_nocase(text, yes))
            return true;
    for (std::string_view no : { "no", "off", "false" })
        if (equals_nocase(text, no))
            return false;
    return std::nullopt;
}

Result<std::chrono::seconds> parse_interval(std::string_view text)
{
    Cursor c(text);
    std::string_view digits = c.take_while(is_ascii_digit);
    if (digits.empty() || c.remaining() > 1)
        return invalid("not an interval (digits and one unit s, m, h, d or w): " + in_quotes(text));
    if (c.at_end())
        return invalid("interval needs a unit: s, m, h, d or w: " + in_quotes(text));
    std::int64_t unit = 0;
    switch (c.next()) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    case 'w':
        unit = std::int64_t { 7 } * 86400;
        break;
    default:
        return invalid("unknown interval unit (use s, m, h, d or w): " + in_quotes(text));
    }
    std::optional<std::int64_t> count = parse_decimal<std::int64_t>(digits);
    std::optional<std::int64_t> total = count ? checked_mul(*count, unit) : std::nullopt;
    if (!total || *total > limits::config_interval_seconds)
        return invalid("interval too large: " + in_quotes(text));
    return std::chrono::seconds(*total);
}

Result<HostPort> parse_host_port(std::string_view text, std::uint16_t default_port)
{
    HostPort hp { {}, default_port };
    std::string_view port_text;
    bool has_port = false;
    if (!text.empty() && text.front() == '[') {
        std::size_t close = text.find(']');
        if (close == std::string_view::npos)
            return invalid("missing ']' in " + in_quotes(text));
        hp.host = std::string(text.substr(1, close - 1));
        in6_addr a6 {};
        if (::inet_pton(AF_INET6, hp.host.c_str(), &a6) != 1)
            return invalid("not an IPv6 address: " + in_quotes(text));
        std::string_view after = text.substr(close + 1);
        if (!after.empty() && after.front() != ':')
            return invalid("unexpected text after ']' in " + in_quotes(text));
        has_port = !after.empty();
        port_text = has_port ? after.substr(1) : std::string_view {};
    } else {
        std::size_t colon = text.find(':');
        if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos)
            return invalid("an IPv6 address needs brackets, as in [::1]:25: " + in_quotes(text));
        std::string_view host = text.substr(0, colon);
        if (host.empty() || host.size() > limits::domain)
            return invalid("bad host name in " + in_quotes(text));
        for (char c : host)
            if (!is_host_char(c))
                return invalid("bad host name in " + in_quotes(text));
        hp.host = std::string(host);
        has_port = colon != std::string_view::npos;
        port_text = has_port ? text.substr(colon + 1) : std::string_view {};
    }
    if (has_port) {
        std::optional<std::uint16_t> port = parse_decimal<std::uint16_t>(port_text);
        if (!port || *port == 0)
            return invalid("bad port in " + in_quotes(text));
        hp.port = *port;
    }
    return hp;
}

namespace {

// The inside of "…" in parse_command; `c` is after the opening quote.
bool take_double_quoted(Cursor& c, std::string& word)
{
    for (;;) {
        if (c.at_end())
            return false;
        char ch = c.next();
        if (ch == '"')
            return true;
        if (ch == '\\'
            && (c.peek() == '$' || c.peek() == '`' || c.peek() == '"' || c.peek() == '\\'
                || c.peek() == '\n')) {
            ch = c.next();
            if (ch == '\n')
                continue;
        }
        word += ch;
    }
}

// One byte (or quoted run) of a word; false on a syntax error.
bool take_word_part(Cursor& c, char ch, std::string& word, std::string& error)
{
    if (ch == '\'') {
        std::string_view inner = c.take_until('\'');
        if (!c.consume('\'')) {
            error = "unterminated ' in command ";
            return false;
        }
        word += inner;
    } else if (ch == '"') {
        if (!take_double_quoted(c, word)) {
            error = "unterminated \" in command ";
            return false;
        }
    } else if (ch == '\\') {
        if (c.at_end()) {
            error = "backslash at the end of command ";
            return false;
        }
        char escaped = c.next();
        if (escaped != '\n')
            word += escaped;
    } else {
        word += ch;
    }
    return true;
}

} // namespace

Result<Command> parse_command(std::string_view text)
{
    Command cmd { std::string(text), {} };
    std::string word;
    bool in_word = false;
    std::string error;
    Cursor c(text);
    while (!c.at_end()) {
        char ch = c.next();
        if (is_blank(ch)) {
            if (in_word)
                cmd.argv.push_back(std::move(word));
            word.clear();
            in_word = false;
            continue;
        }
        in_word = true;
        if (!take_word_part(c, ch, word, error))
            return invalid(error + in_quotes(text));
        if (word.size() > limits::command_arg || cmd.argv.size() >= limits::command_args)
            return invalid("command too long: " + in_quotes(text));
    }
    if (in_word)
        cmd.argv.push_back(std::move(word));
    if (cmd.argv.empty())
        return invalid("empty command");
    if (cmd.argv.front().empty() || cmd.argv.front().front() != '/')
        return invalid("command must start with an absolute path: " + in_quotes(text));
    return cmd;
}

Result<AddressGlob> parse_address_glob(std::string_view item)
{
    if (has_control_byte(item))
        return invalid("control character in address pattern " + in_quotes(item));
    if (item == "<>")
        return AddressGlob { {}, {}, true };
    std::size_t at = item.rfind('@');
    if (at == std::string_view::npos)
        return AddressGlob { std::string(item), "*", false };
    if (at == 0)
        return invalid("empty local part in address pattern " + in_quotes(item) + " (use *@domain)");
    if (at + 1 == item.size())
        return invalid("empty domain in address pattern " + in_quotes(item));
    return AddressGlob { std::string(item.substr(0, at)), std::string(item.substr(at + 1)), false };
}

Result<RewriteRule> parse_rewrite_rule(std::string_view item)
{
    std::size_t colon = item.find(':');
    if (colon == std::string_view::npos)
        return invalid("rewrite entry " + in_quotes(item) + " lacks ':' (use 'localpart: address')");
    RewriteRule rule;
    rule.local_glob = std::string(trim_blank(item.substr(0, colon)));
    std::string_view value = trim_blank(item.substr(colon + 1));
    rule.replacement = std::string(value);
    if (rule.local_glob.empty() || has_control_byte(rule.local_glob))
        return invalid("bad local-part pattern in rewrite entry " + in_quotes(item));
    if (value.empty())
        return invalid("rewrite entry " + in_quotes(item) + " lacks a replacement address");
    if (value.substr(0, 2) == "*@") {
        std::string_view domain = value.substr(2);
        if (!is_valid_domain(domain))
            return invalid("bad domain in rewrite entry " + in_quotes(item));
        rule.domain_only = std::string(domain);
        return rule;
    }
    if (value.find('@') == std::string_view::npos)
        return invalid("replacement " + in_quotes(value) + " lacks domain");
    Result<Address> address = parse_address(value, AddressOptions {});
    if (!address)
        return invalid("bad replacement address " + in_quotes(value) + ": " + address.error().message());
    rule.address = std::move(address).value();
    return rule;
}

Result<Network> parse_network(std::string_view text)
{
    Network net;
    net.text = std::string(text);
    std::size_t slash = text.find('/');
    std::string host(text.substr(0, slash));
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    unsigned max_prefix = 0;
    if (::inet_pton(AF_INET, host.c_str(), net.bytes.data()) == 1) {
        net.family = AF_INET;
        max_prefix = 32;
    } else if (::inet_pton(AF_INET6, host.c_str(), net.bytes.data()) == 1) {
        net.family = AF_INET6;
        max_prefix = 128;
    } else {
        return invalid("not a network (address/prefix): " + in_quotes(text));
    }
    net.prefix_length = max_prefix;
    if (slash != std::string_view::npos) {
        std::optional<unsigned> prefix = parse_decimal<unsigned>(text.substr(slash + 1));
        if (!prefix || *prefix > max_prefix)
            return invalid("bad prefix length in " + in_quotes(text));
        net.prefix_length = *prefix;
    }
    for (unsigned bit = net.prefix_length; bit < max_prefix; ++bit)
        net.bytes[bit / 8] = static_cast<std::uint8_t>(net.bytes[bit / 8] & ~(0x80u >> (bit % 8)));
    return net;
}

Result<DnsServer> parse_dns_server(std::string_view text)
{
    Result<HostPort> hp = parse_host_port(text, 53);
    if (!hp)
        return hp.error();
    DnsServer server;
    server.address = hp->host;
    server.port = hp->port;
    in6_addr bytes {};
    if (::inet_pton(AF_INET, server.address.c_str(), &bytes) == 1)
        server.family = AF_INET;
    else if (::inet_pton(AF_INET6, server.address.c_str(), &bytes) == 1)
        server.family = AF_INET6;
    else
        return invalid("not a numeric IPv4 or IPv6 address (a name server is never found by name): "
            + in_quotes(text));
    return server;
}

// ---- values in their place ----

std::optional<bool> bool_value(const Setting& s)
{
    std::optional<bool> v = parse_bool(s.value);
    if (!v)
        s.error("not a boolean: " + in_quotes(s.value) + " (use yes/no, on/off or true/false)");
    return v;
}

std::optional<std::chrono::seconds> interval_value(const Setting& s)
{
    Result<std::chrono::seconds> v = parse_interval(s.value);
    if (!v) {
        s.error(v.error().message());
        return std::nullopt;
    }
    return *v;
}

std::optional<std::string> string_value(const Setting& s)
{
    if (has_control_byte(s.value)) {
        s.error("control character in value " + in_quotes(s.value));
        return std::nullopt;
    }
    return std::string(s.value);
}

std::optional<std::string> absolute_path_value(const Setting& s)
{
    if (s.value.empty() || s.value.front() != '/' || s.value.size() > path_max || has_control_byte(s.value)) {
        s.error("not an absolute path: " + in_quotes(s.value));
        return std::nullopt;
    }
    return std::string(s.value);
}

std::optional<HostPort> host_port_value(const Setting& s)
{
    Result<HostPort> v = parse_host_port(s.value, 25);
    if (!v) {
        s.error(v.error().message());
        return std::nullopt;
    }
    return *v;
}

std::optional<Command> command_value(const Setting& s)
{
    Result<Command> v = parse_command(s.value);
    if (!v) {
        s.error(v.error().message());
        return std::nullopt;
    }
    return std::move(v).value();
}

namespace {

// Splices the non-empty, non-comment lines of list file `path` into `items`.
bool splice_list_file(const Setting& s, std::string_view path, std::vector<std::string>& items)
{
    Result<ConfigFile> file = read_config_file(std::string(path), limits::config_file);
    if (!file) {
        s.error("list file " + in_quotes(path) + ": " + file.error().message());
        return false;
    }
    std::string_view rest = file->text;
    for (std::size_t number = 1; !rest.empty(); ++number) {
        std::size_t end = rest.find('\n');
        std::string_view line = trim_blank(rest.substr(0, end));
        rest = end == std::string_view::npos ? std::string_view {} : rest.substr(end + 1);
        if (line.empty() || line.front() == '#')
            continue;
        if (line.size() > limits::config_include_line || line.find('\0') != std::string_view::npos) {
            s.error("list file " + in_quotes(path) + ": line " + std::to_string(number)
                + " too long or holds a NUL");
            return false;
        }
        if (items.size() >= limits::config_list_items) {
            s.error("more than " + std::to_string(limits::config_list_items) + " items");
            return false;
        }
        items.emplace_back(line);
    }
    return true;
}

template <class T, class Parse> std::optional<std::vector<T>> typed_list(const Setting& s, Parse parse)
{
    std::optional<std::vector<std::string>> items = list_value(s, ListFiles::included);
    if (!items)
        return std::nullopt;
    std::vector<T> out;
    bool all_good = true;
    for (const std::string& item : *items) {
        auto v = parse(item);
        if (!v) {
            s.error(v.error().message());
            all_good = false;
        } else {
            out.push_back(std::move(v).value());
        }
    }
    if (!all_good)
        return std::nullopt;
    return out;
}

} // namespace

std::optional<std::vector<std::string>> list_value(const Setting& s, ListFiles files)
{
    std::vector<std::string> items;
    std::string_view rest = s.value;
    while (!rest.empty()) {
        std::size_t semicolon = rest.find(';');
        std::string_view item = trim_blank(rest.substr(0, semicolon));
        rest = semicolon == std::string_view::npos ? std::string_view {} : rest.substr(semicolon + 1);
        if (item.empty())
            continue;
        if (files == ListFiles::included && item.front() == '/') {
            if (!splice_list_file(s, item, items))
                return std::nullopt;
            continue;
        }
        if (items.size() >= limits::config_list_items) {
            s.error("more than " + std::to_string(limits::config_list_items) + " items");
            return std::nullopt;
        }
        items.emplace_back(item);
    }
    return items;
}

std::optional<std::vector<std::string>> string_list_value(const Setting& s)
{
    std::optional<std::vector<std::string>> items = list_value(s, ListFiles::included);
    if (items)
        for (const std::string& item : *items)
            if (has_control_byte(item)) {
                s.error("control character in item " + in_quotes(item));
                return std::nullopt;
            }
    return items;
}

std::optional<std::vector<std::string>> route_list_value(const Setting& s)
{
    std::optional<std::vector<std::string>> items = list_value(s, ListFiles::literal);
    if (!items)
        return std::nullopt;
    std::set<std::string_view> seen;
    for (const std::string& item : *items) {
        if (has_control_byte(item) || item.size() > path_max) {
            s.error("bad route file name " + in_quotes(item));
            return std::nullopt;
        }
        if (!seen.insert(item).second) {
            s.error("route file " + in_quotes(item) + " listed twice");
            return std::nullopt;
        }
    }
    return items;
}

std::optional<std::vector<std::chrono::seconds>> interval_list_value(const Setting& s)
{
    return typed_list<std::chrono::seconds>(s, parse_interval);
}

std::optional<std::vector<HostPort>> host_port_list_value(const Setting& s)
{
    return typed_list<HostPort>(s, [](std::string_view item) { return parse_host_port(item, 25); });
}

std::optional<std::vector<AddressGlob>> address_glob_list_value(const Setting& s)
{
    return typed_list<AddressGlob>(s, parse_address_glob);
}

std::optional<RewriteMap> rewrite_map_value(const Setting& s)
{
    return typed_list<RewriteRule>(s, parse_rewrite_rule);
}

std::optional<std::vector<Network>> network_list_value(const Setting& s)
{
    return typed_list<Network>(s, parse_network);
}

std::optional<DnsServer> dns_server_value(const Setting& s)
{
    Result<DnsServer> v = parse_dns_server(s.value);
    if (!v) {
        s.error(v.error().message());
        return std::nullopt;
    }
    return std::move(v).value();
}

// ---- Setting ----

void Setting::error(std::string_view reason) const
{
    diag.error(file, line, in_quotes(name) + ": " + std::string(reason));
}

void Setting::warning(std::string_view reason) const
{
    diag.warning(file, line, in_quotes(name) + ": " + std::string(reason));
}

void warn_unknown(const Setting& s)
{
    s.diag.warning(s.file, s.line, "unknown option " + in_quotes(s.name) + " ignored");
}

void warn_legacy(const Setting& s, const OptionInfo& info)
{
    std::string replacement(info.replacement);
    // A family keeps its NAME: connect_route.isp is query_routes.isp.
    if (!replacement.empty() && replacement.back() == '.' && !info.name.empty() && info.name.back() == '.')
        replacement += s.name.substr(info.name.size());
    std::string note(info.note);
    if (std::size_t at = note.find("{}"); at != std::string::npos)
        note.replace(at, 2, s.value);
    std::string text = in_quotes(s.name);
    if (info.status == OptionStatus::deprecated) {
        text += " is deprecated, use " + in_quotes(replacement);
        if (!note.empty())
            text += "; " + note;
    } else {
        text += " is deprecated and ignored";
        if (!note.empty())
            text += ": " + note;
    }
    s.diag.warning(s.file, s.line, std::move(text));
}

void warn_repeated(const Setting& s, std::size_t first_line)
{
    s.diag.warning(s.file, s.line,
        in_quotes(s.name) + " set again; replaces the value from line " + std::to_string(first_line));
}

bool rule_name_matches(std::string_view rule, std::string_view name)
{
    if (!rule.empty() && rule.back() == '.')
        return name.size() > rule.size() && name.substr(0, rule.size()) == rule;
    return rule == name;
}

} // namespace mm::config
