// SPDX-License-Identifier: GPL-2.0-or-later
// Header section parsing (masqmail §1.5.4 with bug 39 fixed), rendering and
// its round trip, the header helpers and folding of generated fields.
#include "catch.hh"
#include "mm/limits.hh"
#include "mm/message.hh"

#include <string>
#include <vector>

using mm::parse_message;
using mm::ParsedMessage;

namespace {

std::vector<std::string> names(const ParsedMessage& m)
{
    std::vector<std::string> out;
    for (const auto& h : m.headers)
        out.push_back(h.name);
    return out;
}

struct Case {
    const char* name;
    std::string input;
    std::vector<std::string> names;
    std::string body;
};

} // namespace

TEST_CASE("parse_message splits headers from body")
{
    using V = std::vector<std::string>;
    const Case cases[] = {
        { "simple", "From: a\nTo: b\n\nbody\n", V { "From", "To" }, "body\n" },
        { "mbox From_ line dropped", "From a@b Sat Nov 21 2026\nSubject: x\n\nb\n", V { "Subject" }, "b\n" },
        { "obsolete 'From :' field is no From_ line", "From : a@b\n\n", V { "From" }, "" },
        { "From_ only as the first line", "Subject: x\nFrom a@b\n\nb\n", V { "Subject" }, "From a@b\n\nb\n" },
        { "continuation", "Subject: a\n\tb\n c\nTo: x\n\n", V { "Subject", "To" }, "" },
        { "no-colon line ends headers", "Subject: a\nhello world\nTo: x\n", V { "Subject" },
            "hello world\nTo: x\n" },
        { "no empty line: header-only", "Subject: a\nTo: b\n", V { "Subject", "To" }, "" },
        { "header-only without LF", "Subject: a", V { "Subject" }, "" },
        { "empty header section", "\nSubject: not a header\n", V {}, "Subject: not a header\n" },
        { "no header at all", "just text\n", V {}, "just text\n" },
        { "empty message", "", V {}, "" },
        { "no body after blank line", "To: a\n\n", V { "To" }, "" },
        { "Fro: is its own field", "Fro: x\n\n", V { "Fro" }, "" },
        { "obsolete space before colon", "Subject : x\n\n", V { "Subject" }, "" },
        { "colon first is not a field", ": x\nTo: y\n\n", V {}, ": x\nTo: y\n\n" },
        { "space in name is not a field", "Bad Name: x\n\n", V {}, "Bad Name: x\n\n" },
        { "leading continuation is body", " x: y\n\n", V {}, " x: y\n\n" },
        { "8-bit name is not a field", "N\xe4me: x\n\n", V {}, "N\xe4me: x\n\n" },
        { "8-bit value is kept", "Subject: \xc3\xa4\n\n", V { "Subject" }, "" },
        { "body keeps its last line unterminated", "To: a\n\nx", V { "To" }, "x" },
    };
    for (const auto& c : cases) {
        INFO(c.name);
        auto m = parse_message(c.input);
        REQUIRE(m);
        CHECK(names(*m) == c.names);
        CHECK(m->body == c.body);
        auto again = parse_message(mm::render(*m));
        REQUIRE(again);
        CHECK(*again == *m);
    }
}

TEST_CASE("raw keeps the whole field and value() what follows the colon")
{
    auto m = parse_message("Subject: a\n\tb\nTo:x\n\n");
    REQUIRE(m);
    REQUIRE(m->headers.size() == 2);
    CHECK(m->headers[0].raw == "Subject: a\n\tb");
    CHECK(m->headers[0].value() == " a\n\tb");
    CHECK(m->headers[1].value() == "x");
}

TEST_CASE("render(parse(x)) == x for valid canonical messages")
{
    for (std::string text : { "From: a\nTo: b\n\nbody\n", "Subject: x\n\tfolded\n\n\n\nbody\n.\n", "\nbody only\n",
             "A: 1\nB: 2\n\n" }) {
        auto m = parse_message(text);
        REQUIRE(m);
        CHECK(mm::render(*m) == text);
    }
}

TEST_CASE("NUL and CR are refused, the header section is bounded")
{
    CHECK_FALSE(parse_message(std::string("To: a\0\n\n", 8)));
    auto cr = parse_message("To: a\r\n\r\n");
    REQUIRE_FALSE(cr);
    CHECK(cr.error().kind() == mm::ErrorKind::permanent);

    const std::size_t limit = mm::limits::header_section;
    // One field of exactly `limit` octets with its LF, then a body.
    std::string field = "X: " + std::string(limit - 4, 'a') + "\n";
    REQUIRE(field.size() == limit);
    CHECK(parse_message(field + "\nbody\n"));
    auto over = parse_message("Y: 1\n" + field + "\n");
    REQUIRE_FALSE(over);
    CHECK(over.error().message() == "header section too large");
    // Many small continuation lines count as well.
    std::string folded = "Subject: x\n";
    while (folded.size() <= limit)
        folded += " y\n";
    CHECK_FALSE(parse_message(folded + "\n"));
    // A huge body is no header section.
    CHECK(parse_message("To: a\n\n" + std::string(4 * limit, 'b')));
}

TEST_CASE("helpers find, count and erase by exact name, any case")
{
    auto m = parse_message("received: 1\nReceived: 2\nReceived-SPF: x\nFro: y\nFrom: z\n\n");
    REQUIRE(m);
    CHECK(mm::count_received(*m) == 2);
    REQUIRE(mm::find_header(*m, "FROM"));
    CHECK(mm::find_header(*m, "FROM")->raw == "From: z");
    CHECK(mm::find_header(*m, "Bcc") == nullptr);
    CHECK(mm::erase_headers(*m, "RECEIVED") == 2);
    CHECK(names(*m) == std::vector<std::string> { "Received-SPF", "Fro", "From" });
}

TEST_CASE("make_header folds at spaces within 78 octets, never beyond 998")
{
    std::string value;
    for (int i = 0; i < 40; ++i)
        value += "word" + std::to_string(i) + " ";
    auto h = mm::make_header("X-Long", value);
    CHECK(h.name == "X-Long");
    std::size_t start = 0;
    std::string unfolded;
    while (start <= h.raw.size()) {
        std::size_t end = std::min(h.raw.find('\n', start), h.raw.size());
        CHECK(end - start <= 78);
        unfolded += h.raw.substr(start, end - start);
        start = end + 1;
    }
    CHECK(unfolded == "X-Long: " + value.substr(0, value.size() - 1));

    auto huge = mm::make_header("X", std::string(3000, 'z'));
    start = 0;
    while (start <= huge.raw.size()) {
        std::size_t end = std::min(huge.raw.find('\n', start), huge.raw.size());
        CHECK(end - start <= 998);
        start = end + 1;
    }
    auto reparsed = parse_message(huge.raw + "\n\n");
    REQUIRE(reparsed);
    CHECK(reparsed->headers.size() == 1);
    CHECK(mm::make_header("Date", "Sat, 21 Nov 2026").raw == "Date: Sat, 21 Nov 2026");
}

TEST_CASE("is_header_safe refuses control bytes but TAB")
{
    CHECK(mm::is_header_safe("a\tb \xc3\xa4"));
    CHECK_FALSE(mm::is_header_safe("a\rb"));
    CHECK_FALSE(mm::is_header_safe("a\nb"));
    CHECK_FALSE(mm::is_header_safe(std::string("a\0b", 3)));
    CHECK_FALSE(mm::is_header_safe("a\x7f"));
}
