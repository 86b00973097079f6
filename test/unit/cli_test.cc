// SPDX-License-Identifier: GPL-2.0-or-later
#include "../../wrappers/masqmail/cli.hh"
#include "catch.hh"
#include "mm/limits.hh"
#include "mm/sysexits.hh"

#include <chrono>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

using mm::cli::Invocation;
using mm::cli::Mode;
using namespace std::chrono_literals;

namespace {

mm::Result<Invocation> parse(std::string_view program, std::vector<std::string_view> args)
{
    return mm::cli::parse_command_line(program, args);
}

Invocation parse_ok(std::string_view program, std::vector<std::string_view> args)
{
    mm::Result<Invocation> r = parse(program, args);
    if (!r)
        FAIL("unexpected error: " << r.error().message());
    return std::move(r).value();
}

std::string joined(const std::vector<std::string_view>& args)
{
    std::string out;
    for (std::string_view a : args)
        out += " [" + std::string(a) + "]";
    return out;
}

struct ModeCase {
    std::string_view program;
    std::vector<std::string_view> args;
    Mode mode;
};

struct ErrorCase {
    std::string_view program;
    std::vector<std::string_view> args;
    std::string_view message;
};

} // namespace

TEST_CASE("cli: the program name and the options choose the mode")
{
    const std::vector<ModeCase> cases {
        { "masqmail", {}, Mode::version },
        { "sendmail", {}, Mode::version },
        { "whatever", {}, Mode::version },
        { "masqmail", { "-oi" }, Mode::version },
        { "sendmail", { "alice" }, Mode::accept },
        { "sendmail", { "-t" }, Mode::accept },
        { "sendmail", { "-bm" }, Mode::accept },
        { "sendmail", { "-bm", "alice" }, Mode::accept },
        { "masqmail", { "-bd" }, Mode::daemon },
        { "masqmail", { "-bd", "-q30m" }, Mode::daemon },
        { "masqmail", { "-q30m", "-bd" }, Mode::daemon },
        { "masqmail", { "-bD" }, Mode::foreground_daemon },
        { "masqmail", { "-bD", "-q1h" }, Mode::foreground_daemon },
        { "masqmail", { "-q1h", "-bD" }, Mode::foreground_daemon },
        { "masqmail", { "-q30m" }, Mode::queue_daemon },
        { "masqmail", { "-q" }, Mode::queue_run },
        { "masqmail", { "-q", "-q" }, Mode::queue_run },
        { "masqmail", { "-qo", "isp" }, Mode::route_run },
        { "masqmail", { "-qoisp" }, Mode::route_run },
        { "masqmail", { "-q", "-qo", "isp" }, Mode::route_run },
        { "masqmail", { "-bs" }, Mode::smtp_stdio },
        { "masqmail", { "-bp" }, Mode::list_queue },
        { "masqmail", { "-bp", "--json" }, Mode::list_queue_json },
        { "masqmail", { "--json", "-bp" }, Mode::list_queue_json },
        { "masqmail", { "-bi" }, Mode::rebuild_aliases },
        { "masqmail", { "-bV" }, Mode::version },
        { "masqmail", { "--version" }, Mode::version },
        { "masqmail", { "-Mrm", "1abc-00-xy" }, Mode::remove },
        { "masqmail", { "--check-config" }, Mode::check_config },
        { "masqmail", { "--check-config", "-C", "/tmp/m.conf" }, Mode::check_config },
        { "masqmail", { "--explain", "alice@example.org" }, Mode::explain },
        { "masqmail", { "--explain=alice@example.org" }, Mode::explain },
        { "masqmail", { "--daemon-dir" }, Mode::daemon_dir },
        { "masqmail", { "--help" }, Mode::help },
        { "mailq", {}, Mode::list_queue },
        { "mailq", { "-bp" }, Mode::list_queue },
        { "mailq", { "--json" }, Mode::list_queue_json },
        { "runq", {}, Mode::queue_run },
        { "runq", { "-q" }, Mode::queue_run },
        { "runq", { "-qo", "isp" }, Mode::route_run },
        { "runq", { "-qoisp" }, Mode::route_run },
        { "mailrm", { "1abc-00-xy" }, Mode::remove },
        { "newaliases", {}, Mode::rebuild_aliases },
        { "smtpd", {}, Mode::smtp_stdio },
        { "in.smtpd", {}, Mode::smtp_stdio },
        { "rmail", { "alice" }, Mode::accept },
        { "rmail", {}, Mode::accept },
    };
    for (const ModeCase& c : cases) {
        INFO(c.program << joined(c.args));
        mm::Result<Invocation> r = parse(c.program, c.args);
        REQUIRE(r);
        CHECK(mm::cli::mode_name(r->mode) == std::string(mm::cli::mode_name(c.mode)));
    }
}

TEST_CASE("cli: usage errors carry masqmail's message and exit 64")
{
    const std::vector<ErrorCase> cases {
        { "masqmail", { "-Z" }, "unrecognized option '-Z'" },
        { "masqmail", { "--frobnicate" }, "unrecognized option '--frobnicate'" },
        { "masqmail", { "-" }, "unrecognized option '-'" },
        { "masqmail", { "-bt" }, "unrecognized option '-bt'" },
        { "masqmail", { "-Mfrz", "x" }, "unrecognized option '-Mfrz'" },
        { "masqmail", { "-M", "x" }, "unrecognized option '-M'" },
        { "masqmail", { "-bmx" }, "unrecognized option '-bmx'" },
        { "masqmail", { "--explainfoo" }, "unrecognized option '--explainfoo'" },
        { "masqmail", { "-f" }, "-f requires address arg." },
        { "masqmail", { "-f", "-" }, "-f requires address arg." },
        { "masqmail", { "-f", "-t", "alice" }, "-f requires address arg." },
        { "masqmail", { "-r" }, "-r requires address arg." },
        { "masqmail", { "-F" }, "-F requires name arg." },
        { "masqmail", { "-C" }, "-C requires filename arg." },
        { "masqmail", { "-C", "-bp" }, "-C requires filename arg." },
        { "masqmail", { "-C", "" }, "-C requires filename arg." },
        { "masqmail", { "-d" }, "-d requires number arg." },
        { "masqmail", { "-d", "x" }, "invalid debug level 'x' (0 to 9)" },
        { "masqmail", { "-dx" }, "invalid debug level 'x' (0 to 9)" },
        { "masqmail", { "-d", "10" }, "invalid debug level '10' (0 to 9)" },
        { "masqmail", { "-d", "+1" }, "invalid debug level '+1' (0 to 9)" },
        { "masqmail", { "-qo" }, "-qo requires name arg." },
        { "masqmail", { "-qo", "-v" }, "-qo requires name arg." },
        { "runq", { "-qo" }, "-qo requires name arg." },
        { "masqmail", { "-qo", "a/b" }, "invalid route name 'a/b'" },
        { "masqmail", { "-qo", "" }, "invalid route name ''" },
        { "masqmail", { "-q30" }, "invalid queue interval '30': needs a unit (s, m, h, d or w)" },
        { "masqmail", { "-bd", "-q30" }, "invalid queue interval '30': needs a unit (s, m, h, d or w)" },
        { "masqmail", { "-q", "30" }, "invalid queue interval '30': needs a unit (s, m, h, d or w)" },
        { "masqmail", { "-q1h30m" },
            "invalid queue interval '1h30m': use digits and one unit (s, m, h, d or w), e.g. 30m" },
        { "masqmail", { "-qfoo" },
            "invalid queue interval 'foo': use digits and one unit (s, m, h, d or w), e.g. 30m" },
        { "masqmail", { "-q30x" },
            "invalid queue interval '30x': use digits and one unit (s, m, h, d or w), e.g. 30m" },
        { "masqmail", { "-q0m" }, "invalid queue interval '0m': must be more than zero" },
        { "masqmail", { "-q", "foo" }, "unexpected argument 'foo' (-q takes no addresses)" },
        { "masqmail", { "-bp", "alice" }, "unexpected argument 'alice' (-bp takes no addresses)" },
        { "mailq", { "alice" }, "unexpected argument 'alice' (mailq takes no addresses)" },
        { "masqmail", { "-bV", "alice" }, "unexpected argument 'alice' (-bV takes no addresses)" },
        { "masqmail", { "-Mrm" }, "-Mrm requires message id arg." },
        { "mailrm", {}, "mailrm requires message id arg." },
        { "masqmail", { "-X", "/var/www/shell.php" },
            "-X is refused: masqmail writes no traffic log files "
            "(the option has been used to write arbitrary files)" },
        { "masqmail", { "-X/var/www/shell.php" },
            "-X is refused: masqmail writes no traffic log files "
            "(the option has been used to write arbitrary files)" },
        { "masqmail", { "-bd", "-bp" }, "operation mode was already specified" },
        { "masqmail", { "-bd", "-bD" }, "operation mode was already specified" },
        { "masqmail", { "-bp", "-q" }, "operation mode was already specified" },
        { "masqmail", { "-bm", "-bs" }, "operation mode was already specified" },
        { "masqmail", { "-q", "-q30m" }, "operation mode was already specified" },
        { "masqmail", { "-qo", "isp", "-q1h" }, "operation mode was already specified" },
        { "masqmail", { "-bi", "-Mrm", "x" }, "operation mode was already specified" },
        { "masqmail", { "--check-config", "-bV" }, "operation mode was already specified" },
        { "mailq", { "-q" }, "operation mode was already specified" },
        { "runq", { "-bp" }, "operation mode was already specified" },
        { "runq", { "-q30m" }, "operation mode was already specified" },
        { "newaliases", { "-bd" }, "operation mode was already specified" },
        { "smtpd", { "-bm" }, "operation mode was already specified" },
        { "rmail", { "-bp" }, "operation mode was already specified" },
        { "mailrm", { "-bp" }, "operation mode was already specified" },
        { "masqmail", { "--json" }, "--json is only valid with -bp or mailq" },
        { "masqmail", { "-bs", "--json" }, "--json is only valid with -bp or mailq" },
        { "masqmail", { "--explain" }, "--explain requires address arg." },
        { "masqmail", { "-F", "Eve\nBcc: victim@example.org" }, "-F: name contains a line break" },
        { "masqmail", { "-FEve\r" }, "-F: name contains a line break" },
        { "masqmail", { "-F", std::string_view("Eve\0x", 5) }, "-F: name contains a NUL byte" },
        { "masqmail", { "-f", "a@b\nBcc: c@d" }, "-f: address contains a line break" },
        { "masqmail", { "-ra@b\r" }, "-r: address contains a line break" },
        { "masqmail", { "alice\nBcc: x" }, "argument contains a line break or NUL byte: 'alice?Bcc: x'" },
        { "masqmail", { "-h" }, "-h requires number arg." },
        { "masqmail", { "-h", "many" }, "-h requires number arg." },
        { "masqmail", { "-B" }, "-B requires type arg." },
        { "masqmail", { "-N" }, "-N requires dsn arg." },
        { "masqmail", { "-R" }, "-R requires ret arg." },
        { "masqmail", { "-V" }, "-V requires envid arg." },
        { "masqmail", { "-L" }, "-L requires tag arg." },
        { "masqmail", { "-tx" }, "unrecognized option '-tx'" },
    };
    for (const ErrorCase& c : cases) {
        INFO(c.program << joined(c.args));
        mm::Result<Invocation> r = parse(c.program, c.args);
        REQUIRE_FALSE(r);
        CHECK(r.error().message() == c.message);
        CHECK(r.error().exit_code() == mm::ex::usage);
    }
}

TEST_CASE("cli: options take their value glued or as the next word")
{
    for (const auto& args : std::vector<std::vector<std::string_view>> {
             { "-C", "/etc/m.conf", "-d", "5", "-f", "bob@example.org", "-F", "Bob B", "alice" },
             { "-C/etc/m.conf", "-d5", "-fbob@example.org", "-FBob B", "alice" },
             { "alice", "-C/etc/m.conf", "-d", "5", "-rbob@example.org", "-F", "Bob B" },
         }) {
        INFO(joined(args));
        Invocation inv = parse_ok("sendmail", args);
        CHECK(inv.mode == Mode::accept);
        CHECK(inv.config_path == "/etc/m.conf");
        CHECK(inv.debug_level == 5u);
        CHECK(inv.sender == "bob@example.org");
        CHECK(inv.full_name == "Bob B");
        CHECK(inv.recipients == std::vector<std::string> { "alice" });
    }
}

TEST_CASE("cli: the defaults of an accept run")
{
    Invocation inv = parse_ok("sendmail", { "alice" });
    CHECK(inv.dot_terminates);
    CHECK_FALSE(inv.extract_recipients);
    CHECK_FALSE(inv.sender);
    CHECK_FALSE(inv.full_name);
    CHECK_FALSE(inv.config_path);
    CHECK_FALSE(inv.debug_level);
    CHECK_FALSE(inv.queue_only);
    CHECK_FALSE(inv.background);
    CHECK_FALSE(inv.verbose);
    CHECK_FALSE(inv.queue_interval);
    CHECK(inv.ignored_options.empty());
    CHECK(inv.message_ids.empty());
}

TEST_CASE("cli: sendmail flags")
{
    CHECK_FALSE(parse_ok("sendmail", { "-i", "a" }).dot_terminates);
    CHECK_FALSE(parse_ok("sendmail", { "-oi", "a" }).dot_terminates);
    CHECK(parse_ok("sendmail", { "-t" }).extract_recipients);
    CHECK(parse_ok("sendmail", { "-odq", "a" }).queue_only);
    CHECK(parse_ok("sendmail", { "-odb", "a" }).background);
    CHECK(parse_ok("sendmail", { "-v", "a" }).verbose);
    Invocation cluster = parse_ok("sendmail", { "-ti" });
    CHECK(cluster.extract_recipients);
    CHECK_FALSE(cluster.dot_terminates);
    CHECK(cluster.mode == Mode::accept);
    Invocation oi_t = parse_ok("sendmail", { "-oi", "-t" });
    CHECK(oi_t.extract_recipients);
    CHECK_FALSE(oi_t.dot_terminates);
}

TEST_CASE("cli: harmless sendmail options are accepted and listed for the log")
{
    struct IgnoredCase {
        std::vector<std::string_view> args;
        std::vector<std::string> ignored;
    };
    const std::vector<IgnoredCase> cases {
        { { "-oem", "a" }, { "-oem" } },
        { { "-oee", "a" }, { "-oee" } },
        { { "-om", "a" }, { "-om" } },
        { { "-odi", "a" }, { "-odi" } },
        { { "-o", "a" }, { "-o" } },
        { { "-oQ/var/spool", "a" }, { "-oQ/var/spool" } },
        { { "-B", "8BITMIME", "a" }, { "-B 8BITMIME" } },
        { { "-B8BITMIME", "a" }, { "-B 8BITMIME" } },
        { { "-m", "a" }, { "-m" } },
        { { "-N", "never", "a" }, { "-N never" } },
        { { "-Nsuccess,failure", "a" }, { "-N success,failure" } },
        { { "-R", "hdrs", "a" }, { "-R hdrs" } },
        { { "-V", "id42", "a" }, { "-V id42" } },
        { { "-U", "a" }, { "-U" } },
        { { "-G", "a" }, { "-G" } },
        { { "-L", "cron", "a" }, { "-L cron" } },
        { { "-h", "17", "a" }, { "-h 17" } },
        { { "-h17", "a" }, { "-h 17" } },
        { { "-n", "a" }, { "-n" } },
        { { "-tm", "a" }, { "-m" } },
        { { "-oem", "-oee", "-m", "a" }, { "-oem", "-oee", "-m" } },
    };
    for (const IgnoredCase& c : cases) {
        INFO(joined(c.args));
        Invocation inv = parse_ok("sendmail", c.args);
        CHECK(inv.mode == Mode::accept);
        CHECK(inv.ignored_options == c.ignored);
        CHECK(inv.recipients == std::vector<std::string> { "a" });
    }
}

TEST_CASE("cli: an ignored option's text is made safe for one log line")
{
    Invocation inv = parse_ok("sendmail", { "-N", "a\x1b[2Jb", "x" });
    CHECK(inv.ignored_options == std::vector<std::string> { "-N a?[2Jb" });
    std::string huge(500, 'z');
    Invocation cut = parse_ok("sendmail", { "-V", huge, "x" });
    REQUIRE(cut.ignored_options.size() == 1);
    CHECK(cut.ignored_options[0].size() == 64);
}

TEST_CASE("cli: options are recognised after recipients (masqmail §10 23)")
{
    Invocation inv = parse_ok("sendmail", { "alice", "-t", "bob", "-oi" });
    CHECK(inv.extract_recipients);
    CHECK_FALSE(inv.dot_terminates);
    CHECK(inv.recipients == std::vector<std::string> { "alice", "bob" });
}

TEST_CASE("cli: -- ends the options, later dashes are recipients")
{
    Invocation inv = parse_ok("sendmail", { "-oi", "--", "alice", "-t", "--", "-bob" });
    CHECK_FALSE(inv.extract_recipients);
    CHECK(inv.recipients == std::vector<std::string> { "alice", "-t", "--", "-bob" });
    CHECK(parse_ok("sendmail", { "--" }).mode == Mode::version);
    CHECK(parse_ok("sendmail", { "-t", "--" }).mode == Mode::accept);
}

TEST_CASE("cli: -f takes the null sender and keeps the text raw")
{
    CHECK(parse_ok("sendmail", { "-f", "<>", "a" }).sender == "<>");
    CHECK(parse_ok("sendmail", { "-f<>", "a" }).sender == "<>");
    CHECK(parse_ok("sendmail", { "-f", "", "a" }).sender == "<>");
    CHECK(parse_ok("sendmail", { "-f", "<bob@example.org>", "a" }).sender == "<bob@example.org>");
    CHECK(parse_ok("sendmail", { "-f", "bob", "-r", "carol", "a" }).sender == "carol");
    CHECK(parse_ok("sendmail", { "-F", "", "a" }).full_name == "");
}

TEST_CASE("cli: values and arguments are bounded")
{
    std::string long_value(mm::limits::address_text + 1, 'a');
    mm::Result<Invocation> f = parse("sendmail", { "-f", long_value });
    REQUIRE_FALSE(f);
    CHECK(f.error().message() == "-f: address too long (at most 1024 bytes)");
    mm::Result<Invocation> name = parse("sendmail", { "-F", long_value });
    REQUIRE_FALSE(name);
    CHECK(name.error().message() == "-F: name too long (at most 1024 bytes)");
    mm::Result<Invocation> word = parse("sendmail", { long_value });
    REQUIRE_FALSE(word);
    CHECK(word.error().exit_code() == mm::ex::usage);
    std::string exact(mm::limits::address_text, 'a');
    CHECK(parse_ok("sendmail", { exact }).recipients.size() == 1);

    std::vector<std::string_view> many(mm::limits::addresses_per_header, "a");
    CHECK(parse_ok("sendmail", many).recipients.size() == mm::limits::addresses_per_header);
    many.push_back("a");
    mm::Result<Invocation> too_many = parse("sendmail", many);
    REQUIRE_FALSE(too_many);
    CHECK(too_many.error().message() == "too many arguments (at most 10000)");
}

TEST_CASE("cli: queue intervals")
{
    struct IntervalCase {
        std::vector<std::string_view> args;
        std::chrono::seconds interval;
    };
    const std::vector<IntervalCase> cases {
        { { "-q30s" }, 30s },
        { { "-q30m" }, 30min },
        { { "-q1h" }, 1h },
        { { "-q2d" }, 48h },
        { { "-q1w" }, 168h },
        { { "-q", "30m" }, 30min }, // masqmail 1.0's separate form, for old init scripts
        { { "-bd", "-q", "15m" }, 15min },
        { { "-q1h", "-q5m" }, 5min },
    };
    for (const IntervalCase& c : cases) {
        INFO(joined(c.args));
        Invocation inv = parse_ok("masqmail", c.args);
        REQUIRE(inv.queue_interval);
        CHECK(*inv.queue_interval == c.interval);
    }
    CHECK_FALSE(parse_ok("masqmail", { "-bd" }).queue_interval);
    CHECK_FALSE(parse_ok("masqmail", { "-q" }).queue_interval);
    CHECK_FALSE(parse_ok("masqmail", { "-bD" }).queue_interval);
}

TEST_CASE("cli: route runs")
{
    CHECK(parse_ok("masqmail", { "-qo", "isp" }).route_name == "isp");
    CHECK(parse_ok("masqmail", { "-qoisp" }).route_name == "isp");
    CHECK(parse_ok("runq", { "-qo", "my-isp.2" }).route_name == "my-isp.2");
    CHECK(parse_ok("masqmail", { "-qo", "a", "-qo", "b" }).route_name == "b");
    CHECK(parse_ok("masqmail", { "-qo", "isp", "-C", "/x.conf" }).config_path == "/x.conf");
}

TEST_CASE("cli: -Mrm and mailrm take message ids")
{
    Invocation inv = parse_ok("masqmail", { "-Mrm", "id1", "id2" });
    CHECK(inv.message_ids == std::vector<std::string> { "id1", "id2" });
    CHECK(inv.recipients.empty());
    CHECK(parse_ok("mailrm", { "id1" }).message_ids == std::vector<std::string> { "id1" });
    CHECK(parse_ok("masqmail", { "id1", "-Mrm" }).message_ids == std::vector<std::string> { "id1" });
}

TEST_CASE("cli: rmail does not end the message at a dot")
{
    Invocation inv = parse_ok("rmail", { "alice" });
    CHECK(inv.mode == Mode::accept);
    CHECK_FALSE(inv.dot_terminates);
    CHECK(inv.recipients == std::vector<std::string> { "alice" });
}

TEST_CASE("cli: --explain keeps its address")
{
    CHECK(parse_ok("masqmail", { "--explain", "alice@example.org" }).explain_address == "alice@example.org");
    CHECK(parse_ok("masqmail", { "--explain=bob" }).explain_address == "bob");
    mm::Result<Invocation> extra = parse("masqmail", { "--explain", "a", "b" });
    REQUIRE_FALSE(extra);
    CHECK(extra.error().message() == "unexpected argument 'b' (--explain takes no addresses)");
}

TEST_CASE("cli: every mode has a name and --help has a text")
{
    CHECK(std::string(mm::cli::mode_name(Mode::accept)) == "accept");
    CHECK(std::string(mm::cli::mode_name(Mode::list_queue_json)) == "list_queue_json");
    CHECK(mm::cli::usage_text().find("-qo NAME") != std::string_view::npos);
}
