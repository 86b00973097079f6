// SPDX-License-Identifier: GPL-2.0-or-later
// Address parsers: RFC 5321 paths, the command-line form, RFC 5322 lists,
// every limit at N and N+1, and hostile bytes in every position.
#include "catch.hh"
#include "mm/address.hh"
#include "mm/limits.hh"

#include <cstdio>
#include <string>
#include <vector>

using mm::Address;
using mm::AddressOptions;
using mm::parse_address;
using mm::parse_address_list;
using mm::parse_path;

namespace {

const AddressOptions strict {};
const AddressOptions lenient { .qualify_domain = "example.org", .allow_null = true };

// For INFO(): the input with control and 8-bit bytes shown as \xNN.
std::string shown(std::string_view s)
{
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

bool is_clean_text(std::string_view s)
{
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f)
            return false;
    }
    return true;
}

// A valid domain name of exactly n octets (n >= 1).
std::string domain_of_length(std::size_t n)
{
    std::string d;
    while (n - d.size() > 63)
        d += std::string(62, 'd') + ".";
    d += std::string(n - d.size(), 'e');
    return d;
}

template <class T> void check_refused(const mm::Result<T>& r, std::string_view input)
{
    INFO("input: " << shown(input));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == mm::ErrorKind::permanent);
    INFO("message: " << shown(r.error().message()));
    CHECK(is_clean_text(r.error().message()));
    CHECK_FALSE(r.error().message().empty());
}

} // namespace

TEST_CASE("parse_path accepts RFC 5321 paths")
{
    struct Case {
        const char* text;
        const char* local;
        const char* domain;
    };
    const std::vector<Case> cases = {
        { "<a@b>", "a", "b" },
        { "<john.doe@example.org>", "john.doe", "example.org" },
        { "<\"john doe\"@example.org>", "john doe", "example.org" },
        { "<\"a\\\"b\"@x>", "a\"b", "x" },
        { "<\"a\\\\b\"@x>", "a\\b", "x" },
        { "<\"\\a\"@x>", "a", "x" },
        { "<\"a>b\"@x>", "a>b", "x" },
        { "<\"@\"@x>", "@", "x" },
        { "<\"a..b\"@x>", "a..b", "x" },
        { "<a@[192.0.2.1]>", "a", "[192.0.2.1]" },
        { "<a@[0.0.0.0]>", "a", "[0.0.0.0]" },
        { "<a@[255.255.255.255]>", "a", "[255.255.255.255]" },
        { "<a@[IPv6:2001:db8::1]>", "a", "[IPv6:2001:db8::1]" },
        { "<a@[ipv6:::1]>", "a", "[ipv6:::1]" },
        { "<a@[IPv6:::ffff:192.0.2.1]>", "a", "[IPv6:::ffff:192.0.2.1]" },
        { "<@a,@b:user@d>", "user", "d" },
        { "<@a.example:user@d>", "user", "d" },
        { "<@[192.0.2.1]:user@d>", "user", "d" },
        { "a@b", "a", "b" },
        { "  <a@b>\t", "a", "b" },
        { "<!#$%&'*+-/=?^_`{|}~@x>", "!#$%&'*+-/=?^_`{|}~", "x" },
        { "<a@1.2.3.4>", "a", "1.2.3.4" },
        { "<a-b@x-y.z0>", "a-b", "x-y.z0" },
        { "<|pipe@x>", "|pipe", "x" },
        { "<-dash@x>", "-dash", "x" },
        { "<a@EXAMPLE.Org>", "a", "EXAMPLE.Org" },
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto r = parse_path(c.text, strict);
        REQUIRE(r);
        CHECK(r->local_part() == c.local);
        CHECK(r->domain() == c.domain);
        CHECK_FALSE(r->is_null());
        auto again = parse_path(r->path(), strict);
        REQUIRE(again);
        CHECK(*again == *r);
    }
}

TEST_CASE("parse_path refuses malformed paths")
{
    const std::vector<std::string> cases = {
        "<@>",
        "<a@>",
        "<@a>",
        "< @a>",
        "<a@ >",
        "<a@b",
        "a@b>",
        "<a@b>x",
        "<a@@b>",
        "<a..b@c>",
        "<.a@b>",
        "<a.@b>",
        "",
        "   ",
        "<",
        ">",
        "<a b@c>",
        "<a@b c>",
        "<a@b.>",
        "<a@.b>",
        "<a@-b>",
        "<a@b->",
        "<a@b_c>",
        "<a@[1.2.3]>",
        "<a@[1.2.3.256]>",
        "<a@[01.2.3.4]>",
        "<a@[1.2.3.4.5]>",
        "<a@[1.2.3.4 ]>",
        "<a@[IPv6:1::2::3]>",
        "<a@[IPv6:12345::]>",
        "<a@[IPv6:]>",
        "<a@[tag:xyz]>",
        "<a@[1.2.3.4>",
        "<a@[ 1.2.3.4]>",
        "<a@[]>",
        "<\"a\"b@c>",
        "<\"a\".b@c>",
        "<a.\"b\"@c>",
        "<\"a@c>",
        "<\"a\\\">",
        "<a@b>>",
        "<<a@b>>",
        "<@a,b:c@d>",
        "<@a:>",
        "<@a,@:c@d>",
        "<@a c@d>",
        "<@a:@b>",
        "<a@b@c>",
        "<\"\"@x>",
        "<a@b >",
        "< a@b>",
        "<a(x)@b>",
        "<\"a\tb\"@c>",
        "<a\\b@c>",
        "<a@b>,<c@d>",
        "<a@b,c>",
        "<a:b@c>",
        "<a@b:c>",
        "<a;b@c>",
        "<a,b@c>",
        "<(a)>",
        "<a@b\\>",
        "<\"a\\",
    };
    for (const auto& text : cases)
        check_refused(parse_path(text, lenient), text);
}

TEST_CASE("parse_smtp_path ends at the path's own '>' and returns the rest")
{
    std::string_view rest = "unchanged";
    auto r = mm::parse_smtp_path("<a@b> SIZE=100", strict, rest);
    REQUIRE(r);
    CHECK(r->str() == "a@b");
    CHECK(rest == " SIZE=100");

    r = mm::parse_smtp_path("<\"a> b\"@c> X", strict, rest);
    REQUIRE(r);
    CHECK(r->local_part() == "a> b");
    CHECK(rest == " X");

    r = mm::parse_smtp_path("<> BODY=8BITMIME", lenient, rest);
    REQUIRE(r);
    CHECK(r->is_null());
    CHECK(rest == " BODY=8BITMIME");

    r = mm::parse_smtp_path("<a@b>", strict, rest);
    REQUIRE(r);
    CHECK(rest.empty());

    rest = "unchanged";
    for (const char* bad : { "a@b", " <a@b>", "<a@b", "", "<>", "<a@b\r\n" }) {
        check_refused(mm::parse_smtp_path(bad, strict, rest), bad);
        CHECK(rest == "unchanged");
    }
}

TEST_CASE("the null path is accepted only when allowed")
{
    for (const char* text : { "<>", " <> " }) {
        auto r = parse_path(text, lenient);
        REQUIRE(r);
        CHECK(r->is_null());
        CHECK(r->str().empty());
        CHECK(r->path() == "<>");
        CHECK(*r == Address());
        check_refused(parse_path(text, strict), text);
    }
    auto a = parse_address("<>", lenient);
    REQUIRE(a);
    CHECK(a->is_null());
    check_refused(parse_address("<>", strict), "<>");
    auto list = parse_address_list("<>", lenient);
    REQUIRE(list);
    REQUIRE(list->size() == 1);
    CHECK((*list)[0].address.is_null());
    CHECK((*list)[0].spec_begin == 1);
    CHECK((*list)[0].spec_end == 1);
    check_refused(parse_address_list("<>", strict), "<>");
    CHECK(Address().path() == "<>");
    CHECK(Address().is_null());
}

TEST_CASE("unqualified addresses get the qualify domain, or are refused")
{
    const AddressOptions qualify { .qualify_domain = "example.org" };
    for (const char* text : { "postmaster", "<postmaster>" }) {
        auto r = parse_path(text, qualify);
        REQUIRE(r);
        CHECK(r->str() == "postmaster@example.org");
        auto e = parse_path(text, strict);
        check_refused(e, text);
        CHECK(e.error().message().find("must be qualified") != std::string::npos);
    }
    auto a = parse_address("  user ", qualify);
    REQUIRE(a);
    CHECK(a->str() == "user@example.org");
    check_refused(parse_address("user", strict), "user");

    auto list = parse_address_list("postmaster, a@b, \"x y\"", qualify);
    REQUIRE(list);
    REQUIRE(list->size() == 3);
    CHECK((*list)[0].address.str() == "postmaster@example.org");
    CHECK((*list)[0].spec_begin == 0);
    CHECK((*list)[0].spec_end == 10);
    CHECK((*list)[1].address.str() == "a@b");
    CHECK((*list)[2].address.str() == "\"x y\"@example.org");
    check_refused(parse_address_list("postmaster, a@b", strict), "postmaster, a@b");

    const AddressOptions bad_qualify { .qualify_domain = "bad_domain" };
    check_refused(parse_path("postmaster", bad_qualify), "bad qualify domain");
    CHECK(parse_path("a@b", bad_qualify));
}

TEST_CASE("str() quotes the local part only when needed and round-trips")
{
    struct Case {
        const char* text;
        const char* str;
    };
    const std::vector<Case> cases = {
        { "<\"john doe\"@x>", "\"john doe\"@x" },
        { "<\"a\\\"b\"@x>", "\"a\\\"b\"@x" },
        { "<\"a\\\\b\"@x>", "\"a\\\\b\"@x" },
        { "<\"abc\"@x>", "abc@x" },
        { "<\"a.b\"@x>", "a.b@x" },
        { "<\"a..b\"@x>", "\"a..b\"@x" },
        { "<\".a\"@x>", "\".a\"@x" },
        { "<\"a.\"@x>", "\"a.\"@x" },
        { "<\"a@b\"@x>", "\"a@b\"@x" },
        { "<\"\\a\"@x>", "a@x" },
        { "<\" \"@x>", "\" \"@x" },
        { "<\"a(b)c\"@x>", "\"a(b)c\"@x" },
        { "<a.b@x>", "a.b@x" },
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto r = parse_path(c.text, strict);
        REQUIRE(r);
        CHECK(r->str() == c.str);
        CHECK(r->path() == std::string("<") + c.str + ">");
        auto again = parse_path(r->path(), strict);
        REQUIRE(again);
        CHECK(*again == *r);
        CHECK(again->local_part() == r->local_part());
        auto from_str = parse_address(r->str(), strict);
        REQUIRE(from_str);
        CHECK(*from_str == *r);
    }
}

TEST_CASE("equality: local part exact, domain case-insensitive")
{
    auto a = parse_path("<Joe@Example.ORG>", strict);
    auto b = parse_path("<Joe@example.org>", strict);
    auto c = parse_path("<joe@example.org>", strict);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    CHECK(*a == *b);
    CHECK(*a != *c);
    CHECK(*a != Address());
    CHECK(Address() == Address());
    CHECK(a->domain() == "Example.ORG");
}

TEST_CASE("is_valid_domain")
{
    for (const char* d : { "a", "a.b", "a-b.c", "a--b.c", "1.2.3.4", "0a.b", "xn--bcher-kva.example",
             "[192.0.2.1]", "[IPv6:::1]", "[IPv6:2001:db8::]", "[IPv6:::ffff:1.2.3.4]" }) {
        INFO(d);
        CHECK(mm::is_valid_domain(d));
    }
    for (const char* d : { "", ".", "a.", ".a", "a..b", "-a", "a-", "a.-b", "a_b", "a b", "[1.2.3.4", "[]",
             "[IPv6:]", "[1.2.3.04]", "[256.1.1.1]", "[1.2.3.4.]", "[IPv6:1:2]", "[IPv6:::1 ]", "\xc3\xa4.de",
             "a\r\n.b", "[1.2.3.4]x", "x[1.2.3.4]", "[-1.2.3.4]" }) {
        INFO(shown(d));
        CHECK_FALSE(mm::is_valid_domain(d));
    }
    CHECK_FALSE(mm::is_valid_domain(std::string_view("a\0b", 3)));
}

TEST_CASE("limits: local part, label, domain, path at N and N+1")
{
    using mm::limits::local_part_accepted;
    using mm::limits::path;
    static_assert(local_part_accepted == 128 && path == 256);
    for (std::size_t n :
        { std::size_t { 64 }, std::size_t { 65 }, std::size_t { 128 }, std::size_t { 129 } }) {
        std::string local(n, 'l');
        INFO("local part " << n);
        bool ok = n <= local_part_accepted;
        CHECK(bool(parse_path("<" + local + "@x>", strict)) == ok);
        CHECK(bool(parse_address(local + "@x", strict)) == ok);
        CHECK(bool(parse_address_list(local + "@x", strict)) == ok);
    }
    CHECK(parse_path("<" + std::string(129, 'l') + "@x>", strict).error().message() == "local part too long");
    // The limit applies to the local part as written: quotes count.
    CHECK(parse_path("<\"" + std::string(125, 'l') + " \"@x>", strict));
    CHECK_FALSE(parse_path("<\"" + std::string(126, 'l') + " \"@x>", strict));

    CHECK(mm::is_valid_domain("a." + std::string(63, 'x') + ".org"));
    CHECK_FALSE(mm::is_valid_domain("a." + std::string(64, 'x') + ".org"));
    CHECK(parse_path("<a@" + std::string(63, 'x') + ".org>", strict));
    CHECK_FALSE(parse_path("<a@" + std::string(64, 'x') + ".org>", strict));
    CHECK(parse_address_list("a@" + std::string(63, 'x'), strict));
    CHECK_FALSE(parse_address_list("a@" + std::string(64, 'x'), strict));

    REQUIRE(domain_of_length(255).size() == 255);
    CHECK(mm::is_valid_domain(domain_of_length(255)));
    CHECK_FALSE(mm::is_valid_domain(domain_of_length(256)));
    CHECK(mm::is_valid_domain(domain_of_length(1)));

    // A path of 256 octets, brackets included, and one of 257.
    const std::string local(128, 'l');
    const std::string p256 = "<" + local + "@" + domain_of_length(125) + ">";
    const std::string p257 = "<" + local + "@" + domain_of_length(126) + ">";
    REQUIRE(p256.size() == 256);
    REQUIRE(p257.size() == 257);
    CHECK(parse_path(p256, strict));
    check_refused(parse_path(p257, strict), p257);
    CHECK(parse_address(p256, strict));
    CHECK_FALSE(parse_address(p257, strict));
    CHECK(parse_address_list(p256, strict));
    CHECK_FALSE(parse_address_list(p257, strict));
    CHECK_FALSE(parse_path("<a@" + domain_of_length(253) + ">", strict));
    CHECK(parse_path("<a@" + domain_of_length(252) + ">", strict));
    // Unqualified: the qualified form must fit.
    const std::string d125 = domain_of_length(125);
    CHECK(parse_path(local, { .qualify_domain = d125 }));
    CHECK_FALSE(parse_path(local, { .qualify_domain = domain_of_length(126) }));
    // A source route counts in the path text but is then dropped.
    const std::string route = "@" + domain_of_length(200) + ":";
    const std::string routed = "<" + route + "a@" + domain_of_length(256 - 4 - route.size()) + ">";
    REQUIRE(routed.size() == 256);
    CHECK(parse_path(routed, strict));
    CHECK_FALSE(parse_path("<" + route + "a@" + domain_of_length(256 - 3 - route.size()) + ">", strict));
    // Anything longer than a path is refused before it is looked at.
    CHECK(parse_path(std::string(100000, 'a'), lenient).error().message() == "address too long");
}

TEST_CASE("limits: address text, header size, addresses per header, comment depth")
{
    const std::string name1 = std::string(1024 - 6, 'n');
    CHECK(parse_address(name1 + " <a@b>", strict));
    CHECK_FALSE(parse_address(name1 + "  <a@b>", strict));

    std::string list;
    for (std::size_t i = 0; i < mm::limits::addresses_per_header; ++i)
        list += "a@b,";
    auto r = parse_address_list(list, strict);
    REQUIRE(r);
    CHECK(r->size() == mm::limits::addresses_per_header);
    CHECK(r->back().spec_begin == list.size() - 4);
    list += "a@b";
    check_refused(parse_address_list(list, strict), "10001 addresses");

    std::string big(mm::limits::header_section, ',');
    CHECK(parse_address_list(big, strict));
    big += ",";
    check_refused(parse_address_list(big, strict), "header_section + 1");

    const std::size_t depth = mm::limits::comment_depth;
    std::string deep = "a@b " + std::string(depth, '(') + std::string(depth, ')');
    CHECK(parse_address_list(deep, strict));
    CHECK(parse_address(deep, strict));
    deep = "a@b " + std::string(depth + 1, '(') + std::string(depth + 1, ')');
    check_refused(parse_address_list(deep, strict), "comment depth + 1");
    // Hostile nesting is refused without recursion.
    check_refused(parse_address_list(std::string(100000, '('), strict), "100000 (");
    check_refused(parse_address_list("a@b " + std::string(100000, ')'), strict), "100000 )");
}

TEST_CASE("control and 8-bit bytes are refused in every position of a path")
{
    const std::vector<std::string> bad = { "\r", "\n", std::string(1, '\0'), "\x01", "\x1b", "\x1f", "\x7f",
        "\x80", "\xc3\xa4", "\xff", "\t", "\r\n", "\r\n ", " " };
    const std::vector<std::string> bases
        = { "<a.b@c.d>", "<\"a b\"@c.d>", "<\"a\\b\"@[192.0.2.1]>", "<@r.s:a@c.d>", "<\"\\\\\"@[IPv6:::1]>" };
    for (const auto& base : bases) {
        for (std::size_t pos = 0; pos <= base.size(); ++pos) {
            for (const auto& b : bad) {
                bool blank = b == "\t" || b == " ";
                if (blank && (pos == 0 || pos == base.size()))
                    continue; // surrounding blanks are trimmed
                // A space inside the quotes is fine.
                if (b == " " && base[1] == '"' && pos > 1 && pos < base.find('"', 2) + 1)
                    continue;
                std::string text = base.substr(0, pos) + b + base.substr(pos);
                check_refused(parse_path(text, lenient), text);
                std::string_view rest;
                if (pos < base.size()) // what follows the path is the caller's
                    check_refused(mm::parse_smtp_path(text, lenient, rest), text);
            }
        }
    }
    check_refused(parse_path("<\"a\r\nRCPT TO:<x>\"@d>", lenient), "smuggled RCPT");
}

TEST_CASE("control and 8-bit bytes are refused in every position of a header address")
{
    // Line breaks followed by white space are folding, and 8-bit text is
    // allowed in display names, so those are left out below.
    const std::vector<std::string> bad
        = { "\r", "\n", std::string(1, '\0'), "\x01", "\x1f", "\x7f", "\r\n", "\x80", "\xff", "\xc3\xa4" };
    const std::vector<std::string> bases
        = { "a.b@c.d", "\"a b\"@c.d", "Name <a.b@c.d>", "<\"a\\b\"@c.d>", "x@[192.0.2.1]", "N <@r.s:a@c.d>" };
    for (const auto& base : bases) {
        // Before '<' is the display name (none without '<').
        const std::size_t angle = base.find('<');
        for (std::size_t pos = 0; pos <= base.size(); ++pos) {
            for (const auto& b : bad) {
                bool eight_bit = static_cast<unsigned char>(b[0]) >= 0x80;
                if (eight_bit && angle != std::string::npos && pos <= angle)
                    continue;
                if (b.back() == '\n' && pos < base.size() && base[pos] == ' ')
                    continue; // folding
                std::string text = base.substr(0, pos) + b + base.substr(pos);
                check_refused(parse_address(text, lenient), text);
                check_refused(parse_address_list(text, lenient), text);
                check_refused(parse_address_list("x@y, " + text + ", z@w", lenient), text);
            }
        }
    }
}

TEST_CASE("parse_address: the command-line and configuration forms")
{
    struct Case {
        const char* text;
        const char* str;
    };
    const std::vector<Case> cases = {
        { "user", "user@example.org" },
        { "user@host", "user@host" },
        { "<user@host>", "user@host" },
        { "Name <user@host>", "user@host" },
        { "\"Name, Jr.\" <user@host>", "user@host" },
        { "user@host (comment)", "user@host" },
        { "  user@host  ", "user@host" },
        { "\tuser@host\t", "user@host" },
        { "<@relay:user@host>", "user@host" },
        { "\"john doe\"@host", "\"john doe\"@host" },
        { "John Q. Public <jqp@host>", "jqp@host" },
        { "(c) user (c) @ (c) host (c)", "user@host" },
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto r = parse_address(c.text, { .qualify_domain = "example.org" });
        REQUIRE(r);
        CHECK(r->str() == c.str);
    }
    for (const char* bad : { "", "   ", "a@b, c@d", "group: a@b;", "<a@b", "Name <a@b> x", "a@", "@b", "a b",
             "Name", "<a@b> <c@d>", "a@b c", "<a@b>>", "a@b;", "(unterminated a@b", "\"unterminated@b",
             "a@b\n", "a@b\r\n", "a@b\\" }) {
        check_refused(parse_address(bad, strict), bad);
    }
}

TEST_CASE("parse_address_list: RFC 5322 lists with names, comments, groups and folding")
{
    struct Expected {
        const char* name;
        const char* address;
        const char* spec;
        bool angle;
    };
    struct Case {
        std::string value;
        std::vector<Expected> mailboxes;
    };
    const std::vector<Case> cases = {
        { "a@b", { { "", "a@b", "a@b", false } } },
        { "John Doe <jd@example.org>", { { "John Doe", "jd@example.org", "jd@example.org", true } } },
        { "\"Doe, John\" <jd@x>, other@y",
            { { "Doe, John", "jd@x", "jd@x", true }, { "", "other@y", "other@y", false } } },
        { "a@b (Comment (nested \\) x)), c@d", { { "", "a@b", "a@b", false }, { "", "c@d", "c@d", false } } },
        { "undisclosed-recipients:;", {} },
        { "undisclosed-recipients: ;", {} },
        { "undisclosed-recipients:", {} },
        { "", {} },
        { " , ,, ", {} },
        { "friends: a@b, c@d;, e@f",
            { { "", "a@b", "a@b", false }, { "", "c@d", "c@d", false }, { "", "e@f", "e@f", false } } },
        { "a@b,,, ,c@d", { { "", "a@b", "a@b", false }, { "", "c@d", "c@d", false } } },
        { ",a@b", { { "", "a@b", "a@b", false } } },
        { "John\r\n Doe <a@b>,\n c@d", { { "John Doe", "a@b", "a@b", true }, { "", "c@d", "c@d", false } } },
        { "\"folded\r\n\tname\" <a@b>", { { "folded name", "a@b", "a@b", true } } },
        { "=?utf-8?q?J=C3=B6rg?= <j@x>", { { "=?utf-8?q?J=C3=B6rg?=", "j@x", "j@x", true } } },
        { "J\xc3\xb6rg <j@x>", { { "J\xc3\xb6rg", "j@x", "j@x", true } } },
        { "\"J\xc3\xb6rg M\" (K\xc3\xb6ln) <j@x>", { { "J\xc3\xb6rg M", "j@x", "j@x", true } } },
        { "Mary Smith <@node.test:mary@example.net>",
            { { "Mary Smith", "mary@example.net", "@node.test:mary@example.net", true } } },
        { "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
            { { "Pete", "pete@silly.test", "pete(his account)@silly.test", true } } },
        { "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
          "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)",
            { { "Chris Jones", "c@public.example", "c@(Chris's host.)public.example", true },
                { "", "joe@example.org", "joe@example.org", false },
                { "John", "jdoe@one.test", "jdoe@one.test", true } } },
        { "Joe Q. Public <john.q.public@example.com>",
            { { "Joe Q. Public", "john.q.public@example.com", "john.q.public@example.com", true } } },
        { "john . doe @example.org", { { "", "john.doe@example.org", "john . doe @example.org", false } } },
        { "\"john doe\"@x", { { "", "\"john doe\"@x", "\"john doe\"@x", false } } },
        { "< a@b >", { { "", "a@b", "a@b", true } } },
        { "<a@[IPv6:::1]>", { { "", "a@[IPv6:::1]", "a@[IPv6:::1]", true } } },
        { "\"\" <a@b>", { { "", "a@b", "a@b", true } } },
        { "a@b (x) (y)", { { "", "a@b", "a@b", false } } },
    };
    for (const auto& c : cases) {
        INFO(shown(c.value));
        auto r = parse_address_list(c.value, strict);
        if (!r)
            INFO(r.error().message());
        REQUIRE(r);
        REQUIRE(r->size() == c.mailboxes.size());
        for (std::size_t i = 0; i < r->size(); ++i) {
            const auto& got = (*r)[i];
            const auto& want = c.mailboxes[i];
            CHECK(got.display_name == want.name);
            CHECK(got.address.str() == want.address);
            REQUIRE(got.spec_begin <= got.spec_end);
            REQUIRE(got.spec_end <= c.value.size());
            CHECK(c.value.substr(got.spec_begin, got.spec_end - got.spec_begin) == want.spec);
            CHECK(got.angle == want.angle);
        }
    }
}

TEST_CASE("parse_address_list refuses malformed lists")
{
    const std::vector<std::string> cases = {
        "a: b: c@d;;",
        "a@b c@d",
        "<a@b> <c@d>",
        "friends: a@b, c@d; e@f",
        "a@b;",
        ";",
        "a@b\r\nc@d",
        "a@b\r",
        "a@b\r\n",
        "a@b\n",
        "\na@b",
        "a@b (unterminated",
        "a@b )",
        "\"unterminated",
        "a@b <c@d>",
        "Name <a@b",
        "Name <a@b>>",
        "<a@b",
        "a@",
        "@b",
        "Name",
        ":a@b;",
        "a@b, <>",
        "a@b\\",
        "(a@b",
        "a@b (c\\",
        "a@b (c\x01)",
        "\"a\\\x01\"@b",
        "a@b\r\n\r\n c@d",
        "a@b.c . d",
        "Name <a@b> (x",
        "[1.2.3.4]",
        "a@[1.2.3.4",
        "a@b@c",
        "g: <a@b>, h: c@d;;",
    };
    for (const auto& text : cases)
        check_refused(parse_address_list(text, strict), text);
}
