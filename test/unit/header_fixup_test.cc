// SPDX-License-Identifier: GPL-2.0-or-later
// Accept-time header surgery: every rule of masqmail §1.5.5, -t harvesting
// (groups, display names, bad addresses: bug 40), Received formats and the
// 'for' rule, the hop limit at N and N+1, and -F encoding (user-needs A4).
#include "catch.hh"
#include "mm/header_fixup.hh"

#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

using mm::FixupOptions;
using mm::ParsedMessage;

namespace {

constexpr std::time_t when = 1795248028;  // Sat, 21 Nov 2026 08:00:28 UTC

mm::Address addr(std::string_view text)
{
    return *mm::parse_path(text, {});
}

struct UtcZone {
    UtcZone()
    {
        ::setenv("TZ", "UTC", 1);
        ::tzset();
    }
};
const UtcZone utc_zone;

FixupOptions local_options()
{
    FixupOptions o;
    o.host_name = "laptop.example";
    o.queue_id = "1795248028.0123456789abcdef";
    o.sender = addr("<joe@laptop.example>");
    o.uid = 1000;
    o.now = when;
    o.package_version = "masqmail 0.1.0";
    return o;
}

ParsedMessage parse(std::string_view text)
{
    return *mm::parse_message(text);
}

std::vector<std::string> names(const ParsedMessage& m)
{
    std::vector<std::string> out;
    for (const auto& h : m.headers)
        out.push_back(h.name);
    return out;
}

std::string raw(const ParsedMessage& m, std::string_view name)
{
    const auto* h = mm::find_header(m, name);
    return h ? h->raw : "(none)";
}

const std::string date = "Sat, 21 Nov 2026 08:00:28 +0000";

} // namespace

TEST_CASE("dates are RFC 5322 with English names and a numeric offset")
{
    CHECK(mm::message_date(when) == date);
    std::tm tm {};
    tm.tm_wday = 1;
    tm.tm_mday = 2;
    tm.tm_mon = 0;
    tm.tm_year = 126;
    tm.tm_hour = 3;
    tm.tm_min = 4;
    tm.tm_sec = 5;
    CHECK(mm::format_message_date(tm, -(5 * 3600 + 30 * 60)) == "Mon, 02 Jan 2026 03:04:05 -0530");
    CHECK(mm::format_message_date(tm, 3600) == "Mon, 02 Jan 2026 03:04:05 +0100");
}

TEST_CASE("missing From, To, Date and Message-ID are appended, one Received prepended")
{
    auto m = parse("Subject: hi\n\nbody\n");
    auto o = local_options();
    o.recipients = { addr("<ann@example.org>") };
    REQUIRE(mm::fix_headers(m, o));
    CHECK(names(m) == std::vector<std::string> { "Received", "Subject", "From", "To", "Date", "Message-ID" });
    CHECK(m.headers[0].raw
        == "Received: by laptop.example (masqmail 0.1.0, from userid 1000)\n\tid 1795248028.0123456789abcdef\n"
           "\tfor <ann@example.org>; " + date);
    CHECK(raw(m, "From") == "From: <joe@laptop.example>");
    CHECK(raw(m, "To") == "To: undisclosed-recipients:;");
    CHECK(raw(m, "Date") == "Date: " + date);
    CHECK(raw(m, "Message-ID") == "Message-ID: <1795248028.0123456789abcdef@laptop.example>");
    CHECK(m.body == "body\n");
}

TEST_CASE("present fields are kept; Sender stands for From, Cc for To")
{
    auto m = parse("sender: s@x\ncc: c@x\ndate: whenever\nmessage-id: <m@x>\n\n");
    REQUIRE(mm::fix_headers(m, local_options()));
    CHECK(names(m) == std::vector<std::string> { "Received", "sender", "cc", "date", "message-id" });
    auto n = parse("From: f@x\nTo: t@x\n\n");
    REQUIRE(mm::fix_headers(n, local_options()));
    CHECK(names(n) == std::vector<std::string> { "Received", "From", "To", "Date", "Message-ID" });
}

TEST_CASE("Bcc, Return-Path and Envelope-To are removed; Envelope-To saved on request")
{
    const std::string text = "Return-Path: <x@y>\nBCC: hidden@x\nEnvelope-To: a@b,\n c@d\nTo: t@x\nFrom: f@x\n\n";
    auto m = parse(text);
    REQUIRE(mm::fix_headers(m, local_options()));
    CHECK(names(m) == std::vector<std::string> { "Received", "To", "From", "Date", "Message-ID" });
    auto s = parse(text);
    auto o = local_options();
    o.save_envelope_to = true;
    REQUIRE(mm::fix_headers(s, o));
    CHECK(names(s) == std::vector<std::string> { "Received", "X-Orig-Envelope-To", "To", "From", "Date", "Message-ID" });
    CHECK(raw(s, "X-Orig-Envelope-To") == "X-Orig-Envelope-To: a@b,\n c@d");
}

TEST_CASE("-t harvests To, Cc and Bcc with groups and display names; Bcc leaves")
{
    auto m = parse("To: \"Ann A.\" <ann@example.org>, bob\nCc: team: carl@example.org, <dora@example.org>;\n"
                   "Bcc: eve@example.org\nBcc: ann@example.org\nSubject: x\n\n");
    auto o = local_options();
    o.extract_recipients = true;
    auto r = mm::fix_headers(m, o);
    REQUIRE(r);
    std::vector<std::string> got;
    for (const auto& a : r->header_recipients)
        got.push_back(a.str());
    CHECK(got == std::vector<std::string> { "ann@example.org", "bob@laptop.example", "carl@example.org",
             "dora@example.org", "eve@example.org", "ann@example.org" });
    CHECK(mm::count_headers(m, "Bcc") == 0);
    CHECK(mm::find_header(m, "To"));
    // Without -t nothing is harvested, and Bcc still goes.
    auto n = parse("Bcc: eve@example.org\n\n");
    auto plain = mm::fix_headers(n, local_options());
    REQUIRE(plain);
    CHECK(plain->header_recipients.empty());
    CHECK(names(n) == std::vector<std::string> { "Received", "From", "To", "Date", "Message-ID" });
}

TEST_CASE("-t with a bad address names the field and changes nothing (bug 40)")
{
    for (std::string text : { "To: ok@example.org, <broken\n\n", "Cc: a@@b\n\n", "Bcc: <x@y\n\n" }) {
        INFO(text);
        auto m = parse(text);
        const auto before = m;
        auto o = local_options();
        o.extract_recipients = true;
        auto r = mm::fix_headers(m, o);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == mm::ErrorKind::permanent);
        CHECK(r.error().message().find(text.substr(0, text.find(':')) + ": header") != std::string::npos);
        CHECK(m == before);
    }
}

TEST_CASE("Received: 'for' only with exactly one recipient, header ones counted")
{
    auto o = local_options();
    o.uid.reset();
    auto m = parse("To: x@y\n\n");
    REQUIRE(mm::fix_headers(m, o));
    CHECK(m.headers[0].raw
        == "Received: by laptop.example (masqmail 0.1.0)\n\tid 1795248028.0123456789abcdef; " + date);
    o.recipients = { addr("<a@b.example>"), addr("<c@d.example>") };
    m = parse("To: x@y\n\n");
    REQUIRE(mm::fix_headers(m, o));
    CHECK(m.headers[0].raw.find("for") == std::string::npos);
    o.recipients.clear();
    o.extract_recipients = true;
    m = parse("To: x@y.example\n\n");
    REQUIRE(mm::fix_headers(m, o));
    CHECK(m.headers[0].raw.find("\n\tfor <x@y.example>; ") != std::string::npos);
}

TEST_CASE("SMTP Received names the sanitised HELO, the IP and the protocol")
{
    auto o = local_options();
    o.protocol = mm::ReceivedProtocol::esmtps;
    o.helo_name = "evil (x);\tBcc: y";
    o.peer_address = "192.0.2.7";
    o.recipients = { addr("<ann@example.org>") };
    auto m = parse("From: a@b\nTo: c@d\n\n");
    REQUIRE(mm::fix_headers(m, o));
    CHECK(m.headers[0].raw
        == "Received: from evil??x???Bcc:?y ([192.0.2.7])\n\tby laptop.example with ESMTPS (masqmail 0.1.0)\n"
           "\tid 1795248028.0123456789abcdef\n\tfor <ann@example.org>; " + date);
    o.protocol = mm::ReceivedProtocol::smtp;
    o.helo_name.clear();
    o.peer_address = "2001:db8::1";
    m = parse("From: a@b\nTo: c@d\n\n");
    REQUIRE(mm::fix_headers(m, o));
    CHECK(m.headers[0].raw.rfind("Received: from [IPv6:2001:db8::1]\n\tby laptop.example with SMTP (", 0) == 0);
    CHECK(m.headers[0].raw.find(" with SMTP (") != std::string::npos);
}

TEST_CASE("hop limit: max_received Received: fields pass, one more is refused")
{
    std::string fifty;
    for (int i = 0; i < 50; ++i)
        fifty += "Received: from h" + std::to_string(i) + "\n";
    auto m = parse(fifty + "\n");
    REQUIRE(mm::fix_headers(m, local_options()));
    CHECK(mm::count_received(m) == 51);
    auto n = parse("received: x\n" + fifty + "\n");
    const auto before = n;
    auto r = mm::fix_headers(n, local_options());
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == mm::ErrorKind::permanent);
    CHECK(r.error().message() == "too many hops (51 Received: headers)");
    CHECK(n == before);
    auto o = local_options();
    o.max_received = 100;
    CHECK(mm::fix_headers(n, o));
}

TEST_CASE("-F full names are quoted, escaped or RFC 2047 encoded; line breaks refused")
{
    struct Case {
        std::string name;
        std::string from;
    };
    const Case cases[] = {
        { "Joe User", "From: \"Joe User\" <joe@laptop.example>" },
        { "Joe \"JJ\" O\\Neil", "From: \"Joe \\\"JJ\\\" O\\\\Neil\" <joe@laptop.example>" },
        { "J\xc3\xb6rg", "From: =?UTF-8?B?SsO2cmc=?= <joe@laptop.example>" },
        { "J\xf6rg", "From: =?UNKNOWN-8BIT?B?SvZyZw==?= <joe@laptop.example>" },
        { "a\tb", "From: =?UTF-8?B?YQli?= <joe@laptop.example>" },
    };
    for (const auto& c : cases) {
        INFO(c.name);
        auto m = parse("To: x@y\n\n");
        auto o = local_options();
        o.sender_full_name = c.name;
        REQUIRE(mm::fix_headers(m, o));
        CHECK(raw(m, "From") == c.from);
    }
    for (std::string bad : { std::string("Bob\nBcc: victim@x"), std::string("Bob\rX"), std::string("B\0b", 3),
             std::string(257, 'a') }) {
        auto m = parse("To: x@y\n\n");
        const auto before = m;
        auto o = local_options();
        o.sender_full_name = bad;
        auto r = mm::fix_headers(m, o);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == mm::ErrorKind::permanent);
        CHECK(m == before);
    }
}

TEST_CASE("long 8-bit names become several words, each within 75 octets, no split character")
{
    std::string name;
    for (int i = 0; i < 60; ++i)
        name += "\xc3\xa4";
    auto encoded = mm::encode_display_name(name);
    REQUIRE(encoded);
    std::size_t start = 0, words = 0;
    while (start < encoded->size()) {
        std::size_t end = std::min(encoded->find(' ', start), encoded->size());
        CHECK(end - start <= 75);
        CHECK(encoded->substr(start, 10) == "=?UTF-8?B?");
        ++words;
        start = end + 1;
    }
    CHECK(words == 3);
    auto m = parse("To: x@y\n\n");
    auto o = local_options();
    o.sender_full_name = name;
    REQUIRE(mm::fix_headers(m, o));
    CHECK(raw(m, "From").find('\n') != std::string::npos);  // folded between words
}

TEST_CASE("null sender: From names MAILER-DAEMON; bad options are internal errors")
{
    auto m = parse("To: x@y\n\n");
    auto o = local_options();
    o.sender = mm::Address();
    REQUIRE(mm::fix_headers(m, o));
    CHECK(raw(m, "From") == "From: <MAILER-DAEMON@laptop.example>");
    for (auto change : { +[](FixupOptions& x) { x.host_name = "a\nb"; }, +[](FixupOptions& x) { x.host_name.clear(); },
             +[](FixupOptions& x) { x.queue_id = "id\r"; }, +[](FixupOptions& x) { x.package_version = "v\n"; } }) {
        auto bad = local_options();
        change(bad);
        auto r = mm::fix_headers(m, bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == mm::ErrorKind::internal);
    }
    o.package_version.clear();
    auto n = parse("To: x@y\n\n");
    REQUIRE(mm::fix_headers(n, o));
    CHECK(n.headers[0].raw.find("(masqmail ") != std::string::npos);
}
