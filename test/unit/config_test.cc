// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail.conf: lexer, typed values, defaults, legacy names, diagnostics.
#include "catch.hh"
#include "config_fixture.hh"
#include "mm/config.hh"
#include "mm/config_lexer.hh"
#include "mm/config_value.hh"
#include "mm/limits.hh"

#include <fstream>
#include <sys/stat.h>
#include <unistd.h>
#include <string>
#include <vector>

using namespace mm::config;
using mm::test::TempDir;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

namespace {

const std::string base = "host_name = test.example\n";

struct Parsed {
    std::optional<MainConfig> config;
    Diagnostics diag;

    std::string messages() const { return mm::test::diagnostic_lines(diag); }
};

Parsed parse(const std::string& text)
{
    Parsed p;
    p.config = parse_main_config(text, "t.conf", p.diag);
    return p;
}

void write_file(const std::string& path, const std::string& text)
{
    std::ofstream(path, std::ios::binary) << text;
}

} // namespace

TEST_CASE("lexer: statements, quotes, escapes, comments, CRLF")
{
    Diagnostics diag;
    std::vector<Statement> st = lex_statements("# comment\n"
                                               "  a = b\r\n"
                                               "c=\"x y\" # trailing comment\n"
                                               "d = \"multi\nline\"\n"
                                               "e = \"q\\\"uote\\\\ \\n\"\n"
                                               "f =\n"
                                               "g = /path/x@y:z;w-v_u.t # c\n",
        "f", diag);
    CHECK_FALSE(diag.has_errors());
    REQUIRE(st.size() == 6);
    CHECK((st[0].name == "a" && st[0].value == "b" && st[0].line == 2));
    CHECK((st[1].name == "c" && st[1].value == "x y" && st[1].line == 3));
    CHECK((st[2].value == "multi\nline" && st[2].line == 4));
    CHECK(st[3].value == "q\"uote\\ n");
    CHECK((st[4].name == "f" && st[4].value.empty()));
    CHECK(st[5].value == "/path/x@y:z;w-v_u.t");
}

TEST_CASE("lexer: bad input gives file:line and a reason")
{
    struct Case {
        std::string text;
        std::string expected;
    };
    std::vector<Case> cases {
        { "a = b\nx = \"open\nmore\n", "f:2: unterminated quote in the value of 'x'" },
        { "a = b\ndo_relay yes\n", "f:2: missing '=' after 'do_relay'" },
        { "online_query = /bin/cat /x\n", "f:1: unexpected '/x' after the value of 'online_query'" },
        { "a = \"b\" c\n", "f:1: unexpected 'c' after the value of 'a'" },
        { "[section]\n", "f:1: expected an option name, found '[section]'" },
        { "a = b\n" + std::string(1 << 20, 'x') + "\n", "f:2: line too long (more than 65536 bytes)" },
        { "a = b\nc = d\0e\n", "f:2: NUL byte in line" },
    };
    cases[6].text = std::string("a = b\nc = d\0e\n", 14);
    for (const Case& c : cases) {
        Diagnostics diag;
        (void)lex_statements(c.text, "f", diag);
        INFO(c.expected);
        REQUIRE(diag.has_errors());
        CHECK(diag.entries().front().text().substr(0, c.expected.size()) == c.expected);
    }
}

TEST_CASE("lexer: a long quoted value is refused at the line it starts")
{
    std::string text = "x = \"";
    for (int i = 0; i < 3; ++i)
        text += std::string(60000, 'a') + "\n";
    text += "\"\n";
    Diagnostics diag;
    (void)lex_statements(text, "f", diag);
    REQUIRE(diag.error_count() == 1);
    CHECK(diag.entries()[0].text().rfind("f:1: value of 'x' too long", 0) == 0);
}

TEST_CASE("booleans are exact words")
{
    for (const char* yes : { "yes", "YES", "on", "On", "true", "TRUE" })
        CHECK(parse_bool(yes) == std::optional<bool>(true));
    for (const char* no : { "no", "off", "false", "FaLsE" })
        CHECK(parse_bool(no) == std::optional<bool>(false));
    for (const char* bad : { "y", "n", "yesplease", "1", "0", "", "tru", "offf" })
        CHECK_FALSE(parse_bool(bad).has_value());
    Parsed p = parse(base + "do_relay = y\n");
    CHECK_FALSE(p.config);
    CHECK(p.messages().find("t.conf:2: 'do_relay': not a boolean: 'y'") == 0);
}

TEST_CASE("intervals need exactly one unit")
{
    CHECK(*parse_interval("30s") == seconds(30));
    CHECK(*parse_interval("5m") == minutes(5));
    CHECK(*parse_interval("4h") == hours(4));
    CHECK(*parse_interval("2d") == hours(48));
    CHECK(*parse_interval("1w") == hours(168));
    CHECK(*parse_interval("0s") == seconds(0));
    CHECK(parse_interval("30").error().message() == "interval needs a unit: s, m, h, d or w: '30'");
    for (const char* bad :
        { "", "h", "1h30m", "1x", "-1h", "1 h", "1H", "99999999999999999999s", "999999999w" })
        CHECK_FALSE(parse_interval(bad));
    Parsed p = parse(base + "max_defer_time = 30\n");
    CHECK_FALSE(p.config);
    CHECK(p.messages() == "t.conf:2: 'max_defer_time': interval needs a unit: s, m, h, d or w: '30'\n");
}

TEST_CASE("defaults of masqmail 1.0")
{
    Parsed p = parse("host_name = mail.example.org\n");
    REQUIRE(p.config);
    const MainConfig& c = *p.config;
    CHECK(c.host_name == "mail.example.org");
    CHECK(c.local_hosts == std::vector<std::string> { "localhost", "mail", "mail.example.org" });
    REQUIRE(c.listen_addresses.size() == 1);
    CHECK(c.listen_addresses[0].str() == "localhost:25");
    CHECK((c.do_relay && !c.do_queue && !c.do_save_envelope_to && !c.caseless_matching));
    CHECK(c.mbox_default == MboxMethod::mbox);
    CHECK(c.maildir_users.empty());
    CHECK((c.mail_dir == "/var/mail" && c.spool_dir == "/var/spool/masqmail"));
    CHECK(
        (c.lock_dir == "/var/lock/masqmail" && c.log_dir == "/var/log/masqmail" && c.pid_dir == "/var/run"));
    CHECK(c.warn_intervals
        == std::vector<seconds> { hours(1), hours(4), hours(8), hours(24), hours(48), hours(72) });
    CHECK(c.max_defer_time == hours(96));
    CHECK((c.max_msg_size == 0 && c.debug_level == 0));
    CHECK((!c.online_query && !c.alias_file && !c.globalias_file && !c.log_user && !c.mda));
    CHECK(c.errmsg_file.ends_with("/tpl/failmsg.tpl"));
    CHECK(c.warnmsg_file.ends_with("/tpl/warnmsg.tpl"));
    CHECK((c.max_received_headers == 50 && c.max_recipients == mm::limits::recipients));
    CHECK(c.relay_nets.empty());
    CHECK(p.diag.entries().empty());

    Parsed single = parse("host_name = laptop\n");
    REQUIRE(single.config);
    CHECK(single.config->local_hosts == std::vector<std::string> { "localhost", "laptop" });
}

TEST_CASE("a config without host_name is refused, an empty file too")
{
    for (const char* text : { "", "\n\n# only comments\n", "do_queue = yes\n" }) {
        Parsed p = parse(text);
        CHECK_FALSE(p.config);
        CHECK(p.messages().find("t.conf: 'host_name' is not set (it is required)\n") != std::string::npos);
    }
}

TEST_CASE("host_name from a file, and a missing one")
{
    TempDir t;
    write_file(t.file("mailname"), "  box.example.net  \nignored\n");
    Parsed p = parse("host_name = " + t.file("mailname") + "\n");
    REQUIRE(p.config);
    CHECK(p.config->host_name == "box.example.net");
    Parsed missing = parse("host_name = " + t.file("nope") + "\n");
    CHECK_FALSE(missing.config);
    CHECK(missing.messages().find(
              "t.conf:1: 'host_name': '" + t.file("nope") + "': cannot read: No such file or directory")
        == 0);
    Parsed bad = parse("host_name = \"not a domain\"\n");
    CHECK_FALSE(bad.config);
}

TEST_CASE("every typed main option")
{
    Parsed p = parse(base
        + "local_hosts = \"localhost; *.lan ;;\"\n"
          "local_addresses = \"bob;alice@other.example\"\n"
          "not_local_addresses = \"carol@test.example\"\n"
          "listen_addresses = \"127.0.0.1:2525;[::1]:25;[::1];mail.lan\"\n"
          "do_save_envelope_to = yes\ndo_relay = off\ndo_queue = true\n"
          "permanent_routes = \"/etc/r/lan.route;/etc/r/all.route\"\n"
          "query_routes.isp = \"/etc/r/isp.route\"\nquery_routes.Work-1 = \"/etc/r/w.route\"\n"
          "online_query = \"/usr/bin/mservdetect localhost 222\"\n"
          "alias_file = /etc/aliases\nglobalias_file = /etc/globaliases\ncaseless_matching = yes\n"
          "mbox_default = mda\nmbox_users = \"root;bob\"\nmda_users = carol\nmaildir_users = \"dave;erin\"\n"
          "mda = \"/usr/bin/procmail -Y -d ${rcpt_local}\"\n"
          "mda_fromline = yes\nmda_fromhack = yes\npipe_fromline = yes\npipe_fromhack = yes\n"
          "mail_dir = /m\nspool_dir = /s\nlock_dir = /l\nlog_dir = \"\"\npid_dir = /p\n"
          "run_as_user = yes\nuse_syslog = yes\ndebug_level = 9\n"
          "errmsg_file = /e.tpl\nwarnmsg_file = /w.tpl\nwarn_intervals = \"10m;1h\"\n"
          "max_defer_time = 1w\nlog_user = archive\nmax_msg_size = 10485760\ndefer_all = yes\n"
          "relay_nets = \"192.168.0.0/16;10.1.2.3;2001:db8::/32\"\n"
          "tls_cert_file = /c.pem\ntls_key_file = /k.pem\n"
          "max_received_headers = 30\nmax_recipients = 500\n");
    INFO(p.messages());
    REQUIRE(p.config);
    const MainConfig& c = *p.config;
    CHECK(c.local_hosts == std::vector<std::string> { "localhost", "*.lan" });
    REQUIRE(c.local_addresses.size() == 2);
    CHECK(c.local_addresses[0].str() == "bob@test.example");
    CHECK(c.local_addresses[1].str() == "alice@other.example");
    REQUIRE(c.not_local_addresses.size() == 1);
    REQUIRE(c.listen_addresses.size() == 4);
    CHECK(c.listen_addresses[0].str() == "127.0.0.1:2525");
    CHECK((c.listen_addresses[1].host == "::1" && c.listen_addresses[1].port == 25));
    CHECK(c.listen_addresses[2].str() == "[::1]:25");
    CHECK(c.listen_addresses[3].str() == "mail.lan:25");
    CHECK((c.do_save_envelope_to && !c.do_relay && c.do_queue));
    CHECK(c.permanent_routes == std::vector<std::string> { "/etc/r/lan.route", "/etc/r/all.route" });
    CHECK(c.query_routes.at("isp") == std::vector<std::string> { "/etc/r/isp.route" });
    CHECK(c.query_routes.count("Work-1") == 1);
    REQUIRE(c.online_query);
    CHECK(c.online_query->argv == std::vector<std::string> { "/usr/bin/mservdetect", "localhost", "222" });
    CHECK(
        (*c.alias_file == "/etc/aliases" && *c.globalias_file == "/etc/globaliases" && c.caseless_matching));
    CHECK(c.mbox_default == MboxMethod::mda);
    CHECK(c.mbox_users == std::vector<std::string> { "root", "bob" });
    CHECK(c.mda_users == std::vector<std::string> { "carol" });
    CHECK(c.maildir_users == std::vector<std::string> { "dave", "erin" });
    CHECK(c.mda->argv == std::vector<std::string> { "/usr/bin/procmail", "-Y", "-d", "${rcpt_local}" });
    CHECK((c.mda_fromline && c.mda_fromhack && c.pipe_fromline && c.pipe_fromhack));
    CHECK((c.mail_dir == "/m" && c.spool_dir == "/s" && c.lock_dir == "/l" && c.log_dir.empty()
        && c.pid_dir == "/p"));
    CHECK((c.run_as_user && c.use_syslog && c.debug_level == 9));
    CHECK((c.errmsg_file == "/e.tpl" && c.warnmsg_file == "/w.tpl"));
    CHECK(c.warn_intervals == std::vector<seconds> { minutes(10), hours(1) });
    CHECK(c.max_defer_time == hours(168));
    CHECK(c.log_user->str() == "archive@test.example");
    CHECK((c.max_msg_size == 10485760 && c.defer_all));
    REQUIRE(c.relay_nets.size() == 3);
    CHECK((c.relay_nets[0].prefix_length == 16 && c.relay_nets[1].prefix_length == 32));
    CHECK(c.relay_nets[2].prefix_length == 32);
    CHECK((*c.tls_cert_file == "/c.pem" && *c.tls_key_file == "/k.pem"));
    CHECK((c.max_received_headers == 30 && c.max_recipients == 500));
    CHECK(p.diag.entries().empty());
}

TEST_CASE("Maildir delivery is back (masqmail 0.2)")
{
    Parsed p = parse(base + "mbox_default = Maildir\nmaildir_users = bob\n");
    INFO(p.messages());
    REQUIRE(p.config);
    CHECK(p.diag.warning_count() == 0);
    CHECK(p.config->mbox_default == MboxMethod::maildir);
    CHECK(p.config->maildir_users == std::vector<std::string> { "bob" });
}

TEST_CASE("bad values of main options")
{
    struct Case {
        std::string line;
        std::string reason;
    };
    std::vector<Case> cases {
        { "mbox_default = file", "'mbox_default': neither 'mbox', 'mda' nor 'maildir': 'file'" },
        { "spool_dir = spool", "'spool_dir': not an absolute path: 'spool'" },
        { "debug_level = 10", "'debug_level': not a number from 0 to 9: '10'" },
        { "debug_level = -1", "'debug_level': not a number from 0 to 9" },
        { "max_msg_size = 99999999999999999999", "'max_msg_size': not a number" },
        { "listen_addresses = \"::1:25\"", "'listen_addresses': an IPv6 address needs brackets" },
        { "listen_addresses = \"host:0\"", "'listen_addresses': bad port in 'host:0'" },
        { "listen_addresses = \"host:99999\"", "'listen_addresses': bad port" },
        { "listen_addresses = \"[::1\"", "'listen_addresses': missing ']'" },
        { "listen_addresses = \"[nothex]:25\"", "'listen_addresses': not an IPv6 address" },
        { "online_query = \"cat /x\"", "'online_query': command must start with an absolute path" },
        { "online_query = \"/bin/cat 'x\"", "'online_query': unterminated ' in command" },
        { "mda = \"\"", "'mda': empty command" },
        { "local_addresses = \"bad address@\"", "'local_addresses': bad address" },
        { "log_user = \"a@@b\"", "'log_user': bad address" },
        { "relay_nets = \"10.0.0.0/33\"", "'relay_nets': bad prefix length" },
        { "relay_nets = \"example.org\"", "'relay_nets': not a network" },
        { "permanent_routes = \"/r;/r\"", "'permanent_routes': route file '/r' listed twice" },
        { "warn_intervals = \"1h;2\"", "'warn_intervals': interval needs a unit" },
        { "max_recipients = 0", "'max_recipients': not a number from 1" },
        { "helo_name = x", "" }, // unknown in masqmail.conf: only a warning
    };
    for (const Case& c : cases) {
        Parsed p = parse(base + c.line + "\n");
        INFO(c.line << "\n" << p.messages());
        if (c.reason.empty()) {
            CHECK(p.config);
            continue;
        }
        CHECK_FALSE(p.config);
        CHECK(p.messages().rfind("t.conf:2: " + c.reason, 0) == 0);
    }
}

TEST_CASE("whole-file checks")
{
    CHECK(parse(base + "mbox_default = mda\n").messages()
        == "t.conf: 'mbox_default' is 'mda' but 'mda' is not set\n");
    CHECK(parse(base + "mda_users = bob\n").messages() == "t.conf: 'mda_users' is set but 'mda' is not\n");
    CHECK_FALSE(parse(base + "tls_cert_file = /c\n").config);
}

TEST_CASE("lists: trimmed, empty items dropped, files spliced in")
{
    TempDir t;
    write_file(t.file("hosts"), "# local names\n  lan.example  \n\n*.home\r\n");
    Parsed p = parse(base + "local_hosts = \"localhost;" + t.file("hosts") + "; other \"\n");
    REQUIRE(p.config);
    CHECK(
        p.config->local_hosts == std::vector<std::string> { "localhost", "lan.example", "*.home", "other" });

    Parsed missing = parse(base + "\nlocal_hosts = \"localhost;" + t.file("nope") + "\"\n");
    CHECK_FALSE(missing.config);
    CHECK(missing.messages()
        == "t.conf:3: 'local_hosts': list file '" + t.file("nope")
            + "': cannot read: No such file or directory\n");

    // Route lists take file names literally.
    Parsed routes = parse(base + "permanent_routes = \"" + t.file("hosts") + "\"\n");
    REQUIRE(routes.config);
    CHECK(routes.config->permanent_routes == std::vector<std::string> { t.file("hosts") });

    write_file(t.file("long"), std::string(2000, 'x') + "\n");
    CHECK_FALSE(parse(base + "mbox_users = " + t.file("long") + "\n").config);
}

TEST_CASE("legacy names are mapped with a deprecation warning")
{
    Parsed p = parse(base
        + "online_routes.dsl = \"/r/dsl.route\"\n"
          "connect_route.gprs = \"/r/gprs.route\"\n"
          "alias_local_caseless = yes\n"
          "local_net_route = \"/r/lan.route\"\n"
          "online_file = /var/run/masqmail-route\n");
    INFO(p.messages());
    REQUIRE(p.config);
    const MainConfig& c = *p.config;
    CHECK(c.query_routes.at("dsl") == std::vector<std::string> { "/r/dsl.route" });
    CHECK(c.query_routes.at("gprs") == std::vector<std::string> { "/r/gprs.route" });
    CHECK(c.caseless_matching);
    CHECK(c.permanent_routes == std::vector<std::string> { "/r/lan.route" });
    CHECK(c.online_query->argv == std::vector<std::string> { "/bin/cat", "/var/run/masqmail-route" });
    REQUIRE(p.diag.entries().size() == 5);
    CHECK(p.diag.entries()[0].text()
        == "t.conf:2: 'online_routes.dsl' is deprecated, use 'query_routes.dsl'; the same list of route "
           "files");
    CHECK(p.diag.entries()[1].text().starts_with(
        "t.conf:3: 'connect_route.gprs' is deprecated, use 'query_routes.gprs'"));
    CHECK(p.diag.entries()[2].text().starts_with(
        "t.conf:4: 'alias_local_caseless' is deprecated, use 'caseless_matching'"));
    CHECK(p.diag.entries()[3].text().starts_with(
        "t.conf:5: 'local_net_route' is deprecated, use 'permanent_routes'"));
    CHECK(p.diag.entries()[4].text().starts_with(
        "t.conf:6: 'online_file' is deprecated, use 'online_query'; read as "
        "online_query = \"/bin/cat /var/run/masqmail-route\""));

    Parsed pipe = parse(base + "online_pipe = \"/usr/bin/detect -q\"\n");
    REQUIRE(pipe.config);
    CHECK(pipe.config->online_query->argv == std::vector<std::string> { "/usr/bin/detect", "-q" });
    CHECK(pipe.diag.warning_count() == 1);
}

TEST_CASE("removed names and unknown names only warn")
{
    Parsed p = parse(base
        + "online_detect = pipe\nmserver_iface = localhost:222\nremote_port = 25\n"
          "get.pop = /etc/pop\nonline_gets.isp = pop\n"
          "ident_trusted_nets = 10.0.0.0/8\nlocal_nets = lan\nfrobnicate = 1\n");
    REQUIRE(p.config);
    // 8 names, and two whole-file warnings: online_detect = pipe without an
    // online_pipe, local_nets without a local_net_route.
    CHECK(p.diag.warning_count() == 10);
    CHECK(p.diag.entries()[0].text().starts_with(
        "t.conf:2: 'online_detect' is deprecated, use 'online_query'"));
    CHECK(p.diag.entries()[1].text().starts_with("t.conf:3: 'mserver_iface' is deprecated and ignored: "));
    CHECK_FALSE(p.config->online_query);
    CHECK(p.diag.entries()[7].text() == "t.conf:9: unknown option 'frobnicate' ignored");
}

TEST_CASE("0.3's online_detect picks online_file, online_pipe or nothing; online_query wins")
{
    Parsed file_default = parse(base + "online_detect = file\n");
    REQUIRE(file_default.config);
    CHECK(file_default.config->online_query->argv
        == std::vector<std::string> { "/bin/cat", "/var/run/masqmail/masqmail-route" });

    Parsed pipe = parse(
        base + "online_detect = pipe\nonline_file = /run/route\nonline_pipe = \"/usr/bin/detect -x\"\n");
    REQUIRE(pipe.config);
    CHECK(pipe.config->online_query->argv == std::vector<std::string> { "/usr/bin/detect", "-x" });

    Parsed file
        = parse(base + "online_file = /run/route\nonline_detect = FILE\nonline_pipe = /usr/bin/detect\n");
    REQUIRE(file.config);
    CHECK(file.config->online_query->argv == std::vector<std::string> { "/bin/cat", "/run/route" });

    Parsed both = parse(base + "online_file = /run/route\nonline_query = \"/bin/cat /run/online\"\n");
    INFO(both.messages());
    REQUIRE(both.config);
    CHECK(both.config->online_query->argv == std::vector<std::string> { "/bin/cat", "/run/online" });
    CHECK_THAT(
        both.messages(), Catch::Contains("t.conf:2: 'online_file' has no effect: 'online_query' is set"));

    Parsed mserver = parse(base + "online_detect = mserver\nmserver_iface = localhost:224\n");
    REQUIRE(mserver.config);
    CHECK_FALSE(mserver.config->online_query);
    CHECK_THAT(mserver.messages(), Catch::Contains("t.conf:2: 'online_detect' is 'mserver'"));

    CHECK_FALSE(parse(base + "online_file = relative/path\n").config);
}

TEST_CASE("a later assignment overrides an earlier one")
{
    Parsed p = parse(base
        + "do_queue = yes\nlocal_hosts = a\ndo_queue = no\nlocal_hosts = b\n"
          "query_routes.x = /r1\nquery_routes.x = /r2\n");
    REQUIRE(p.config);
    CHECK_FALSE(p.config->do_queue);
    CHECK(p.config->local_hosts == std::vector<std::string> { "b" });
    CHECK(p.config->query_routes.at("x") == std::vector<std::string> { "/r2" });
    CHECK(p.diag.entries()[0].text() == "t.conf:4: 'do_queue' set again; replaces the value from line 2");
    CHECK(p.diag.error_count() == 0);
}

TEST_CASE("parse_command splits like sh, without a shell")
{
    struct Case {
        std::string text;
        std::vector<std::string> argv;
    };
    std::vector<Case> cases {
        { "/bin/a b  c", { "/bin/a", "b", "c" } },
        { "/bin/a 'b c' \"d e\"", { "/bin/a", "b c", "d e" } },
        { "/bin/a \"\\$x \\\" \\\\ \\n\"", { "/bin/a", "$x \" \\ \\n" } },
        { "/bin/a b\\ c ''", { "/bin/a", "b c", "" } },
        { "/bin/a ${rcpt} $x", { "/bin/a", "${rcpt}", "$x" } },
        { "  /bin/a\n-x\t", { "/bin/a", "-x" } },
    };
    for (const Case& c : cases) {
        auto cmd = parse_command(c.text);
        INFO(c.text);
        REQUIRE(cmd);
        CHECK(cmd->argv == c.argv);
    }
    for (const char* bad : { "", "   ", "a b", "/bin/a 'b", "/bin/a \"b", "/bin/a b\\" })
        CHECK_FALSE(parse_command(bad));
}

TEST_CASE("read_main_config: missing file, and diagnostics format")
{
    TempDir t;
    Diagnostics diag;
    CHECK_FALSE(read_main_config(t.file("none.conf"), diag));
    REQUIRE(diag.entries().size() == 1);
    CHECK(diag.entries()[0].text() == t.file("none.conf") + ": cannot read: No such file or directory");
    write_file(t.file("ok.conf"), "host_name = \"h.example\"\r\nrun_as_user = yes\r\n");
    Diagnostics ok;
    auto c = read_main_config(t.file("ok.conf"), ok);
    REQUIRE(c);
    CHECK((c->host_name == "h.example" && c->run_as_user && c->file == t.file("ok.conf")));
    Diagnostics dir;
    CHECK_FALSE(read_main_config(t.path(), dir));
    CHECK(dir.entries()[0].reason == "cannot read: not a regular file");
}

TEST_CASE("read_main_config: a file others can change is refused")
{
    TempDir t;
    std::string path = t.file("m.conf");
    write_file(path, "host_name = \"h.example\"\n");
    auto refused = [&](mode_t mode) {
        ::chmod(path.c_str(), mode);
        Diagnostics diag;
        bool read = read_main_config(path, diag).has_value();
        return !read && diag.error_count() == 1 ? diag.entries()[0].reason : std::string("read");
    };
    CHECK(refused(0644) == "read");
    CHECK(refused(0600) == "read");
    CHECK(refused(0666) == "is writable by everyone (chmod o-w)");
    CHECK(refused(0602) == "is writable by everyone (chmod o-w)");
    // Its group may write it when that group is root's or the reader's own.
    CHECK(refused(0664) == "read");
    if (::geteuid() == 0) {
        REQUIRE(::chown(path.c_str(), 0, 65534) == 0);
        CHECK(refused(0664) == "is writable by group 65534 (chmod g-w)");
        CHECK(refused(0644) == "read");
        REQUIRE(::chown(path.c_str(), 65534, 0) == 0);
        CHECK(refused(0644) == "belongs to uid 65534, neither root nor the user masqmail runs as (chown root)");
    }
}

TEST_CASE("diagnostics are bounded and quote control bytes")
{
    std::string text = base;
    for (int i = 0; i < 3000; ++i)
        text += "do_relay = maybe\n";
    Parsed p = parse(text);
    CHECK_FALSE(p.config);
    CHECK(p.diag.error_count() == 3000);
    CHECK(p.diag.entries().size() == mm::limits::config_diagnostics);
    CHECK(in_quotes("a\x1b[31mb") == "'a?[31mb'");
    CHECK(in_quotes(std::string(100, 'x')) == "'" + std::string(80, 'x') + "...'");
}
