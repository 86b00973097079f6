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

void set_query_routes(MainBuilder& b, const Setting& s)
{
    std::string_view connection = s.name.substr(s.name.find('.') + 1);
    if (auto v = route_list_value(s))
        b.config.query_routes[std::string(connection)] = std::move(*v);
}

// ---- 0.3.x names (masqmail §2.3) ----

void set_legacy_query_routes(MainBuilder& b, const Setting& s)
{
    s.deprecated("query_routes." + std::string(s.name.substr(s.name.find('.') + 1)));
    set_query_routes(b, s);
}

void set_online_file(MainBuilder& b, const Setting& s)
{
    s.deprecated("online_query");
    if (auto path = absolute_path_value(s))
        b.config.online_query = Command { "/bin/cat " + *path, { "/bin/cat", *path } };
}

void set_online_pipe(MainBuilder& b, const Setting& s)
{
    s.deprecated("online_query");
    if (auto v = command_value(s))
        b.config.online_query = std::move(*v);
}

void set_local_net_route(MainBuilder& b, const Setting& s)
{
    s.deprecated("permanent_routes");
    if (auto v = route_list_value(s))
        for (std::string& route : *v)
            if (std::find(b.config.permanent_routes.begin(), b.config.permanent_routes.end(), route)
                == b.config.permanent_routes.end())
                b.config.permanent_routes.push_back(std::move(route));
}

void set_alias_local_caseless(MainBuilder& b, const Setting& s)
{
    s.deprecated("caseless_matching");
    assign<bool_value, &MainConfig::caseless_matching>(b, s);
}

template <const char* Hint> void unsupported(MainBuilder&, const Setting& s)
{
    s.unsupported(Hint);
}

constexpr char no_hint[] = "";
constexpr char hint_online_detect[] = "use online_query";
constexpr char hint_mserver[] = "use online_query with mservdetect";
constexpr char hint_remote_port[] = "use mail_host=\"host:port\" or smtp_port in the route file";
constexpr char hint_pop3[] = "use fetchmail or similar";
constexpr char hint_local_nets[] = "use a permanent route with allowed_recipients=\"*@pattern\"";

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
    { "online_query", assign<command_value, &MainConfig::online_query> },
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
    // 0.3.x and older
    { "connect_route.", set_legacy_query_routes },
    { "online_routes.", set_legacy_query_routes },
    { "online_file", set_online_file },
    { "online_pipe", set_online_pipe },
    { "local_net_route", set_local_net_route },
    { "alias_local_caseless", set_alias_local_caseless },
    { "online_detect", unsupported<hint_online_detect> },
    { "mserver_iface", unsupported<hint_mserver> },
    { "remote_port", unsupported<hint_remote_port> },
    { "get.", unsupported<hint_pop3> },
    { "online_gets.", unsupported<hint_pop3> },
    { "ident_trusted_nets", unsupported<no_hint> },
    { "local_nets", unsupported<hint_local_nets> },
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

void check_whole_file(MainBuilder& b, std::string_view file, Diagnostics& diag)
{
    const MainConfig& c = b.config;
    if (c.host_name.empty()) {
        diag.error(file, 0, "'host_name' is not set (it is required)");
        return;
    }
    resolve_host_dependent(b, file, diag);
    if (!c.mda && c.mbox_default == MboxMethod::mda)
        diag.error(file, 0, "'mbox_default' is 'mda' but 'mda' is not set");
    if (!c.mda && !c.mda_users.empty())
        diag.error(file, 0, "'mda_users' is set but 'mda' is not");
    if (c.tls_cert_file.has_value() != c.tls_key_file.has_value())
        diag.error(file, 0, "'tls_cert_file' and 'tls_key_file' must be set together");
}

} // namespace

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
    return parse_main_config(file->text, path, diag);
}

} // namespace mm::config
