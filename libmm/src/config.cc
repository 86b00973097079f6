// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail.conf: the option table (masqmail §2.2, legacy names §2.3) and the
// checks that need the whole file (host_name, qualification, defaults).
// Input is administrator-owned text, lexed by config_lexer. Linked by the
// supervisor, the daemons and the front end.
#include "mm/config.hh"

#include "mm/cursor.hh"
#include "mm_build_config.h"

#include <algorithm>
#include <array>
#include <span>

namespace mm::config {

namespace {

// A statement kept for the end of the file: its meaning depends on host_name,
// which may come later.
struct Deferred {
    std::size_t line = 0;
    std::string name;
    std::string value;
};

struct MainBuilder {
    MainConfig config;
    std::optional<Deferred> local_hosts;
    std::optional<Deferred> local_addresses;
    std::optional<Deferred> not_local_addresses;
    std::optional<Deferred> log_user;
    bool online_query_set = false;
    std::optional<Deferred> online_detect; // 0.3: file, pipe or mserver
    std::optional<Deferred> online_file;
    std::optional<Deferred> online_pipe;
    std::optional<Deferred> mserver_iface;
};

using Rule = OptionRule<MainBuilder>;

template <auto Slot> void defer(MainBuilder& b, const Setting& s)
{
    b.*Slot = Deferred { s.line, std::string(s.name), std::string(s.value) };
}

void set_host_name(MainBuilder& b, const Setting& s)
{
    std::string name(trim(s.value));
    if (!name.empty() && name.front() == '/') {
        Result<ConfigFile> file = read_config_file(name, limits::config_file);
        if (!file) {
            s.error(in_quotes(name) + ": " + file.error().message());
            return;
        }
        std::string_view text = file->text;
        name = std::string(trim(text.substr(0, text.find('\n'))));
        if (!name.empty() && name.back() == '\r')
            name.pop_back();
    }
    if (!is_valid_domain(name)) {
        s.error("not a valid domain: " + in_quotes(name));
        return;
    }
    b.config.host_name = std::move(name);
}

void set_mbox_default(MainBuilder& b, const Setting& s)
{
    if (equals_nocase(s.value, "mbox"))
        b.config.mbox_default = MboxMethod::mbox;
    else if (equals_nocase(s.value, "mda"))
        b.config.mbox_default = MboxMethod::mda;
    else if (equals_nocase(s.value, "maildir"))
        b.config.mbox_default = MboxMethod::maildir;
    else
        s.error("neither 'mbox', 'mda' nor 'maildir': " + in_quotes(s.value));
}

void set_log_dir(MainBuilder& b, const Setting& s)
{
    if (s.value.empty()) {
        b.config.log_dir.clear(); // log to stderr
        return;
    }
    if (auto v = absolute_path_value(s))
        b.config.log_dir = std::move(*v);
}

void set_debug_level(MainBuilder& b, const Setting& s)
{
    if (auto v = integer_value<int>(s, 0, 9))
        b.config.debug_level = *v;
}

void set_max_msg_size(MainBuilder& b, const Setting& s)
{
    if (auto v = integer_value<std::uint64_t>(s, 0, UINT64_MAX))
        b.config.max_msg_size = *v;
}

void set_max_received_headers(MainBuilder& b, const Setting& s)
{
    if (auto v = integer_value<std::size_t>(s, 1, 10000))
        b.config.max_received_headers = *v;
}

void set_max_recipients(MainBuilder& b, const Setting& s)
{
    if (auto v = integer_value<std::size_t>(s, 1, 1000000)) {
        if (*v < limits::recipients_minimum)
            s.warning("fewer than the " + std::to_string(limits::recipients_minimum)
                + " recipients RFC 5321 requires a server to accept");
        b.config.max_recipients = *v;
    }
}

void set_smtp_max_connections(MainBuilder& b, const Setting& s)
{
    if (auto v = integer_value<std::size_t>(s, 1, limits::smtp_connections_hard))
        b.config.smtp_max_connections = *v;
}

void set_smtp_max_connections_per_client(MainBuilder& b, const Setting& s)
{
    if (auto v = integer_value<std::size_t>(s, 1, limits::smtp_connections_hard))
        b.config.smtp_max_connections_per_client = *v;
}

void set_online_query(MainBuilder& b, const Setting& s)
{
    b.online_query_set = true;
    assign<command_value, &MainConfig::online_query>(b, s);
}

void set_query_routes(MainBuilder& b, const Setting& s)
{
    std::string_view connection = s.name.substr(s.name.find('.') + 1);
    if (auto v = route_list_value(s))
        b.config.query_routes[std::string(connection)] = std::move(*v);
}

// ---- 0.3.x names (masqmail §2.3) ----
// The table below gives each its warning; these only carry the value over.

void set_local_net_route(MainBuilder& b, const Setting& s)
{
    if (auto v = route_list_value(s))
        for (std::string& route : *v) {
            b.config.local_net_routes.push_back(route);
            if (std::find(b.config.permanent_routes.begin(), b.config.permanent_routes.end(), route)
                == b.config.permanent_routes.end())
                b.config.permanent_routes.push_back(std::move(route));
        }
}

void set_local_nets(MainBuilder& b, const Setting& s)
{
    if (auto v = string_list_value(s)) {
        b.config.local_nets.clear();
        for (std::string& pattern : *v)
            b.config.local_nets.push_back(AddressGlob { "*", std::move(pattern), false });
    }
}

// online_detect, online_file, online_pipe and mserver_iface are deferred:
// together they make one online_query (legacy_online_query, at the end).

constexpr auto main_rules = std::to_array<Rule>({
    { "host_name", set_host_name },
    { "local_hosts", defer<&MainBuilder::local_hosts> },
    { "local_addresses", defer<&MainBuilder::local_addresses> },
    { "not_local_addresses", defer<&MainBuilder::not_local_addresses> },
    { "listen_addresses", assign<host_port_list_value, &MainConfig::listen_addresses> },
    { "do_save_envelope_to", assign<bool_value, &MainConfig::do_save_envelope_to> },
    { "do_relay", assign<bool_value, &MainConfig::do_relay> },
    { "do_queue", assign<bool_value, &MainConfig::do_queue> },
    { "permanent_routes", assign<route_list_value, &MainConfig::permanent_routes> },
    { "query_routes.", set_query_routes },
    { "online_query", set_online_query },
    { "alias_file", assign<absolute_path_value, &MainConfig::alias_file> },
    { "globalias_file", assign<absolute_path_value, &MainConfig::globalias_file> },
    { "caseless_matching", assign<bool_value, &MainConfig::caseless_matching> },
    { "mbox_default", set_mbox_default },
    { "mbox_users", assign<string_list_value, &MainConfig::mbox_users> },
    { "mda_users", assign<string_list_value, &MainConfig::mda_users> },
    { "maildir_users", assign<string_list_value, &MainConfig::maildir_users> },
    { "mda", assign<command_value, &MainConfig::mda> },
    { "mda_fromline", assign<bool_value, &MainConfig::mda_fromline> },
    { "mda_fromhack", assign<bool_value, &MainConfig::mda_fromhack> },
    { "pipe_fromline", assign<bool_value, &MainConfig::pipe_fromline> },
    { "pipe_fromhack", assign<bool_value, &MainConfig::pipe_fromhack> },
    { "mail_dir", assign<absolute_path_value, &MainConfig::mail_dir> },
    { "spool_dir", assign<absolute_path_value, &MainConfig::spool_dir> },
    { "lock_dir", assign<absolute_path_value, &MainConfig::lock_dir> },
    { "log_dir", set_log_dir },
    { "pid_dir", assign<absolute_path_value, &MainConfig::pid_dir> },
    { "run_as_user", assign<bool_value, &MainConfig::run_as_user> },
    { "use_syslog", assign<bool_value, &MainConfig::use_syslog> },
    { "debug_level", set_debug_level },
    { "errmsg_file", assign<absolute_path_value, &MainConfig::errmsg_file> },
    { "warnmsg_file", assign<absolute_path_value, &MainConfig::warnmsg_file> },
    { "warn_intervals", assign<interval_list_value, &MainConfig::warn_intervals> },
    { "max_defer_time", assign<interval_value, &MainConfig::max_defer_time> },
    { "log_user", defer<&MainBuilder::log_user> },
    { "max_msg_size", set_max_msg_size },
    { "defer_all", assign<bool_value, &MainConfig::defer_all> },
    // beyond masqmail 1.0
    { "relay_nets", assign<network_list_value, &MainConfig::relay_nets> },
    { "tls_cert_file", assign<absolute_path_value, &MainConfig::tls_cert_file> },
    { "tls_key_file", assign<absolute_path_value, &MainConfig::tls_key_file> },
    { "max_received_headers", set_max_received_headers },
    { "max_recipients", set_max_recipients },
    { "smtp_timeout", assign<interval_value, &MainConfig::smtp_timeout> },
    { "smtp_max_connections", set_smtp_max_connections },
    { "smtp_max_connections_per_client", set_smtp_max_connections_per_client },
    { "dns_server", assign<dns_server_value, &MainConfig::dns_server> },
    // 0.3.x and older: deprecated names are carried over, ignored ones only warned about.
    { "connect_route.", set_query_routes, OptionStatus::deprecated, "query_routes.",
        "the same list of route files" },
    { "online_routes.", set_query_routes, OptionStatus::deprecated, "query_routes.",
        "the same list of route files" },
    { "online_detect", defer<&MainBuilder::online_detect>, OptionStatus::deprecated, "online_query",
        "'{}' chooses which of online_file, online_pipe and mserver_iface becomes the online_query" },
    { "online_file", defer<&MainBuilder::online_file>, OptionStatus::deprecated, "online_query",
        "read as online_query = \"/bin/cat {}\" (the file's first line names the connection; no file: "
        "offline)" },
    { "online_pipe", defer<&MainBuilder::online_pipe>, OptionStatus::deprecated, "online_query",
        "read as online_query = \"{}\" (run without a shell)" },
    { "mserver_iface", defer<&MainBuilder::mserver_iface>, OptionStatus::ignored, "online_query",
        "masqdialer is not asked directly any more; with masqmail 0.3's mservdetect installed, set "
        "online_query = \"/usr/bin/mservdetect HOST PORT\"" },
    { "local_net_route", set_local_net_route, OptionStatus::deprecated, "permanent_routes",
        "its routes are added to permanent_routes and, with local_nets, take only recipients in those "
        "domains" },
    { "local_nets", set_local_nets, OptionStatus::deprecated, "allowed_recipients",
        "limits the routes of local_net_route to recipients in these domains, as allowed_recipients = "
        "\"*@PATTERN\" in the route file would" },
    { "alias_local_caseless", assign<bool_value, &MainConfig::caseless_matching>, OptionStatus::deprecated,
        "caseless_matching", "the same setting; it now also covers local_addresses" },
    { "remote_port", nullptr, OptionStatus::ignored, "mail_host",
        "the port of a smarthost is part of the route's mail_host = \"host:port\" (or smtp_port for direct "
        "delivery)" },
    { "get.", nullptr, OptionStatus::ignored, {},
        "masqmail no longer fetches mail by POP3; use fetchmail or getmail" },
    { "online_gets.", nullptr, OptionStatus::ignored, {},
        "masqmail no longer fetches mail by POP3; use fetchmail or getmail" },
    { "ident_trusted_nets", nullptr, OptionStatus::ignored, {},
        "the ident protocol is not used; mailrm lets a user remove only messages they submitted locally" },
});

// ---- whole-file checks ----

Setting setting_of(const Deferred& d, std::string_view file, Diagnostics& diag)
{
    return Setting { diag, file, d.line, d.name, d.value };
}

std::vector<std::string> default_local_hosts(const std::string& host_name)
{
    std::vector<std::string> hosts { "localhost" };
    std::size_t dot = host_name.find('.');
    if (dot != std::string::npos)
        hosts.push_back(host_name.substr(0, dot));
    hosts.push_back(host_name);
    return hosts;
}

std::optional<std::vector<Address>> qualified_addresses(const Setting& s, std::string_view host_name)
{
    std::optional<std::vector<std::string>> items = string_list_value(s);
    if (!items)
        return std::nullopt;
    std::vector<Address> out;
    bool all_good = true;
    for (const std::string& item : *items) {
        Result<Address> a = parse_address(item, AddressOptions { .qualify_domain = host_name });
        if (a) {
            out.push_back(std::move(a).value());
        } else {
            s.error("bad address " + in_quotes(item) + ": " + a.error().message());
            all_good = false;
        }
    }
    if (!all_good)
        return std::nullopt;
    return out;
}

void resolve_host_dependent(MainBuilder& b, std::string_view file, Diagnostics& diag)
{
    MainConfig& c = b.config;
    c.local_hosts = default_local_hosts(c.host_name);
    if (b.local_hosts)
        if (auto v = string_list_value(setting_of(*b.local_hosts, file, diag)))
            c.local_hosts = std::move(*v);
    if (b.local_addresses)
        if (auto v = qualified_addresses(setting_of(*b.local_addresses, file, diag), c.host_name))
            c.local_addresses = std::move(*v);
    if (b.not_local_addresses)
        if (auto v = qualified_addresses(setting_of(*b.not_local_addresses, file, diag), c.host_name))
            c.not_local_addresses = std::move(*v);
    if (b.log_user) {
        Setting s = setting_of(*b.log_user, file, diag);
        Result<Address> a = parse_address(s.value, AddressOptions { .qualify_domain = c.host_name });
        if (a)
            c.log_user = std::move(a).value();
        else
            s.error("bad address " + in_quotes(s.value) + ": " + a.error().message());
    }
}

// masqmail 0.3 asked online_detect how to find the connection: the file
// online_file names (default /var/run/masqmail/masqmail-route), the output
// of online_pipe, or masqdialer at mserver_iface. Without online_detect, the
// one that is set decides. online_query, when set too, wins.
constexpr std::string_view legacy_online_file = "/var/run/masqmail/masqmail-route";

std::optional<Command> legacy_online_query(const MainBuilder& b, std::string_view file, Diagnostics& diag)
{
    std::string method;
    if (b.online_detect)
        method = b.online_detect->value;
    else if (b.online_pipe)
        method = "pipe";
    else if (b.online_file)
        method = "file";
    else if (b.mserver_iface)
        method = "mserver";
    if (method.empty())
        return std::nullopt;
    std::size_t line = b.online_detect ? b.online_detect->line : 0;
    if (equals_nocase(method, "file")) {
        Deferred path = b.online_file ? *b.online_file
                                      : Deferred { line, "online_file", std::string(legacy_online_file) };
        std::optional<std::string> p = absolute_path_value(setting_of(path, file, diag));
        if (!p)
            return std::nullopt;
        return Command { "/bin/cat " + *p, { "/bin/cat", *p } };
    }
    if (equals_nocase(method, "pipe")) {
        if (!b.online_pipe) {
            diag.warning(
                file, line, "'online_detect' is 'pipe' but 'online_pipe' is not set: always offline");
            return std::nullopt;
        }
        return command_value(setting_of(*b.online_pipe, file, diag));
    }
    if (equals_nocase(method, "mserver"))
        diag.warning(file, line,
            "'online_detect' is 'mserver': masqdialer is not asked directly any more, so this host is "
            "offline until online_query is set (see mserver_iface)");
    else
        diag.warning(file, line, "'online_detect' is neither 'file', 'pipe' nor 'mserver': always offline");
    return std::nullopt;
}

void resolve_online_detection(MainBuilder& b, std::string_view file, Diagnostics& diag)
{
    bool any_legacy = b.online_detect || b.online_file || b.online_pipe || b.mserver_iface;
    if (!any_legacy)
        return;
    if (b.online_query_set) {
        for (const auto* d : { &b.online_detect, &b.online_file, &b.online_pipe })
            if (d->has_value())
                diag.warning(
                    file, (*d)->line, in_quotes((*d)->name) + " has no effect: 'online_query' is set");
        return;
    }
    b.config.online_query = legacy_online_query(b, file, diag);
}

void check_whole_file(MainBuilder& b, std::string_view file, Diagnostics& diag)
{
    const MainConfig& c = b.config;
    resolve_online_detection(b, file, diag);
    if (c.host_name.empty()) {
        diag.error(file, 0, "'host_name' is not set (it is required)");
        return;
    }
    resolve_host_dependent(b, file, diag);
    if (!c.local_nets.empty() && c.local_net_routes.empty())
        diag.warning(file, 0,
            "'local_nets' is set without 'local_net_route': mail to those hosts now waits for a route; add a "
            "permanent route with allowed_recipients = \"*@PATTERN\" (masqmail 0.3 delivered it directly)");
    if (!c.mda && c.mbox_default == MboxMethod::mda)
        diag.error(file, 0, "'mbox_default' is 'mda' but 'mda' is not set");
    if (!c.mda && !c.mda_users.empty())
        diag.error(file, 0, "'mda_users' is set but 'mda' is not");
    if (c.tls_cert_file.has_value() != c.tls_key_file.has_value())
        diag.error(file, 0, "'tls_cert_file' and 'tls_key_file' must be set together");
}

} // namespace

std::vector<OptionInfo> main_options()
{
    return option_infos<MainBuilder>(main_rules);
}

MainConfig parse_main_config_partial(std::string_view text, std::string_view file, Diagnostics& diag)
{
    MainBuilder b;
    b.config.file = std::string(file);
    b.config.errmsg_file = MM_DATADIR "/tpl/failmsg.tpl";
    b.config.warnmsg_file = MM_DATADIR "/tpl/warnmsg.tpl";
    if (text.size() > limits::config_file) {
        diag.error(file, 0, "file larger than " + std::to_string(limits::config_file) + " bytes");
        return std::move(b.config);
    }
    std::vector<Statement> statements = lex_statements(text, file, diag);
    apply_statements<MainBuilder>(b, main_rules, statements, file, diag);
    check_whole_file(b, file, diag);
    return std::move(b.config);
}

std::optional<MainConfig> parse_main_config(std::string_view text, std::string_view file, Diagnostics& diag)
{
    std::size_t errors_before = diag.error_count();
    MainConfig config = parse_main_config_partial(text, file, diag);
    if (diag.error_count() > errors_before)
        return std::nullopt;
    return config;
}

std::optional<MainConfig> read_main_config(const std::string& path, Diagnostics& diag)
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
    return parse_main_config(file->text, path, diag);
}

} // namespace mm::config
