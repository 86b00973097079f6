// SPDX-License-Identifier: GPL-2.0-or-later
// A route's address rewriting (masqmail §3.4, tests t500-t503, bug 37 fixed):
// exact bytes of every rewritten copy, the return path, refused rules, limits
// and the --explain listing.
#include "catch.hh"
#include "mm/config_lexer.hh"
#include "mm/limits.hh"
#include "mm/route.hh"
#include "mm/route_rewrite.hh"

#include <string>
#include <vector>

using mm::AddressRewrite;
using mm::config::MainConfig;
using mm::config::RewriteRule;
using mm::config::RouteConfig;

namespace {

MainConfig main_config(std::vector<std::string> local_hosts = { "localhost", "host.local" })
{
    MainConfig cfg;
    cfg.host_name = "host.local";
    cfg.local_hosts = std::move(local_hosts);
    return cfg;
}

RouteConfig route(const std::string& text)
{
    mm::config::Diagnostics diag;
    auto r = mm::config::parse_route_config(text, "test.route", diag);
    REQUIRE(r);
    return *r;
}

mm::Address path(const std::string& text)
{
    auto a = mm::parse_path(text, { .qualify_domain = {}, .allow_null = true });
    REQUIRE(a);
    return *a;
}

mm::RoutedCopy copy(const RouteConfig& r, const MainConfig& cfg, const std::string& stored,
    const std::string& return_path = "<>")
{
    auto c = mm::rewrite_for_route(r, cfg, stored, path(return_path));
    REQUIRE(c);
    return *c;
}

std::string rewritten(const RouteConfig& r, const MainConfig& cfg, const std::string& stored)
{
    return copy(r, cfg, stored).message;
}

const char* const t500_route = R"(
map_h_from_addresses = "foo: Dark Foo <fooish@example.com>"
map_h_reply_to_addresses = "bar: Bar Man <drink@example-fail.com>"
map_h_mail_followup_to_addresses = "baz: \"The Real Me\" <me@example.com>; bar: Bar Exam <admin@blackhole.com>"
map_return_path_addresses = "sendy: dummy@example.com"
)";

const std::string t500_message = "From: foo\n"
                                 "Reply-To: bar\n"
                                 "Mail-Followup-To: some@one, bar@host.local\n"
                                 "Mail-Followup-To: some@one, other@two.me, bar@host.local\n"
                                 "Mail-Followup-To: baz , list@example.com\t,\n"
                                 "\tsome@one\n"
                                 "Mail-Followup-To: some@one\n"
                                 "Mail-Followup-To: some@one,other@two.me\n"
                                 "Subject: t500\n"
                                 "\n"
                                 "From: foo\n";

} // namespace

TEST_CASE("t500: per-header maps, lists, the last element, folding, the return path")
{
    mm::RoutedCopy c = copy(route(t500_route), main_config(), t500_message, "<sendy@host.local>");
    CHECK(c.message
        == "From: Dark Foo <fooish@example.com>\n"
           "Reply-To: Bar Man <drink@example-fail.com>\n"
           "Mail-Followup-To: some@one, Bar Exam <admin@blackhole.com>\n"
           "Mail-Followup-To: some@one, other@two.me, Bar Exam <admin@blackhole.com>\n"
           "Mail-Followup-To: \"The Real Me\" <me@example.com>, list@example.com\t,\n"
           "\tsome@one\n"
           "Mail-Followup-To: some@one\n"
           "Mail-Followup-To: some@one,other@two.me\n"
           "Subject: t500\n"
           "\n"
           "From: foo\n");
    CHECK(c.return_path.path() == "<dummy@example.com>");
}

TEST_CASE("t501: *@domain replaces or appends the domain, display names kept")
{
    MainConfig cfg = main_config({ "blackhole.com", "dogs.net" });
    RouteConfig r = route("map_h_mail_followup_to_addresses = \"*: *@example.com\"\n");
    CHECK(rewritten(r, cfg, "Mail-Followup-To: foo, bar@blackhole.com, Bite Me <baz@dogs.net>\n\nbody\n")
        == "Mail-Followup-To: foo@example.com, bar@example.com, Bite Me <baz@example.com>\n\nbody\n");
}

TEST_CASE("t502: map_outgoing_addresses serves every field and the return path")
{
    RouteConfig r = route("map_outgoing_addresses = \"sendu: Ty Coon <dummy@example.com>\"\n");
    mm::RoutedCopy c = copy(r, main_config(),
        "From: sendu\nSender: sendu\nReply-To: sendu@host.local\nMail-Followup-To: sendu\n\n",
        "<sendu@host.local>");
    CHECK(c.message
        == "From: Ty Coon <dummy@example.com>\n"
           "Sender: Ty Coon <dummy@example.com>\n"
           "Reply-To: Ty Coon <dummy@example.com>\n"
           "Mail-Followup-To: Ty Coon <dummy@example.com>\n\n");
    CHECK(c.return_path.path() == "<dummy@example.com>");
}

TEST_CASE("t503: non-local addresses are never rewritten, local_addresses notwithstanding")
{
    MainConfig cfg = main_config();
    cfg.local_addresses.push_back(path("<sendu@remote.example>"));
    RouteConfig r
        = route("map_outgoing_addresses = \"sendu: Ty Coon <dummy@example.com>; *: *@example.com\"\n");
    const std::string message = "From: sendu@remote.example\n"
                                "Sender: Sendu <sendu@remote.example>\n"
                                "Reply-To: sendu@[0.0.0.0], x@[192.0.2.1]\n\n";
    mm::RoutedCopy c = copy(r, cfg, message, "<sendu@remote.example>");
    CHECK(c.message == message);
    CHECK(c.return_path.path() == "<sendu@remote.example>");
    CHECK(c.rewrites.empty());
}

TEST_CASE("local means unqualified or a domain in local_hosts (glob, any case)")
{
    MainConfig cfg = main_config({ "*.local" });
    RouteConfig r = route("map_h_from_addresses = \"*: *@example.org\"\n");
    CHECK(rewritten(r, cfg, "From: a, b@x.local, c@X.LOCAL, d@local, e@x.local.example\n")
        == "From: a@example.org, b@example.org, c@example.org, d@local, e@x.local.example\n");
    cfg.local_hosts = { "\\[192.0.2.1\\]" }; // a glob: brackets escaped
    CHECK(
        rewritten(r, cfg, "From: a@[192.0.2.1], b@[192.0.2.2]\n") == "From: a@example.org, b@[192.0.2.2]\n");
}

TEST_CASE("display names and comments win; only the addr-spec inside is replaced")
{
    RouteConfig r = route("map_h_from_addresses = \"foo: Dark Foo <fooish@example.com>\"\n");
    MainConfig cfg = main_config();
    struct Case {
        std::string in;
        std::string out;
    };
    const Case cases[] = {
        { "From: Old Name <foo@host.local>\n", "From: Old Name <fooish@example.com>\n" },
        { "From: \"Q. Old\" <foo>\n", "From: \"Q. Old\" <fooish@example.com>\n" },
        { "From: foo (Old Name)\n", "From: fooish@example.com (Old Name)\n" },
        { "From: (Old Name) foo@host.local\n", "From: (Old Name) fooish@example.com\n" },
        { "From: < foo@host.local > (c)\n", "From: < fooish@example.com > (c)\n" },
        { "From: Old <@relay.example:foo@host.local>\n", "From: Old <fooish@example.com>\n" },
        { "From: \"foo\"@host.local\n", "From: Dark Foo <fooish@example.com>\n" },
        { "From: foo\n", "From: Dark Foo <fooish@example.com>\n" },
        { "From: foo  \n", "From: Dark Foo <fooish@example.com>\n" },
        { "From:foo\n", "From:Dark Foo <fooish@example.com>\n" },
        { "From: J\xc3\xb6rg <foo>\n", "From: J\xc3\xb6rg <fooish@example.com>\n" },
    };
    for (const Case& c : cases) {
        INFO(c.in);
        CHECK(rewritten(r, cfg, c.in) == c.out);
    }
}

TEST_CASE("*@domain keeps the local part as written, comments and display names")
{
    RouteConfig r = route("map_h_from_addresses = \"*: *@example.org\"\n");
    MainConfig cfg = main_config();
    CHECK(rewritten(r, cfg, "From: \"j d\"@host.local\n") == "From: \"j d\"@example.org\n");
    CHECK(rewritten(r, cfg, "From: Joe <joe@Host.Local>\n") == "From: Joe <joe@example.org>\n");
    CHECK(rewritten(r, cfg, "From: joe (Joe)\n") == "From: joe@example.org (Joe)\n");
    CHECK(rewritten(r, cfg, "From: <joe>\n") == "From: <joe@example.org>\n");
    CHECK(rewritten(r, cfg, "From: joe(c)@host.local\n") == "From: joe(c)@example.org\n");
}

TEST_CASE("every address of a list, every occurrence, folding and spacing kept")
{
    RouteConfig r = route("map_h_from_addresses = \"foo: Dark Foo <fooish@example.com>\"\n"
                          "map_h_sender_addresses = \"*: *@example.org\"\n");
    MainConfig cfg = main_config();
    CHECK(rewritten(r, cfg, "From: a@remote.example, foo, Old <foo@host.local>,\n\tfoo@elsewhere.example\n")
        == "From: a@remote.example, Dark Foo <fooish@example.com>, Old <fooish@example.com>,\n"
           "\tfoo@elsewhere.example\n");
    CHECK(rewritten(r, cfg, "From: a@remote.example,\n foo@host.local\n  ,b@remote.example\n")
        == "From: a@remote.example,\n Dark Foo <fooish@example.com>\n  ,b@remote.example\n");
    CHECK(rewritten(r, cfg, "From: foo\nSubject: x\nFROM: foo\nFrom : foo\nSender: x,,\ty\n")
        == "From: Dark Foo <fooish@example.com>\n"
           "Subject: x\n"
           "FROM: Dark Foo <fooish@example.com>\n"
           "From : Dark Foo <fooish@example.com>\n"
           "Sender: x@example.org,,\ty@example.org\n");
}

TEST_CASE("group syntax and fields that do not parse are left unchanged")
{
    RouteConfig r = route("map_outgoing_addresses = \"*: Everyone <x@example.com>\"\n");
    MainConfig cfg = main_config();
    const std::string kept = "Mail-Followup-To: team: foo, bar@host.local;\n"
                             "From: Friends: foo;\n"
                             "Reply-To: <foo\n"
                             "From: foo@@host.local\n"
                             "Sender: \"unterminated <foo>\n";
    CHECK(rewritten(r, cfg, kept + "Sender: foo\n\n") == kept + "Sender: Everyone <x@example.com>\n\n");
    // ':' inside a quoted string, a comment, a literal or a source route is no group.
    CHECK(rewritten(r, cfg, "From: \"a:b\" <foo>, c (x:y;) <foo>, <@r.example:foo@host.local>\n")
        == "From: \"a:b\" <x@example.com>, c (x:y;) <x@example.com>, <x@example.com>\n");
}

TEST_CASE("To, Cc, Received, Message-ID and look-alike names are never touched")
{
    RouteConfig r = route("map_outgoing_addresses = \"*: Everyone <x@example.com>\"\n");
    const std::string message = "Received: from foo by host.local\n"
                                "To: foo\n"
                                "Cc: foo@host.local\n"
                                "Bcc: foo\n"
                                "Message-ID: <foo@host.local>\n"
                                "Resent-From: foo\n"
                                "Fro: foo\n"
                                "X-From: foo\n"
                                "Return-Path: <foo@host.local>\n"
                                "\n"
                                "From: foo\n";
    CHECK(rewritten(r, main_config(), message) == message);
}

TEST_CASE("the null sender is never rewritten (masqmail bug 37)")
{
    RouteConfig r = route("map_return_path_addresses = \"*: bounce@example.com\"\n"
                          "map_outgoing_addresses = \"*: *@example.com\"\n");
    mm::RoutedCopy c = copy(r, main_config(), "Sender: <>\nFrom: <>, foo\n\n", "<>");
    CHECK(c.return_path.is_null());
    CHECK(c.message == "Sender: <>\nFrom: <>, foo@example.com\n\n");
    REQUIRE(c.rewrites.size() == 1);
    CHECK(c.rewrites[0].field == "From");
}

TEST_CASE("the return path: only local ones, *@domain keeps the local part")
{
    RouteConfig r = route("map_return_path_addresses = \"joe: Joe <joe@example.net>; *: *@example.org\"\n");
    MainConfig cfg = main_config();
    auto rp = [&](const std::string& in) {
        auto out = mm::rewrite_return_path(r, cfg, path(in));
        REQUIRE(out);
        return out->path();
    };
    CHECK(rp("<joe@host.local>") == "<joe@example.net>"); // display name ignored
    CHECK(rp("<ann@HOST.local>") == "<ann@example.org>");
    CHECK(rp("<\"a b\"@localhost>") == "<\"a b\"@example.org>");
    CHECK(rp("<ann@remote.example>") == "<ann@remote.example>");
    CHECK(rp("<>") == "<>");
}

TEST_CASE("map precedence: the field's own map, then map_outgoing_addresses; first key wins")
{
    RouteConfig r = route("map_h_from_addresses = \"f*: first@example.com; foo: second@example.com\"\n"
                          "map_outgoing_addresses = \"foo: out@example.com; *: *@out.example\"\n");
    MainConfig cfg = main_config();
    mm::RoutedCopy c = copy(r, cfg, "From: foo, bar\nSender: foo\n\n", "<foo@host.local>");
    CHECK(c.message == "From: first@example.com, bar@out.example\nSender: out@example.com\n\n");
    CHECK(c.return_path.path() == "<out@example.com>");

    r.map_return_path_addresses
        = route("map_return_path_addresses = \"foo: rp@example.com\"\n").map_return_path_addresses;
    CHECK(copy(r, cfg, "", "<foo@host.local>").return_path.path() == "<rp@example.com>");
    CHECK(copy(r, cfg, "", "<bar@host.local>").return_path.path() == "<bar@out.example>");
}

TEST_CASE("keys match the local part case-sensitively unless caseless_matching")
{
    RouteConfig r = route("map_outgoing_addresses = \"foo: x@example.com\"\n");
    MainConfig cfg = main_config();
    CHECK(rewritten(r, cfg, "From: FOO\n") == "From: FOO\n");
    CHECK(copy(r, cfg, "", "<FOO@host.local>").return_path.path() == "<FOO@host.local>");
    cfg.caseless_matching = true;
    CHECK(rewritten(r, cfg, "From: FOO\n") == "From: x@example.com\n");
    CHECK(copy(r, cfg, "", "<FOO@host.local>").return_path.path() == "<x@example.com>");
}

TEST_CASE("everything but the rewritten fields is copied byte for byte")
{
    RouteConfig r = route("map_h_from_addresses = \"foo: Dark Foo <fooish@example.com>\"\n");
    MainConfig cfg = main_config();
    CHECK(rewritten(r, cfg, "From someone Sat Jan  1 00:00:00 2000\nFrom: foo\n\nFrom: foo\n")
        == "From someone Sat Jan  1 00:00:00 2000\nFrom: Dark Foo <fooish@example.com>\n\nFrom: foo\n");
    CHECK(rewritten(r, cfg, "From: foo") == "From: Dark Foo <fooish@example.com>");
    CHECK(rewritten(r, cfg, "Subject: a\n  b\nFrom: foo\nnot a field\nFrom: foo\n")
        == "Subject: a\n  b\nFrom: Dark Foo <fooish@example.com>\nnot a field\nFrom: foo\n");
    CHECK(rewritten(r, cfg, "") == "");
    CHECK(rewritten(r, cfg, "\nFrom: foo\n") == "\nFrom: foo\n");
}

TEST_CASE("no maps: the copy is the stored text and the return path as they are")
{
    mm::RoutedCopy c = copy(route(""), main_config(), "From: foo\r\n\n", "<foo@host.local>");
    CHECK(c.message == "From: foo\r\n\n");
    CHECK(c.return_path.path() == "<foo@host.local>");
    CHECK(c.rewrites.empty());
}

TEST_CASE("a stored text parse_message refuses is an error")
{
    RouteConfig r = route("map_h_from_addresses = \"foo: x@example.com\"\n");
    auto c = mm::rewrite_for_route(r, main_config(), "From: foo\r\n\n", path("<>"));
    REQUIRE(!c);
    CHECK(c.error().kind() == mm::ErrorKind::permanent);
}

TEST_CASE("a rule that would put a control byte or a second address into the message is refused")
{
    auto rule = [](std::string replacement, std::string address, std::string domain_only = {}) {
        RewriteRule rr;
        rr.local_glob = "*";
        rr.replacement = std::move(replacement);
        if (!address.empty())
            rr.address = path("<" + address + ">");
        rr.domain_only = std::move(domain_only);
        return rr;
    };
    const std::string control = "control character in its replacement";
    const std::string not_one = "its replacement is not one qualified address";
    struct Case {
        RewriteRule rule;
        std::string reason;
    };
    const Case cases[] = {
        { rule("Evil\r\n Name <x@example.com>", "x@example.com"), control },
        { rule("Evil\n Name <x@example.com>", "x@example.com"), control },
        { rule(std::string("x@example.com\0", 14), "x@example.com"), control },
        { rule("Bcc\x7f <x@example.com>", "x@example.com"), control },
        { rule("x@example.com, y@example.com", "x@example.com"), not_one },
        { rule("y@example.com", "x@example.com"), not_one },
        { rule("", ""), not_one },
        { rule("*@bad domain", "", "bad domain"), "invalid domain" },
        { rule("*@x", "", "x\nBcc: a@b"), "invalid domain" },
    };
    MainConfig cfg = main_config();
    for (const Case& c : cases) {
        INFO(c.rule.replacement);
        RouteConfig r;
        r.file = "bad.route";
        r.map_h_from_addresses = { c.rule };
        // Refused when it first applies...
        auto out = mm::rewrite_for_route(r, cfg, "From: foo\n\n", path("<>"));
        REQUIRE(!out);
        CHECK(out.error().kind() == mm::ErrorKind::temporary);
        CHECK(
            out.error().message() == "route bad.route: entry 1 of map_h_from_addresses refused: " + c.reason);
        // ... and not before.
        CHECK(mm::rewrite_for_route(r, cfg, "From: x@remote.example\n\n", path("<foo@host.local>")));
        r.map_outgoing_addresses = { c.rule };
        CHECK(!mm::rewrite_for_route(r, cfg, "", path("<foo@host.local>")));
    }
}

TEST_CASE("a header section that grows past the limit is an error, not an allocation")
{
    const std::string name(900, 'N');
    RouteConfig r = route("map_h_from_addresses = \"*: " + name + " <x@example.com>\"\n");
    std::string one_field = "From: a";
    for (int i = 0; i < 5000; ++i)
        one_field += ",a";
    std::string many_fields;
    for (int i = 0; i < 300; ++i)
        many_fields += "From: a\n";
    for (const std::string& header : { one_field + "\n", many_fields }) {
        auto c = mm::rewrite_for_route(r, main_config(), header + "\n", path("<>"));
        REQUIRE(!c);
        CHECK(c.error().kind() == mm::ErrorKind::permanent);
        CHECK(c.error().message() == "header section too large after rewriting");
    }

    std::string fits = "From: a";
    for (int i = 0; i < 100; ++i)
        fits += ",a";
    auto ok = mm::rewrite_for_route(r, main_config(), fits + "\n\n", path("<>"));
    REQUIRE(ok);
    CHECK(ok->message.size() <= mm::limits::rewritten_header_section);
}

TEST_CASE("explain lists each rewrite: field, map, old and new address")
{
    auto list
        = mm::explain_rewrites(route(t500_route), main_config(), t500_message, path("<sendy@host.local>"));
    REQUIRE(list);
    const std::vector<AddressRewrite> expected {
        { "Return-Path", "map_return_path_addresses", "sendy@host.local", "dummy@example.com" },
        { "From", "map_h_from_addresses", "foo", "Dark Foo <fooish@example.com>" },
        { "Reply-To", "map_h_reply_to_addresses", "bar", "Bar Man <drink@example-fail.com>" },
        { "Mail-Followup-To", "map_h_mail_followup_to_addresses", "bar@host.local",
            "Bar Exam <admin@blackhole.com>" },
        { "Mail-Followup-To", "map_h_mail_followup_to_addresses", "bar@host.local",
            "Bar Exam <admin@blackhole.com>" },
        { "Mail-Followup-To", "map_h_mail_followup_to_addresses", "baz", "\"The Real Me\" <me@example.com>" },
    };
    CHECK(*list == expected);

    RouteConfig r = route("map_h_from_addresses = \"*: *@example.org\"\n"
                          "map_outgoing_addresses = \"joe: Joe <joe@example.com>\"\n");
    auto joe = mm::explain_address_rewrites(r, main_config(), path("<joe@host.local>"));
    REQUIRE(joe);
    const std::vector<AddressRewrite> joe_expected {
        { "Return-Path", "map_outgoing_addresses", "joe@host.local", "joe@example.com" },
        { "From", "map_h_from_addresses", "joe@host.local", "joe@example.org" },
        { "Sender", "map_outgoing_addresses", "joe@host.local", "Joe <joe@example.com>" },
        { "Reply-To", "map_outgoing_addresses", "joe@host.local", "Joe <joe@example.com>" },
        { "Mail-Followup-To", "map_outgoing_addresses", "joe@host.local", "Joe <joe@example.com>" },
    };
    CHECK(*joe == joe_expected);
    auto remote = mm::explain_address_rewrites(r, main_config(), path("<joe@remote.example>"));
    REQUIRE(remote);
    CHECK(remote->empty());
}
