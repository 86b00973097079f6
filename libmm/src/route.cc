// SPDX-License-Identifier: GPL-2.0-or-later
// Route files: the option table (masqmail §3.3 and its legacy route options)
// and the checks that need the whole file. Input is administrator-owned text
// that may hold SMTP secrets. Linked by route-selector, remote-deliver and
// the front end.
#include "mm/route.hh"

#include "mm/cursor.hh"
#include "mm/limits.hh"

#include <algorithm>
#include <array>
#include <sys/stat.h>

namespace mm::config {

namespace {

struct RouteBuilder {
    RouteConfig config;
    bool tls_set = false;
};

using Rule = OptionRule<RouteBuilder>;

void set_smtp_port(RouteBuilder& b, const Setting& s)
{
    if (auto v = integer_value<std::uint16_t>(s, 1, 65535))
        b.config.smtp_port = *v;
}

void set_resolve_list(RouteBuilder& b, const Setting& s)
{
    std::optional<std::vector<std::string>> items = list_value(s, ListFiles::literal);
    if (!items)
        return;
    std::vector<ResolveMethod> methods;
    bool all_good = true;
    for (const std::string& item : *items) {
        ResolveMethod m = ResolveMethod::dns_mx;
        if (item == "byname") {
            m = ResolveMethod::byname;
        } else if (item == "dns_a") {
            s.warning("'dns_a' is deprecated, use 'dns_mx' (it falls back to A records)");
        } else if (item != "dns_mx") {
            s.error("unknown resolve method " + in_quotes(item) + " (use dns_mx or byname)");
            all_good = false;
        }
        if (std::find(methods.begin(), methods.end(), m) == methods.end())
            methods.push_back(m);
    }
    if (all_good)
        b.config.resolve_list = std::move(methods);
}

void set_auth_name(RouteBuilder& b, const Setting& s)
{
    if (equals_nocase(s.value, "cram-md5"))
        b.config.auth_name = AuthMechanism::cram_md5;
    else if (equals_nocase(s.value, "login"))
        b.config.auth_name = AuthMechanism::login;
    else if (equals_nocase(s.value, "plain"))
        b.config.auth_name = AuthMechanism::plain;
    else if (equals_nocase(s.value, "xoauth2"))
        b.config.auth_name = AuthMechanism::xoauth2;
    else if (equals_nocase(s.value, "oauthbearer"))
        b.config.auth_name = AuthMechanism::oauthbearer;
    else
        s.error("unknown mechanism " + in_quotes(s.value)
            + " (use cram-md5, login, plain, xoauth2 or oauthbearer)");
}

void set_tls(RouteBuilder& b, const Setting& s)
{
    static constexpr std::array<std::pair<std::string_view, TlsMode>, 4> modes { {
        { "none", TlsMode::none },
        { "opportunistic", TlsMode::opportunistic },
        { "starttls", TlsMode::starttls },
        { "implicit", TlsMode::implicit },
    } };
    for (const auto& [word, mode] : modes)
        if (equals_nocase(s.value, word)) {
            b.config.tls = mode;
            b.tls_set = true;
            return;
        }
    s.error("unknown TLS mode " + in_quotes(s.value) + " (use none, opportunistic, starttls or implicit)");
}

// "sha256:AB:CD:..." or plain hex; stored as 64 lowercase hex digits.
void set_tls_fingerprint(RouteBuilder& b, const Setting& s)
{
    Cursor c(s.value);
    (void)c.consume_nocase("sha256:");
    std::string hex;
    for (char ch : c.rest()) {
        if (ch == ':')
            continue;
        char lower = ascii_lower(ch);
        if (!is_ascii_digit(lower) && (lower < 'a' || lower > 'f')) {
            hex.clear();
            break;
        }
        hex += lower;
    }
    if (hex.size() != 64) {
        s.error("not a SHA-256 fingerprint (64 hex digits): " + in_quotes(s.value));
        return;
    }
    b.config.tls_fingerprint = std::move(hex);
}

// ---- 0.3.x route options ----
// The table below gives each its warning; these only carry the value over.

template <auto Member> void set_local_part_globs(RouteBuilder& b, const Setting& s)
{
    if (auto items = string_list_value(s)) {
        std::vector<AddressGlob> globs;
        for (std::string& item : *items)
            globs.push_back(AddressGlob { std::move(item), "*", false });
        b.config.*Member = std::move(globs);
    }
}

template <auto Member> void set_rcpt_domains(RouteBuilder& b, const Setting& s)
{
    if (auto items = string_list_value(s)) {
        std::vector<AddressGlob> globs;
        for (std::string& item : *items)
            globs.push_back(AddressGlob { "*", std::move(item), false });
        b.config.*Member = std::move(globs);
    }
}

// set_X_domain = D is map "*: *@D". masqmail 0.3 let a map of its own win
// over it; so does this, whichever comes first in the file.
template <auto Member> void set_domain_map(RouteBuilder& b, const Setting& s)
{
    if (!is_valid_domain(s.value)) {
        s.error("not a valid domain: " + in_quotes(s.value));
        return;
    }
    if (!(b.config.*Member).empty()) {
        s.warning("has no effect: the map of the same header is set");
        return;
    }
    RewriteRule rule;
    rule.local_glob = "*";
    rule.replacement = "*@" + std::string(s.value);
    rule.domain_only = std::string(s.value);
    b.config.*Member = RewriteMap { std::move(rule) };
}

// One smarthost, or a list tried in order.
void set_mail_hosts(RouteBuilder& b, const Setting& s)
{
    std::optional<std::vector<std::string>> items = list_value(s, ListFiles::literal);
    if (!items)
        return;
    if (items->empty())
        return s.error("no host");
    std::vector<HostPort> hosts;
    for (const std::string& item : *items) {
        Result<HostPort> v = parse_host_port(item, 25);
        if (!v)
            return s.error(v.error().message());
        hosts.push_back(std::move(v).value());
    }
    b.config.mail_host = hosts.front();
    b.config.more_mail_hosts.assign(hosts.begin() + 1, hosts.end());
}

constexpr auto route_rules = std::to_array<Rule>({
    { "allowed_senders", assign<address_glob_list_value, &RouteConfig::allowed_senders> },
    { "denied_senders", assign<address_glob_list_value, &RouteConfig::denied_senders> },
    { "allowed_recipients", assign<address_glob_list_value, &RouteConfig::allowed_recipients> },
    { "denied_recipients", assign<address_glob_list_value, &RouteConfig::denied_recipients> },
    { "allowed_from_hdrs", assign<address_glob_list_value, &RouteConfig::allowed_from_hdrs> },
    { "denied_from_hdrs", assign<address_glob_list_value, &RouteConfig::denied_from_hdrs> },
    { "last_route", assign<bool_value, &RouteConfig::last_route> },
    { "connect_error_fail", assign<bool_value, &RouteConfig::connect_error_fail> },
    { "mail_host", set_mail_hosts },
    { "smtp_port", set_smtp_port },
    { "resolve_list", set_resolve_list },
    { "helo_name", assign<string_value, &RouteConfig::helo_name> },
    { "do_correct_helo", assign<bool_value, &RouteConfig::do_correct_helo> },
    { "instant_helo", assign<bool_value, &RouteConfig::instant_helo> },
    { "do_pipelining", assign<bool_value, &RouteConfig::do_pipelining> },
    { "auth_name", set_auth_name },
    { "auth_login", assign<string_value, &RouteConfig::auth_login> },
    { "auth_secret", assign<string_value, &RouteConfig::auth_secret> },
    { "auth_secret_file", assign<absolute_path_value, &RouteConfig::auth_secret_file> },
    { "auth_secret_command", assign<command_value, &RouteConfig::auth_secret_command> },
    { "auth_plaintext", assign<bool_value, &RouteConfig::auth_plaintext> },
    { "wrapper", assign<command_value, &RouteConfig::wrapper> },
    { "pipe", assign<command_value, &RouteConfig::pipe> },
    { "pipe_fromline", assign<bool_value, &RouteConfig::pipe_fromline> },
    { "pipe_fromhack", assign<bool_value, &RouteConfig::pipe_fromhack> },
    { "map_h_from_addresses", assign<rewrite_map_value, &RouteConfig::map_h_from_addresses> },
    { "map_h_sender_addresses", assign<rewrite_map_value, &RouteConfig::map_h_sender_addresses> },
    { "map_h_reply_to_addresses", assign<rewrite_map_value, &RouteConfig::map_h_reply_to_addresses> },
    { "map_h_mail_followup_to_addresses",
        assign<rewrite_map_value, &RouteConfig::map_h_mail_followup_to_addresses> },
    { "map_return_path_addresses", assign<rewrite_map_value, &RouteConfig::map_return_path_addresses> },
    { "map_outgoing_addresses", assign<rewrite_map_value, &RouteConfig::map_outgoing_addresses> },
    // beyond masqmail 1.0
    { "tls", set_tls },
    { "tls_verify", assign<bool_value, &RouteConfig::tls_verify> },
    { "tls_ca_file", assign<absolute_path_value, &RouteConfig::tls_ca_file> },
    { "tls_fingerprint", set_tls_fingerprint },
    // 0.3.x and older: deprecated names are carried over, ignored ones only warned about.
    { "allowed_mail_locals", set_local_part_globs<&RouteConfig::allowed_senders>, OptionStatus::deprecated,
        "allowed_senders", "each local part with any domain, as \"joe@*\"" },
    { "not_allowed_mail_locals", set_local_part_globs<&RouteConfig::denied_senders>, OptionStatus::deprecated,
        "denied_senders", "each local part with any domain, as \"joe@*\"" },
    { "allowed_return_paths", assign<address_glob_list_value, &RouteConfig::allowed_senders>,
        OptionStatus::deprecated, "allowed_senders", "the same list of addresses" },
    { "not_allowed_return_paths", assign<address_glob_list_value, &RouteConfig::denied_senders>,
        OptionStatus::deprecated, "denied_senders", "the same list of addresses" },
    { "allowed_rcpt_domains", set_rcpt_domains<&RouteConfig::allowed_recipients>, OptionStatus::deprecated,
        "allowed_recipients", "each domain as \"*@domain\"" },
    { "not_allowed_rcpt_domains", set_rcpt_domains<&RouteConfig::denied_recipients>, OptionStatus::deprecated,
        "denied_recipients", "each domain as \"*@domain\"" },
    { "set_h_from_domain", set_domain_map<&RouteConfig::map_h_from_addresses>, OptionStatus::deprecated,
        "map_h_from_addresses", "read as map_h_from_addresses = \"*: *@{}\"" },
    { "set_h_reply_to_domain", set_domain_map<&RouteConfig::map_h_reply_to_addresses>,
        OptionStatus::deprecated, "map_h_reply_to_addresses",
        "read as map_h_reply_to_addresses = \"*: *@{}\"" },
    { "set_return_path_domain", set_domain_map<&RouteConfig::map_return_path_addresses>,
        OptionStatus::deprecated, "map_return_path_addresses",
        "read as map_return_path_addresses = \"*: *@{}\"" },
    { "protocol", nullptr, OptionStatus::ignored, "pipe",
        "a route delivers by SMTP unless 'pipe' is set, which makes it a pipe route" },
    { "do_ssl", nullptr, OptionStatus::ignored, "tls", "masqmail 0.3 ignored it too; TLS is set with 'tls'" },
    { "expand_h_sender_domain", nullptr, OptionStatus::ignored, "map_h_sender_addresses",
        "the Sender: header is rewritten by map_h_sender_addresses (or map_outgoing_addresses)" },
    { "expand_h_sender_address", nullptr, OptionStatus::ignored, "map_h_sender_addresses",
        "a Sender: header is kept as it is, or rewritten by map_h_sender_addresses (or "
        "map_outgoing_addresses)" },
    { "pop3_login", nullptr, OptionStatus::ignored, {},
        "POP-before-SMTP is gone: use SMTP AUTH (auth_login and a secret)" },
});

void check_whole_route(RouteBuilder& b, std::string_view file, Diagnostics& diag)
{
    RouteConfig& c = b.config;
    if (!b.tls_set) {
        if (c.wrapper)
            c.tls = TlsMode::none;
        else if (c.mail_host && c.mail_host->port == 465)
            c.tls = TlsMode::implicit;
    }
    int secret_sources = static_cast<int>(c.auth_secret.has_value())
        + static_cast<int>(c.auth_secret_file.has_value())
        + static_cast<int>(c.auth_secret_command.has_value());
    if (secret_sources > 1)
        diag.error(
            file, 0, "only one of 'auth_secret', 'auth_secret_file' and 'auth_secret_command' may be set");
    if (c.auth_login.has_value() != (secret_sources > 0))
        diag.warning(file, 0, "AUTH needs both 'auth_login' and a secret; AUTH is not used");
    if (c.auth_name && (*c.auth_name == AuthMechanism::xoauth2 || *c.auth_name == AuthMechanism::oauthbearer)
        && !c.auth_secret_command)
        diag.warning(file, 0, "an OAuth2 access token expires: let 'auth_secret_command' fetch a fresh one");
    if (c.auth_plaintext && c.tls == TlsMode::none && secret_sources > 0 && c.auth_login)
        diag.warning(file, 0, "'auth_plaintext' with 'tls = none': the password goes over the network in clear text");
    if (c.pipe && (c.mail_host || c.wrapper))
        diag.warning(file, 0, "'pipe' is set: 'mail_host' and 'wrapper' are not used");
}

} // namespace

std::vector<OptionInfo> route_options()
{
    return option_infos<RouteBuilder>(route_rules);
}

std::optional<RouteConfig> parse_route_config(std::string_view text, std::string_view file, Diagnostics& diag)
{
    std::size_t errors_before = diag.error_count();
    if (text.size() > limits::config_file) {
        diag.error(file, 0, "file larger than " + std::to_string(limits::config_file) + " bytes");
        return std::nullopt;
    }
    RouteBuilder b;
    b.config.file = std::string(file);
    std::vector<Statement> statements = lex_statements(text, file, diag);
    apply_statements<RouteBuilder>(b, route_rules, statements, file, diag);
    check_whole_route(b, file, diag);
    if (diag.error_count() > errors_before)
        return std::nullopt;
    return std::move(b.config);
}

std::optional<RouteConfig> read_route_config(const std::string& path, Diagnostics& diag)
{
    Result<ConfigFile> file = read_config_file(path, limits::config_file);
    if (!file) {
        diag.error(path, 0, file.error().message());
        return std::nullopt;
    }
    if (std::optional<std::string> reason = writable_by_others(*file)) {
        diag.error(path, 0, *reason);
        return std::nullopt;
    }
    std::optional<RouteConfig> route = parse_route_config(file->text, path, diag);
    if (route && route->auth_secret && (file->mode & S_IROTH) != 0)
        diag.warning(path, 0, "holds 'auth_secret' but is readable by everyone (chmod o-r)");
    return route;
}

} // namespace mm::config
