// SPDX-License-Identifier: GPL-2.0-or-later
// route-selector's decision (daemons/route-selector/selector.hh): the routes
// and next hops it offers each recipient, online detection once a pass, the
// filters on the sender, the recipients and the From: header it is passed.
#include "catch.hh"
#include "config_fixture.hh"
#include "selector.hh"

#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace mm::config;
using mm::test::TempDir;
namespace protocol = mm::protocol;

namespace {

void write(const std::string& path, const std::string& text)
{
    std::ofstream(path) << text;
}

MainConfig main_config(const std::string& text)
{
    Diagnostics diag;
    auto cfg = parse_main_config("host_name = laptop.example\n" + text, "masqmail.conf", diag);
    INFO(mm::test::diagnostic_lines(diag));
    REQUIRE(cfg);
    return *cfg;
}

// A route file `name` in `t` with `text`; its path is the route's name.
std::string route_file(const TempDir& t, const std::string& name, const std::string& text)
{
    write(t.file(name), text);
    return t.file(name);
}

RouteConfig route(const std::string& text)
{
    Diagnostics diag;
    auto r = parse_route_config(text, "r.route", diag);
    INFO(mm::test::diagnostic_lines(diag));
    REQUIRE(r);
    return *r;
}

// "permanent_routes = ..." and the like: paths joined by ';', quoted.
std::string route_list(const std::string& option, const std::vector<std::string>& paths)
{
    std::string joined;
    for (const std::string& p : paths)
        joined += (joined.empty() ? "" : ";") + p;
    return option + " = \"" + joined + "\"\n";
}

// An online_query script in `t`: each run appends a line to t/runs and
// prints t/name, which says the connection (nothing: offline).
std::string online_query(const TempDir& t, const std::string& name)
{
    write(t.file("name"), name);
    write(t.file("online"), "#!/bin/sh\necho run >>" + t.file("runs") + "\ncat " + t.file("name") + "\n");
    REQUIRE(::chmod(t.file("online").c_str(), 0755) == 0);
    return "online_query = \"" + t.file("online") + "\"\n";
}

// How often the script of online_query() ran.
std::size_t runs(const TempDir& t)
{
    std::ifstream in(t.file("runs"));
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);)
        ++n;
    return n;
}

protocol::RouteQuery query(std::uint64_t pass, std::vector<std::string> recipients,
    std::string sender = "joe@laptop.example", std::optional<std::string> connection = std::nullopt)
{
    protocol::RouteQuery q;
    q.pass = pass;
    q.connection = std::move(connection);
    q.queue_id = "1700000000.0123456789abcdef";
    q.sender = std::move(sender);
    q.recipients = std::move(recipients);
    return q;
}

std::string base_name(const std::string& path)
{
    return path.substr(path.rfind('/') + 1);
}

// Per recipient "a.route>hop b.route>hop", or "-- reason" when no route takes it.
std::vector<std::string> describe(const protocol::RouteAnswer& a)
{
    std::vector<std::string> out;
    for (const protocol::RouteChoice& c : a.recipients) {
        std::string s;
        for (const protocol::RouteCandidate& k : c.candidates)
            s += (s.empty() ? "" : " ") + base_name(k.route) + ">" + k.next_hop;
        if (c.candidates.empty())
            s = "-- " + c.reason;
        else if (!c.reason.empty())
            s += " (with a reason: " + c.reason + ")";
        out.push_back(s);
    }
    return out;
}

using Lines = std::vector<std::string>;

const std::string plain_header = "From: Joe <joe@laptop.example>\nSubject: hi\n";

// The first From: address of `header` as text, "(none)" or "(unparsable)".
std::string from_of(const std::string& header)
{
    bool unparsable = true; // must be reset by the call
    std::optional<mm::Address> a = mm::route::first_from_address(header, "laptop.example", unparsable);
    if (unparsable) {
        CHECK_FALSE(a);
        return "(unparsable)";
    }
    return a ? a->str() : "(none)";
}

mm::Address address(const std::string& text)
{
    auto a = mm::parse_address(text, {});
    REQUIRE(a);
    return *a;
}

} // namespace

TEST_CASE("answer: permanent routes first, then query_routes of the online connection")
{
    TempDir t;
    std::string lan = route_file(t, "lan.route", "allowed_recipients = \"*@lan.example\"\n");
    std::string relay = route_file(t, "relay.route", "mail_host = \"relay.example.org:2525\"\n");
    std::string isp1 = route_file(t, "isp1.route", "mail_host = \"smtp.isp1.example:587\"\n");
    std::string isp1_direct = route_file(t, "isp1-direct.route", "");
    std::string isp2 = route_file(t, "isp2.route", "mail_host = \"smtp.isp2.example\"\n");
    MainConfig cfg = main_config(route_list("permanent_routes", { lan, relay })
        + route_list("query_routes.isp1", { isp1, isp1_direct }) + route_list("query_routes.isp2", { isp2 })
        + online_query(t, "isp1\n"));
    mm::route::Selector selector(cfg);

    protocol::RouteAnswer a = selector.answer(query(1, { "a@lan.example", "b@Example.NET" }), plain_header);
    CHECK(a.connection == std::optional<std::string>("isp1"));
    CHECK(describe(a)
        == Lines {
            "lan.route>lan.example relay.route>relay.example.org:2525 isp1.route>smtp.isp1.example:587 "
            "isp1-direct.route>lan.example",
            "relay.route>relay.example.org:2525 isp1.route>smtp.isp1.example:587 "
            "isp1-direct.route>example.net",
        });
    CHECK(a.recipients[0].candidates[0].route == lan); // the route file's path, as qmgr passes it on
    CHECK(runs(t) == 1);

    // No recipients: an answer with none, the connection still named.
    a = selector.answer(query(1, {}), plain_header);
    CHECK(a.recipients.empty());
    CHECK(a.connection == std::optional<std::string>("isp1"));
}

TEST_CASE("answer: a -qo connection replaces online_query")
{
    TempDir t;
    std::string relay = route_file(t, "relay.route", "mail_host = \"relay.example.org:2525\"\n");
    std::string isp1 = route_file(t, "isp1.route", "mail_host = \"smtp.isp1.example:587\"\n");
    std::string isp2 = route_file(t, "isp2.route", "mail_host = \"smtp.isp2.example\"\n");
    std::string routes
        = route_list("query_routes.isp1", { isp1 }) + route_list("query_routes.isp2", { isp2 });
    MainConfig cfg
        = main_config(route_list("permanent_routes", { relay }) + routes + online_query(t, "isp1\n"));
    mm::route::Selector selector(cfg);

    protocol::RouteAnswer a
        = selector.answer(query(1, { "b@example.net" }, "joe@laptop.example", "isp2"), "");
    CHECK(a.connection == std::optional<std::string>("isp2"));
    CHECK(describe(a) == Lines { "relay.route>relay.example.org:2525 isp2.route>smtp.isp2.example:25" });
    CHECK(runs(t) == 0);

    // A name without query_routes: the permanent routes only...
    a = selector.answer(query(2, { "b@example.net" }, "joe@laptop.example", "nosuch"), "");
    CHECK(a.connection == std::optional<std::string>("nosuch"));
    CHECK(describe(a) == Lines { "relay.route>relay.example.org:2525" });
    CHECK(runs(t) == 0);

    // ... and with none of those, the reason says so.
    MainConfig bare = main_config(routes + online_query(t, "isp1\n"));
    mm::route::Selector bare_selector(bare);
    a = bare_selector.answer(query(1, { "b@example.net" }, "joe@laptop.example", "nosuch"), "");
    CHECK(describe(a) == Lines { "-- connection nosuch has no usable route" });
    a = bare_selector.answer(query(2, { "b@example.net" }, "joe@laptop.example", "isp1"), "");
    CHECK(describe(a) == Lines { "isp1.route>smtp.isp1.example:587" });
    CHECK(runs(t) == 0);
}

TEST_CASE("answer: online_query runs once a pass, and the route files are read once a pass")
{
    TempDir t;
    std::string isp1 = route_file(t, "isp1.route", "mail_host = \"smtp.isp1.example:587\"\n");
    std::string isp2 = route_file(t, "isp2.route", "mail_host = \"smtp.isp2.example\"\n");
    MainConfig cfg = main_config(route_list("query_routes.isp1", { isp1 })
        + route_list("query_routes.isp2", { isp2 }) + online_query(t, "isp1\n"));
    mm::route::Selector selector(cfg);
    CHECK(runs(t) == 0); // not before the first query

    protocol::RouteAnswer a = selector.answer(query(7, { "a@example.net" }), plain_header);
    CHECK(a.connection == std::optional<std::string>("isp1"));
    CHECK(runs(t) == 1);

    // The link changes within the pass: every message of the pass still sees
    // the connection its first message saw, and so do the route files.
    write(t.file("name"), "isp2\n");
    write(isp1, "mail_host = \"changed.isp1.example\"\n");
    a = selector.answer(query(7, { "b@example.net" }, ""), "");
    CHECK(a.connection == std::optional<std::string>("isp1"));
    CHECK(describe(a) == Lines { "isp1.route>smtp.isp1.example:587" });
    CHECK(runs(t) == 1);

    // A -qo query within the pass needs no online_query either.
    a = selector.answer(query(7, { "b@example.net" }, "joe@laptop.example", "isp1"), "");
    CHECK(describe(a) == Lines { "isp1.route>changed.isp1.example:25" });
    CHECK(runs(t) == 1);

    a = selector.answer(query(8, { "c@example.net" }), plain_header);
    CHECK(a.connection == std::optional<std::string>("isp2"));
    CHECK(describe(a) == Lines { "isp2.route>smtp.isp2.example:25" });
    CHECK(runs(t) == 2);
    selector.answer(query(8, { "d@example.net" }), plain_header);
    CHECK(runs(t) == 2);

    // Offline is decided once a pass too.
    write(t.file("name"), "");
    a = selector.answer(query(9, { "e@example.net" }), plain_header);
    CHECK_FALSE(a.connection);
    selector.answer(query(9, { "e@example.net" }), plain_header);
    CHECK(runs(t) == 3);
    write(t.file("name"), "isp1\n");
    a = selector.answer(query(10, { "e@example.net" }), plain_header);
    CHECK(a.connection == std::optional<std::string>("isp1"));
    CHECK(runs(t) == 4);
}

TEST_CASE("answer: offline, a recipient gets no candidate and a reason that says why")
{
    TempDir t;
    std::string lan = route_file(t, "lan.route", "allowed_recipients = \"*@lan.example\"\n");
    std::string isp1 = route_file(t, "isp1.route", "mail_host = \"smtp.isp1.example:587\"\n");
    std::string isp1_routes = route_list("query_routes.isp1", { isp1 });

    SECTION("no online_query")
    {
        MainConfig cfg = main_config(isp1_routes);
        mm::route::Selector selector(cfg);
        protocol::RouteAnswer a = selector.answer(query(1, { "a@example.net" }), plain_header);
        CHECK_FALSE(a.connection);
        CHECK(describe(a) == Lines { "-- no route is online (no online_query is set)" });
    }
    SECTION("online_query fails")
    {
        MainConfig cfg = main_config(isp1_routes + "online_query = \"/bin/sh -c 'exit 3'\"\n");
        mm::route::Selector selector(cfg);
        protocol::RouteAnswer a = selector.answer(query(1, { "a@example.net" }), plain_header);
        CHECK_FALSE(a.connection);
        REQUIRE(a.recipients.size() == 1);
        CHECK(a.recipients[0].candidates.empty());
        CHECK_THAT(a.recipients[0].reason, Catch::StartsWith("no route is online (/bin/sh failed (exit 3)"));
        CHECK_THAT(a.recipients[0].reason, Catch::Contains("offline"));
    }
    SECTION("online_query prints nothing")
    {
        MainConfig cfg = main_config(isp1_routes + online_query(t, ""));
        mm::route::Selector selector(cfg);
        protocol::RouteAnswer a = selector.answer(query(1, { "a@example.net" }), plain_header);
        CHECK_FALSE(a.connection);
        REQUIRE(a.recipients.size() == 1);
        CHECK(a.recipients[0].candidates.empty());
        CHECK_THAT(a.recipients[0].reason, Catch::Contains("printed nothing"));
    }
    SECTION("offline with permanent routes: they still take what they allow")
    {
        MainConfig cfg = main_config(route_list("permanent_routes", { lan }) + isp1_routes);
        mm::route::Selector selector(cfg);
        protocol::RouteAnswer a
            = selector.answer(query(1, { "a@lan.example", "b@example.net" }), plain_header);
        CHECK_FALSE(a.connection);
        CHECK(describe(a)
            == Lines {
                "lan.route>lan.example", "-- no online route takes it (offline; see masqmail --explain)" });
    }
    SECTION("online, but no route of the connection takes it")
    {
        std::string picky = route_file(t, "picky.route", "allowed_recipients = \"*@isp1.example\"\n");
        MainConfig cfg = main_config(route_list("query_routes.isp1", { picky }) + online_query(t, "isp1\n"));
        mm::route::Selector selector(cfg);
        protocol::RouteAnswer a
            = selector.answer(query(1, { "a@isp1.example", "b@example.net" }), plain_header);
        CHECK(describe(a)
            == Lines { "picky.route>isp1.example",
                "-- no online route takes it (online: isp1; see masqmail --explain)" });
    }
    SECTION("online with a name that has no query_routes")
    {
        MainConfig cfg = main_config(isp1_routes + online_query(t, "isp9\n"));
        mm::route::Selector selector(cfg);
        protocol::RouteAnswer a = selector.answer(query(1, { "a@example.net" }), plain_header);
        CHECK(a.connection == std::optional<std::string>("isp9"));
        CHECK(describe(a) == Lines { "-- connection isp9 has no usable route" });
    }
    SECTION("a route file that cannot be read is left out")
    {
        std::string bad = route_file(t, "bad.route", "tls = sometimes\n");
        MainConfig cfg
            = main_config(route_list("query_routes.isp1", { bad, isp1 }) + online_query(t, "isp1\n"));
        mm::route::Selector selector(cfg);
        protocol::RouteAnswer a = selector.answer(query(1, { "a@example.net" }), plain_header);
        CHECK(describe(a) == Lines { "isp1.route>smtp.isp1.example:587" });
    }
}

TEST_CASE("answer: a recipient that does not parse gets a reason; the others keep their routes")
{
    TempDir t;
    std::string isp1 = route_file(t, "isp1.route", "");
    MainConfig cfg = main_config(route_list("permanent_routes", { isp1 }));
    mm::route::Selector selector(cfg);
    protocol::RouteAnswer a
        = selector.answer(query(1, { "a@example.net", "not an address", "", "b@example.org" }), plain_header);
    CHECK(describe(a)
        == Lines { "isp1.route>example.net", "-- the address cannot be parsed",
            "-- the address cannot be parsed", "isp1.route>example.org" });
}

TEST_CASE("answer: allowed and denied recipients decide per recipient; last_route keeps what it took")
{
    TempDir t;
    std::string lan = route_file(t, "lan.route", "allowed_recipients = \"*@lan.example;*@*.lan.example\"\n");
    std::string open = route_file(t, "open.route", "denied_recipients = \"secret@*;*@closed.example\"\n");
    std::string last
        = route_file(t, "last.route", "allowed_recipients = \"*@b.example\"\nlast_route = true\n");
    std::string after = route_file(t, "after.route", "mail_host = \"fallback.example\"\n");
    MainConfig cfg = main_config(route_list("permanent_routes", { lan, open, last, after }));
    mm::route::Selector selector(cfg);

    protocol::RouteAnswer a = selector.answer(query(1,
                                                  { "x@lan.example", "y@sub.lan.example", "secret@b.example",
                                                      "z@closed.example", "w@b.example", "v@c.example" }),
        plain_header);
    CHECK(describe(a)
        == Lines {
            "lan.route>lan.example open.route>lan.example after.route>fallback.example:25",
            "lan.route>sub.lan.example open.route>sub.lan.example after.route>fallback.example:25",
            "last.route>b.example", // denied by open, kept from after by last
            "after.route>fallback.example:25",
            "open.route>b.example last.route>b.example",
            "open.route>c.example after.route>fallback.example:25",
        });

    // A last_route route first: what it takes reaches no later route.
    std::string first
        = route_file(t, "first.route", "allowed_recipients = \"*@lan.example\"\nlast_route = true\n");
    MainConfig cfg2 = main_config(route_list("permanent_routes", { first, open }));
    mm::route::Selector selector2(cfg2);
    a = selector2.answer(query(1, { "x@lan.example", "y@b.example" }), plain_header);
    CHECK(describe(a) == Lines { "first.route>lan.example", "open.route>b.example" });
}

TEST_CASE("answer: the From: filters read the header text passed, not the envelope")
{
    TempDir t;
    std::string mine = route_file(t, "mine.route", "allowed_from_hdrs = \"*@laptop.example\"\n");
    std::string no_spam = route_file(t, "nospam.route", "denied_from_hdrs = \"spam@*\"\n");
    std::string plain = route_file(t, "plain.route", "mail_host = \"relay.example.org\"\n");
    MainConfig cfg = main_config(route_list("permanent_routes", { mine, no_spam, plain }));
    mm::route::Selector selector(cfg);
    auto routes_for = [&](const std::string& header) {
        protocol::RouteAnswer a
            = selector.answer(query(1, { "b@example.net" }, "joe@laptop.example"), header);
        REQUIRE(a.recipients.size() == 1);
        std::string s;
        for (const protocol::RouteCandidate& k : a.recipients[0].candidates)
            s += (s.empty() ? "" : " ") + base_name(k.route);
        return s;
    };

    CHECK(routes_for(plain_header) == "mine.route nospam.route plain.route");
    CHECK(routes_for("From: spam@laptop.example\n") == "mine.route plain.route");
    CHECK(routes_for("From: Joe <joe@elsewhere.example>\n") == "nospam.route plain.route");
    CHECK(routes_for("from: JOE@LAPTOP.EXAMPLE\n") == "mine.route nospam.route plain.route");
    // The first address of the first From: decides.
    CHECK(routes_for("From: joe@elsewhere.example, joe@laptop.example\n") == "nospam.route plain.route");
    CHECK(routes_for("From: joe@laptop.example\nFrom: spam@x.example\n")
        == "mine.route nospam.route plain.route");
    // No From: at all: the filters do not apply (masqmail §3.1 step 5).
    CHECK(routes_for("Subject: no from\n") == "mine.route nospam.route plain.route");
    CHECK(routes_for("") == "mine.route nospam.route plain.route");
    CHECK(routes_for("Subject: x\n\nFrom: spam@x.example\n") == "mine.route nospam.route plain.route");
    // A From: that does not parse skips every route that filters on it.
    CHECK(routes_for("From: <<<joe\n") == "plain.route");
    CHECK(routes_for("From:\n") == "plain.route");
    CHECK(routes_for("From: undisclosed:;\n") == "plain.route");
    CHECK(routes_for(std::string("Subject: a") + '\0' + "b\nFrom: joe@laptop.example\n") == "plain.route");
}

TEST_CASE("answer: the null sender matches <> in the sender filters")
{
    TempDir t;
    std::string bounces = route_file(t, "bounces.route", "allowed_senders = \"<>;postmaster@*\"\n");
    std::string no_bounces = route_file(t, "nobounces.route", "denied_senders = \"<>\"\n");
    std::string users = route_file(t, "users.route", "allowed_senders = \"*@laptop.example\"\n");
    MainConfig cfg = main_config(route_list("permanent_routes", { bounces, no_bounces, users }));
    mm::route::Selector selector(cfg);

    protocol::RouteAnswer a = selector.answer(query(1, { "b@example.net" }, ""), plain_header);
    CHECK(describe(a) == Lines { "bounces.route>example.net" });
    a = selector.answer(query(1, { "b@example.net" }, "joe@laptop.example"), plain_header);
    CHECK(describe(a) == Lines { "nobounces.route>example.net users.route>example.net" });
    a = selector.answer(query(1, { "b@example.net" }, "postmaster@elsewhere.example"), plain_header);
    CHECK(describe(a) == Lines { "bounces.route>example.net nobounces.route>example.net" });
    a = selector.answer(query(1, { "b@example.net" }, "\"john doe\"@laptop.example"), plain_header);
    CHECK(describe(a) == Lines { "nobounces.route>example.net users.route>example.net" });
}

TEST_CASE("next_hop: mail_host as host:port, the domain in lower case, pipe, wrapper")
{
    mm::Address rcpt = address("Bob@Mail.Example.NET");
    CHECK(mm::route::next_hop(route("mail_host = \"smtp.isp1.example:587\"\n"), rcpt)
        == "smtp.isp1.example:587");
    CHECK(mm::route::next_hop(route("mail_host = \"smtp.isp1.example\"\n"), rcpt) == "smtp.isp1.example:25");
    CHECK(mm::route::next_hop(route("mail_host = \"192.0.2.25:2525\"\n"), rcpt) == "192.0.2.25:2525");
    CHECK(mm::route::next_hop(route(""), rcpt) == "mail.example.net");
    CHECK(mm::route::next_hop(route("smtp_port = 2525\n"), rcpt) == "mail.example.net");
    CHECK(mm::route::next_hop(route(""), address("x@[192.0.2.1]")) == "[192.0.2.1]");
    CHECK(mm::route::next_hop(route("pipe = \"/usr/bin/uucp-send $rcpt\"\n"), rcpt) == "pipe");
    CHECK(mm::route::next_hop(
              route("wrapper = \"/usr/bin/openssl s_client -quiet -connect smtp.example:465\"\n"), rcpt)
        == "wrapper");
    // pipe wins over mail_host and wrapper, as the transport does; a wrapper over mail_host.
    CHECK(mm::route::next_hop(route("pipe = \"/bin/cat\"\nmail_host = \"smtp.example\"\n"), rcpt) == "pipe");
    CHECK(mm::route::next_hop(route("wrapper = \"/bin/cat\"\nmail_host = \"smtp.example\"\n"), rcpt)
        == "wrapper");
}

TEST_CASE("next_hop: an IPv6 mail_host keeps its brackets, as HostPort::str() writes it")
{
    // Known bug: next_hop() joins host and port itself, so "[2001:db8::1]:587"
    // comes out as "2001:db8::1:587", which cannot be split again. Remove the
    // tag when next_hop uses mail_host->str().
    mm::Address rcpt = address("bob@example.net");
    CHECK(mm::route::next_hop(route("mail_host = \"[2001:db8::1]:587\"\n"), rcpt) == "[2001:db8::1]:587");
}

TEST_CASE("first_from_address: the first address of the first From:, or why there is none")
{
    CHECK(from_of("From: alice@example.org\n") == "alice@example.org");
    CHECK(from_of("From: root\n") == "root@laptop.example"); // qualified with host_name
    CHECK(from_of("From: Alice Example <alice@example.org>\nSubject: x\n") == "alice@example.org");
    CHECK(from_of("From: \"Example, Alice\" <alice@example.org> (work)\n") == "alice@example.org");
    CHECK(from_of("FROM: alice@example.org") == "alice@example.org"); // no final LF
    CHECK(from_of("From : alice@example.org\n") == "alice@example.org"); // obsolete space before ':'
    CHECK(from_of("From:\n Alice\n <alice@example.org>\n") == "alice@example.org"); // folded
    CHECK(from_of("From: a@example.org, b@example.org\n") == "a@example.org");
    CHECK(from_of("From: team: a@example.org, b@example.org;\n") == "a@example.org");
    CHECK(from_of("Subject: x\nFrom: a@example.org\nFrom: b@example.org\n") == "a@example.org");
    CHECK(from_of("From: \"john doe\"@example.org\n") == "\"john doe\"@example.org");
    // An mbox "From " line is no From: header.
    CHECK(from_of("From alice@example.org Mon Jan  1 00:00:00 2024\nSubject: x\n") == "(none)");
    CHECK(
        from_of("From alice@example.org Mon Jan  1 00:00:00 2024\nFrom: b@example.org\n") == "b@example.org");

    CHECK(from_of("") == "(none)");
    CHECK(from_of("Subject: x\nSender: s@example.org\nResent-From: r@example.org\n") == "(none)");
    CHECK(from_of("Subject: x\n\nFrom: body@example.org\n") == "(none)"); // in the body
    CHECK(from_of("Subject: x\nnot a header line\nFrom: b@example.org\n") == "(none)"); // body begins

    CHECK(from_of("From:\n") == "(unparsable)");
    CHECK(from_of("From:   \n") == "(unparsable)");
    CHECK(from_of("From: undisclosed-senders:;\n") == "(unparsable)");
    CHECK(from_of("From: <<<\n") == "(unparsable)");
    CHECK(from_of("From: alice@\n") == "(unparsable)");
    CHECK(from_of("From: <>\n") == "(unparsable)");
    CHECK(from_of("From: a@example.org\r\n") == "(unparsable)"); // the stored form has no CR
    CHECK(from_of(std::string("X: ") + '\0' + "\nFrom: a@example.org\n") == "(unparsable)");
    CHECK(from_of("X-Long: " + std::string(mm::limits::header_section, 'x') + "\nFrom: a@example.org\n")
        == "(unparsable)");
    CHECK(from_of("From: j\xc3\xb6rg@example.org\n") == "(unparsable)"); // 8-bit addr-spec
}

TEST_CASE("answer: an unqualified From: is qualified with host_name, as masqmail does")
{
    // Known bug: masqmail qualifies the From: address with host_name before
    // the allowed/denied_from_hdrs check (create_address_qualified); the
    // selector parses it without a qualify domain, so "From: root" counts as
    // unparsable and skips every route that filters on From:. Remove the tag
    // when it is qualified.
    TempDir t;
    std::string mine = route_file(t, "mine.route", "allowed_from_hdrs = \"*@laptop.example\"\n");
    MainConfig cfg = main_config(route_list("permanent_routes", { mine }));
    mm::route::Selector selector(cfg);
    protocol::RouteAnswer a = selector.answer(query(1, { "b@example.net" }), "From: root\n");
    CHECK(describe(a) == Lines { "mine.route>example.net" });
}
