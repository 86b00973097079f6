// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP wire layer: command lines at their limits, every command's syntax
// and reply codes, the DATA reader against every smuggling payload and every
// chunking, and reply formatting against injection.
#include "catch.hh"
#include "mm/limits.hh"
#include "mm/smtp_wire.hh"

#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using mm::smtp::Body;
using mm::smtp::CommandReader;
using mm::smtp::DataLimits;
using mm::smtp::DataReader;
using mm::smtp::DataRefusal;
using mm::smtp::format_reply;
using mm::smtp::parse_command;
using mm::smtp::ParseOptions;
using mm::smtp::Reply;
using mm::smtp::Verb;

using namespace std::string_literals;

namespace {

// For INFO(): control and 8-bit bytes shown as \xNN.
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

// --- command reader driven as the session will drive it ---

// One event per line: "L:<line>" or "R:<code> <enhanced> <text>".
std::vector<std::string> read_commands(std::string_view input, const std::vector<std::size_t>& chunk_sizes,
    std::size_t max_line = mm::limits::command_line)
{
    CommandReader reader(max_line);
    std::vector<std::string> events;
    std::string buffer;
    std::size_t pos = 0;
    std::size_t k = 0;
    while (pos < input.size()) {
        std::size_t n = chunk_sizes.empty() ? input.size() : chunk_sizes[k++ % chunk_sizes.size()];
        n = std::min(n, input.size() - pos);
        buffer.append(input.substr(pos, n));
        pos += n;
        while (true) {
            CommandReader::Outcome o = reader.next(buffer);
            std::string event;
            if (o.status == CommandReader::Status::line)
                event = "L:" + std::string(o.line);
            else if (o.status == CommandReader::Status::refused)
                event
                    = "R:" + std::to_string(o.refusal.code) + " " + o.refusal.enhanced + " " + o.refusal.text;
            buffer.erase(0, o.consumed);
            if (o.status == CommandReader::Status::need_more)
                break;
            events.push_back(event);
        }
        // Never more than one line's worth kept between reads.
        REQUIRE(buffer.size() < max_line);
    }
    return events;
}

// --- DATA reader ---

struct DataResult {
    bool finished = false;
    std::size_t consumed = 0; // of the whole input
    std::string content;
    DataRefusal refusal = DataRefusal::none;
    std::uint64_t received = 0;

    bool operator==(const DataResult&) const = default;
};

DataResult read_data(
    std::string_view input, const std::vector<std::size_t>& chunk_sizes, const DataLimits& limits = {})
{
    DataReader reader(limits);
    DataResult result;
    std::size_t pos = 0;
    std::size_t k = 0;
    while (pos < input.size() && !reader.finished()) {
        std::size_t n = chunk_sizes.empty() ? input.size() : chunk_sizes[k++ % chunk_sizes.size()];
        n = std::min(n, input.size() - pos);
        DataReader::Progress p = reader.feed(input.substr(pos, n), result.content);
        REQUIRE(p.consumed <= n);
        REQUIRE((p.finished || p.consumed == n));
        result.consumed += p.consumed;
        pos += n;
    }
    result.finished = reader.finished();
    result.refusal = reader.refusal();
    result.received = reader.received();
    return result;
}

DataResult read_data_whole(std::string_view input, const DataLimits& limits = {})
{
    return read_data(input, {}, limits);
}

// The same input fed whole, byte by byte, split in two at every offset, and
// in random pieces: every way must give the same result.
DataResult read_data_every_way(std::string_view input, const DataLimits& limits = {})
{
    DataResult whole = read_data_whole(input, limits);
    INFO("input: " << shown(input));
    CHECK(read_data(input, { 1 }, limits) == whole);
    for (std::size_t split = 1; split < input.size(); ++split)
        CHECK(read_data(input, { split, input.size() }, limits) == whole);
    std::mt19937 random(12345);
    for (int round = 0; round < 20; ++round) {
        std::vector<std::size_t> sizes;
        for (int i = 0; i < 16; ++i)
            sizes.push_back(std::uniform_int_distribution<std::size_t>(1, 7)(random));
        CHECK(read_data(input, sizes, limits) == whole);
    }
    return whole;
}

const ParseOptions esmtp { .qualify_domain = "example.org", .esmtp = true, .max_message_size = 10'000'000 };
const ParseOptions helo_only {
    .qualify_domain = "example.org", .esmtp = false, .max_message_size = 10'000'000
};

} // namespace

// --- command lines ---

TEST_CASE("command reader: a CRLF line, need more, several lines in one buffer")
{
    CommandReader reader;
    auto o = reader.next("EHLO");
    CHECK(o.status == CommandReader::Status::need_more);
    CHECK(o.consumed == 0);
    o = reader.next("EHLO client.example\r");
    CHECK(o.status == CommandReader::Status::need_more);
    o = reader.next("EHLO client.example\r\nMAIL FROM:<a@b>\r\n");
    REQUIRE(o.status == CommandReader::Status::line);
    CHECK(o.line == "EHLO client.example");
    CHECK(o.consumed == 21);
    CHECK(read_commands("NOOP\r\nQUIT\r\n", {}) == std::vector<std::string> { "L:NOOP", "L:QUIT" });
    CHECK(read_commands("\r\n", {}) == std::vector<std::string> { "L:" });
}

TEST_CASE("command reader: 511, 512 octets accepted, 513 refused, then reading goes on")
{
    for (std::size_t total : { 511u, 512u, 513u, 1023u, 1024u, 1025u, 4096u, 65536u }) {
        INFO("line of " << total << " octets with CRLF");
        std::string line = "NOOP " + std::string(total - 7, 'x');
        std::string input = line + "\r\nQUIT\r\n";
        std::vector<std::string> expected;
        if (total <= 512)
            expected = { "L:" + line, "L:QUIT" };
        else
            expected = { "R:500 5.5.2 Line too long", "L:QUIT" };
        CHECK(read_commands(input, {}) == expected);
        CHECK(read_commands(input, { 1 }) == expected);
        CHECK(read_commands(input, { 100, 3, 511 }) == expected);
    }
}

TEST_CASE("command reader: a long line is dropped as it comes and refused once at its LF")
{
    CommandReader reader;
    std::string junk(600, 'x');
    auto o = reader.next(junk);
    CHECK(o.status == CommandReader::Status::need_more);
    CHECK(o.consumed == 600);
    CHECK(reader.discarding());
    for (int i = 0; i < 1000; ++i) {
        o = reader.next(junk);
        CHECK(o.status == CommandReader::Status::need_more);
        CHECK(o.consumed == 600);
    }
    o = reader.next("xx\nNOOP\r\n");
    CHECK(o.status == CommandReader::Status::refused);
    CHECK(o.consumed == 3);
    CHECK(o.refusal == Reply { 500, "5.5.2", "Line too long" });
    o = reader.next("NOOP\r\n");
    CHECK(o.status == CommandReader::Status::line);
    CHECK(!reader.discarding());
}

TEST_CASE("command reader: bare LF, bare CR, NUL, controls and 8-bit bytes are refused with 500 5.5.2")
{
    struct Case {
        std::string input;
        std::string text;
    };
    const std::vector<Case> cases {
        { "HELO x\n", "Bare LF received; commands end with CRLF" },
        { "\n", "Bare LF received; commands end with CRLF" },
        { "HELO x\r\r\n", "Bare CR received; commands end with CRLF" },
        { "HELO x\rMAIL FROM:<a@b>\r\n", "Bare CR received; commands end with CRLF" },
        { "MAIL FROM:<a\0@b>\r\n"s, "NUL character in command" },
        { "\0\r\n"s, "NUL character in command" },
        { "MAIL FROM:<\xc3\xa9@b>\r\n", "8-bit character in command; SMTPUTF8 is not offered" },
        { "EHLO \x1b[31m\r\n", "Control character in command" },
        { "NOOP \x7f\r\n", "Control character in command" },
    };
    for (const auto& c : cases) {
        INFO(shown(c.input));
        auto events = read_commands(c.input + "QUIT\r\n", { 1 });
        CHECK(events == std::vector<std::string> { "R:500 5.5.2 " + c.text, "L:QUIT" });
        CHECK(read_commands(c.input + "QUIT\r\n", {}) == events);
    }
    CHECK(read_commands("HELO\tx\r\n", {}) == std::vector<std::string> { "L:HELO\tx" });
}

TEST_CASE("command reader: any chunking of a pipelined stream gives the same events")
{
    const std::string input = "EHLO a\r\nMAIL FROM:<a@b>\r\n" + std::string(700, 'y')
        + "\r\nRCPT TO:<c@d>\n\r\nDATA\r\n" + "x\0y\r\n"s + "QUIT\r\n";
    auto whole = read_commands(input, {});
    CHECK(whole.size() == 8);
    for (std::size_t split = 1; split < input.size(); ++split)
        CHECK(read_commands(input, { split, input.size() }) == whole);
    std::mt19937 random(777);
    for (int round = 0; round < 50; ++round) {
        std::vector<std::size_t> sizes;
        for (int i = 0; i < 10; ++i)
            sizes.push_back(std::uniform_int_distribution<std::size_t>(1, 600)(random));
        CHECK(read_commands(input, sizes) == whole);
    }
}

// --- commands ---

TEST_CASE("parse_command: verbs match whole and case-insensitively")
{
    struct Case {
        std::string line;
        Verb verb;
        std::string argument;
    };
    const std::vector<Case> cases {
        { "EHLO client.example", Verb::ehlo, "client.example" },
        { "ehlo [192.0.2.1]", Verb::ehlo, "[192.0.2.1]" },
        { "HeLo  client ", Verb::helo, "client" },
        { "DATA", Verb::data, "" },
        { "rset", Verb::rset, "" },
        { "NOOP", Verb::noop, "" },
        { "NOOP anything at all", Verb::noop, "anything at all" },
        { "QUIT", Verb::quit, "" },
        { "VRFY postmaster", Verb::vrfy, "postmaster" },
        { "EXPN staff", Verb::expn, "staff" },
        { "HELP", Verb::help, "" },
        { "HELP MAIL", Verb::help, "MAIL" },
        { "StartTLS", Verb::starttls, "" },
        { "  NOOP", Verb::noop, "" },
        { "QUIT  ", Verb::quit, "" },
    };
    for (const auto& c : cases) {
        INFO(c.line);
        auto p = parse_command(c.line, esmtp);
        REQUIRE(!p.refused);
        CHECK(p.command.verb == c.verb);
        CHECK(p.command.argument == c.argument);
    }
}

TEST_CASE("parse_command: syntax errors and their reply codes")
{
    struct Case {
        std::string line;
        int code;
        std::string enhanced;
    };
    const std::vector<Case> cases {
        { "", 500, "5.5.2" },
        { "   ", 500, "5.5.2" },
        { "FOO", 500, "5.5.1" },
        { "HELOX foo", 500, "5.5.1" },
        { "MAILFROM:<a@b>", 500, "5.5.1" },
        { "AUTH PLAIN", 500, "5.5.1" },
        { "TURN", 500, "5.5.1" },
        { "BDAT 10", 500, "5.5.1" },
        { "EHLO", 501, "5.5.4" },
        { "HELO   ", 501, "5.5.4" },
        { "VRFY", 501, "5.5.4" },
        { "EXPN", 501, "5.5.4" },
        { "DATA x", 501, "5.5.4" },
        { "RSET now", 501, "5.5.4" },
        { "QUIT please", 501, "5.5.4" },
        { "STARTTLS x", 501, "5.5.4" },
        { "MAIL", 501, "5.5.4" },
        { "MAIL TO:<a@b>", 501, "5.5.4" },
        { "MAIL FROM <a@b>", 501, "5.5.4" },
        { "MAIL FROM :<a@b>", 501, "5.5.4" },
        { "MAIL FROM:", 501, "5.1.7" },
        { "MAIL FROM:a@b", 501, "5.1.7" },
        { "MAIL FROM:<a@b", 501, "5.1.7" },
        { "MAIL FROM:<@>", 501, "5.1.7" },
        { "MAIL FROM:<a@>", 501, "5.1.7" },
        { "MAIL FROM:<@a>", 501, "5.1.7" },
        { "MAIL FROM:< @a>", 501, "5.1.7" },
        { "MAIL FROM:<a@ >", 501, "5.1.7" },
        { "MAIL FROM:<a@b..c>", 501, "5.1.7" },
        { "MAIL FROM:<a@b>x", 501, "5.5.4" },
        { "MAIL FROM:<" + std::string(250, 'a') + "@b.example>", 501, "5.1.7" },
        { "RCPT", 501, "5.5.4" },
        { "RCPT FROM:<a@b>", 501, "5.5.4" },
        { "RCPT TO:", 501, "5.1.3" },
        { "RCPT TO:<>", 501, "5.1.3" },
        { "RCPT TO:c@d", 501, "5.1.3" },
        { "RCPT TO:<c@d", 501, "5.1.3" },
        { "RCPT TO:<@c>", 501, "5.1.3" },
        { "MAIL FROM:<a@b> FOO=bar", 555, "5.5.4" },
        { "MAIL FROM:<a@b> SMTPUTF8", 555, "5.5.4" },
        { "MAIL FROM:<a@b> RET=HDRS", 555, "5.5.4" },
        { "RCPT TO:<c@d> SIZE=10", 555, "5.5.4" },
        { "RCPT TO:<c@d> NOTIFY=NEVER", 555, "5.5.4" },
        { "MAIL FROM:<a@b> SIZE", 501, "5.5.4" },
        { "MAIL FROM:<a@b> SIZE=", 501, "5.5.4" },
        { "MAIL FROM:<a@b> SIZE=-1", 501, "5.5.4" },
        { "MAIL FROM:<a@b> SIZE=+1", 501, "5.5.4" },
        { "MAIL FROM:<a@b> SIZE=1k", 501, "5.5.4" },
        { "MAIL FROM:<a@b> SIZE=1 SIZE=2", 501, "5.5.4" },
        { "MAIL FROM:<a@b> SIZE=99999999999999999999999", 552, "5.3.4" },
        { "MAIL FROM:<a@b> SIZE=18446744073709551616", 552, "5.3.4" },
        { "MAIL FROM:<a@b> SIZE=10000001", 552, "5.3.4" },
        { "MAIL FROM:<a@b> BODY=BINARYMIME", 501, "5.5.4" },
        { "MAIL FROM:<a@b> BODY=", 501, "5.5.4" },
        { "MAIL FROM:<a@b> BODY=7BIT BODY=7BIT", 501, "5.5.4" },
        { "MAIL FROM:<a@b> =x", 501, "5.5.4" },
        { "MAIL FROM:<a@b> -X=1", 501, "5.5.4" },
        { "MAIL FROM:<a@b> SIZE=1=2", 501, "5.5.4" },
    };
    for (const auto& c : cases) {
        INFO(c.line);
        auto p = parse_command(c.line, esmtp);
        REQUIRE(p.refused);
        CHECK(p.refused->code == c.code);
        CHECK(p.refused->enhanced == c.enhanced);
        CHECK(!p.refused->text.empty());
    }
}

TEST_CASE("parse_command: MAIL FROM paths, null sender, source routes, parameters")
{
    auto p = parse_command("MAIL FROM:<a@b.example>", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.verb == Verb::mail);
    CHECK(p.command.address.path() == "<a@b.example>");
    CHECK(!p.command.unqualified);
    CHECK(!p.command.size);
    CHECK(p.command.body == Body::unspecified);

    p = parse_command("mail from: <a@b.example>", esmtp); // Postfix-style leniency
    REQUIRE(!p.refused);
    CHECK(p.command.address.path() == "<a@b.example>");

    p = parse_command("MAIL FROM:<>", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.address.is_null());

    p = parse_command("MAIL FROM:<@relay.one,@relay.two:u@d.example>", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.address.path() == "<u@d.example>");

    p = parse_command("MAIL FROM:<a@b> SIZE=1000 body=8bitmime", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.size == 1000u);
    CHECK(p.command.body == Body::eight_bit_mime);

    p = parse_command("MAIL FROM:<> BODY=7BIT  SIZE=10000000", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.size == 10000000u);
    CHECK(p.command.body == Body::seven_bit);

    p = parse_command("MAIL FROM:<a@b> SIZE=0", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.size == 0u);
}

TEST_CASE("parse_command: RCPT TO paths, postmaster, unqualified addresses")
{
    auto p = parse_command("RCPT TO:<c@d.example>", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.verb == Verb::rcpt);
    CHECK(p.command.address.path() == "<c@d.example>");

    p = parse_command("RCPT TO:<@hop:c@d.example>", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.address.path() == "<c@d.example>");

    for (const char* line : { "RCPT TO:<postmaster>", "RCPT TO:<Postmaster>", "rcpt to: <POSTMASTER>" }) {
        INFO(line);
        p = parse_command(line, esmtp);
        REQUIRE(!p.refused);
        CHECK(!p.command.unqualified);
        CHECK(p.command.address.domain() == "example.org");
    }

    p = parse_command("RCPT TO:<joe>", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.unqualified);
    CHECK(p.command.address.path() == "<joe@example.org>");

    p = parse_command("MAIL FROM:<postmaster>", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.unqualified);

    p = parse_command("MAIL FROM:<joe>", esmtp);
    REQUIRE(!p.refused);
    CHECK(p.command.unqualified);
    CHECK(p.command.address.path() == "<joe@example.org>");

    // Without a qualify domain an unqualified path is a syntax error.
    const ParseOptions no_qualify { .qualify_domain = {}, .esmtp = true };
    p = parse_command("RCPT TO:<joe>", no_qualify);
    REQUIRE(p.refused);
    CHECK(p.refused->code == 501);
    CHECK(p.refused->enhanced == "5.1.3");
    p = parse_command("MAIL FROM:<joe>", no_qualify);
    REQUIRE(p.refused);
    CHECK(p.refused->enhanced == "5.1.7");
}

TEST_CASE("parse_command: parameters after HELO are refused with 555 5.5.4")
{
    for (const char* line :
        { "MAIL FROM:<a@b> SIZE=10", "MAIL FROM:<a@b> BODY=8BITMIME", "RCPT TO:<c@d> X=1" }) {
        INFO(line);
        auto p = parse_command(line, helo_only);
        REQUIRE(p.refused);
        CHECK(p.refused->code == 555);
        CHECK(p.refused->enhanced == "5.5.4");
    }
    CHECK(!parse_command("MAIL FROM:<a@b>  ", helo_only).refused);
}

TEST_CASE("parse_command: a line the reader would refuse is refused here too")
{
    for (std::string line : { "MAIL FROM:<a\0@b>"s, "NOOP \r"s, "HELO \xff"s, "HELO x\n"s }) {
        INFO(shown(line));
        auto p = parse_command(line, esmtp);
        REQUIRE(p.refused);
        CHECK(p.refused->code == 500);
        CHECK(p.refused->enhanced == "5.5.2");
    }
}

// --- DATA ---

TEST_CASE("DATA: plain message, CRLF to LF, stops right after the terminator")
{
    const std::string input = "Subject: hi\r\n\r\nline one\r\nline two\r\n.\r\nQUIT\r\n";
    DataResult r = read_data_every_way(input);
    CHECK(r.finished);
    CHECK(r.consumed == input.size() - 6);
    CHECK(r.refusal == DataRefusal::none);
    CHECK(r.content == "Subject: hi\n\nline one\nline two\n");
    CHECK(r.received == input.size() - 6 - 3);
}

TEST_CASE("DATA: the empty message and a message of one empty line")
{
    DataResult r = read_data_every_way(".\r\nNOOP\r\n");
    CHECK(r.finished);
    CHECK(r.consumed == 3);
    CHECK(r.content.empty());
    CHECK(r.received == 0);
    CHECK(r.refusal == DataRefusal::none);

    r = read_data_every_way("\r\n.\r\n");
    CHECK(r.finished);
    CHECK(r.content == "\n");
}

TEST_CASE("DATA: dot-unstuffing")
{
    DataResult r = read_data_every_way("..\r\n...\r\n.x\r\na.b\r\n..\r\n.\r\n");
    CHECK(r.finished);
    CHECK(r.refusal == DataRefusal::none);
    CHECK(r.content == ".\n..\nx\na.b\n.\n");
    r = read_data_every_way("..\r\n.\r\n");
    CHECK(r.content == ".\n");
}

TEST_CASE("DATA: no end without the final CRLF.CRLF")
{
    for (std::string input : { "abc"s, "abc\r\n"s, "abc\r\n."s, "abc\r\n.\r"s, "abc\r\n.."s, "abc.\r\n"s }) {
        DataResult r = read_data_every_way(input);
        CHECK(!r.finished);
        CHECK(r.consumed == input.size());
    }
}

TEST_CASE("DATA: every smuggling payload (F1) is refused and never ends the data")
{
    struct Payload {
        std::string bytes;
        DataRefusal refusal;
    };
    const std::vector<Payload> payloads {
        { "\n.\n", DataRefusal::bad_line_ending },
        { "\n.\r\n", DataRefusal::bad_line_ending },
        { "\r\n.\n", DataRefusal::bad_line_ending },
        { "\r.\r", DataRefusal::bad_line_ending },
        { "\r.\r\n", DataRefusal::bad_line_ending },
        { "\r\n\0.\r\n"s, DataRefusal::nul },
        { "\r\n.\0\r\n"s, DataRefusal::nul },
        { "\n\n.\r\n", DataRefusal::bad_line_ending },
        { "\r\r\n.\r\r\n", DataRefusal::bad_line_ending },
        { "\r\n.\r\r\n", DataRefusal::bad_line_ending },
        { "\r\n.\r.\r\n", DataRefusal::bad_line_ending },
        { "\r\n\r.\r\n", DataRefusal::bad_line_ending },
    };
    const std::string smuggled = "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.org>\r\n"
                                 "DATA\r\nFrom: ceo@example.org\r\n\r\nsmuggled\r\n";
    for (const auto& p : payloads) {
        for (std::string before : { "Subject: x\r\n\r\nhello"s, ""s }) {
            const std::string message = before + p.bytes + smuggled + ".\r\n";
            const std::string input = message + "QUIT\r\n";
            DataResult r = read_data_every_way(input);
            INFO(shown(input));
            CHECK(r.finished);
            CHECK(r.consumed == message.size()); // exactly one end: the real one
            CHECK(r.refusal == p.refusal);
        }
    }
    // "\r\n.\r" at the end of the stream: no end at all.
    DataResult r = read_data_every_way("hello\r\n.\r");
    CHECK(!r.finished);
}

TEST_CASE("DATA: a message of bare LFs is consumed to its real end and refused once")
{
    const std::string message = "line\nline\n.\nmore\n.\r\nstill data\r\n.\r\n";
    DataResult r = read_data_every_way(message + "NOOP\r\n");
    CHECK(r.finished);
    CHECK(r.consumed == message.size());
    CHECK(r.refusal == DataRefusal::bad_line_ending);
    DataReader reader;
    std::string content;
    (void)reader.feed(message, content);
    CHECK(reader.refusal_reply()
        == Reply { 550, "5.5.2", "Bare CR or LF in message data; lines must end with CRLF" });
    CHECK(content == "line"); // nothing stored after the refusal
}

TEST_CASE("DATA: NUL bytes refuse the message with 554 5.6.0")
{
    const std::string input = "a\0b\r\n.\r\n"s;
    DataResult r = read_data_every_way(input);
    CHECK(r.finished);
    CHECK(r.refusal == DataRefusal::nul);
    DataReader reader;
    std::string content;
    (void)reader.feed(input, content);
    CHECK(reader.refusal_reply().code == 554);
    CHECK(reader.refusal_reply().enhanced == "5.6.0");
}

TEST_CASE("DATA: text lines of 998 octets pass, 999, 1000, 1001 are refused with 552 5.3.4")
{
    for (std::size_t length : { 997u, 998u, 999u, 1000u, 1001u }) {
        INFO("line of " << length << " octets before CRLF");
        const std::string message = "a\r\n" + std::string(length, 'x') + "\r\nb\r\n.\r\n";
        DataResult r = read_data_every_way(message + "QUIT\r\n");
        CHECK(r.finished);
        CHECK(r.consumed == message.size());
        CHECK(r.refusal == (length <= 998 ? DataRefusal::none : DataRefusal::line_too_long));
    }
    // The stuffing dot is not counted (RFC 5321 §4.5.3.1.6).
    DataResult r = read_data_whole("." + std::string(998, '.') + "\r\n.\r\n");
    CHECK(r.refusal == DataRefusal::none);
    CHECK(r.content == std::string(998, '.') + "\n");
    DataReader reader;
    std::string content;
    (void)reader.feed(std::string(2000, 'x') + "\r\n.\r\n", content);
    CHECK(reader.refusal_reply() == Reply { 552, "5.3.4", "Message has a line longer than 1000 octets" });
}

TEST_CASE("DATA: the line limit can be raised up to text_line_accepted, never lowered")
{
    const std::string long_line = std::string(5000, 'x') + "\r\n.\r\n";
    CHECK(read_data_whole(long_line, DataLimits { .max_line = 5002 }).refusal == DataRefusal::none);
    CHECK(read_data_whole(long_line, DataLimits { .max_line = 5001 }).refusal == DataRefusal::line_too_long);
    CHECK(read_data_whole(std::string(998, 'x') + "\r\n.\r\n", DataLimits { .max_line = 10 }).refusal
        == DataRefusal::none);
    const std::string huge = std::string(mm::limits::text_line_accepted, 'x') + "\r\n.\r\n";
    CHECK(read_data_whole(huge, DataLimits { .max_line = 1u << 30 }).refusal == DataRefusal::line_too_long);
}

TEST_CASE("DATA: the size limit counts octets as received; beyond it nothing more is stored")
{
    // 10 octets: "01234567\r\n".
    DataResult r = read_data_every_way("01234567\r\n.\r\n", DataLimits { .max_message_size = 10 });
    CHECK(r.refusal == DataRefusal::none);
    CHECK(r.received == 10);
    r = read_data_every_way("012345678\r\n.\r\n", DataLimits { .max_message_size = 10 });
    CHECK(r.finished);
    CHECK(r.refusal == DataRefusal::too_big);
    // Stuffing dots are transparency, not message octets (RFC 1870 counts
    // the message, not its transmission).
    r = read_data_every_way("..2345678\r\n.\r\n", DataLimits { .max_message_size = 10 });
    CHECK(r.refusal == DataRefusal::none);
    CHECK(r.received == 10);
    r = read_data_every_way("...3456789\r\n.\r\n", DataLimits { .max_message_size = 10 });
    CHECK(r.refusal == DataRefusal::too_big);

    DataReader reader(DataLimits { .max_message_size = 1000 });
    std::string content;
    const std::string block = std::string(80, 'z') + "\r\n";
    for (int i = 0; i < 100000; ++i)
        (void)reader.feed(block, content);
    CHECK(content.size() <= 1000);
    CHECK(reader.received() == 100000u * block.size());
    auto p = reader.feed(".\r\nQUIT\r\n", content);
    CHECK(p.finished);
    CHECK(p.consumed == 3);
    CHECK(reader.refusal() == DataRefusal::too_big);
    CHECK(
        reader.refusal_reply() == Reply { 552, "5.3.4", "Message size exceeds fixed maximum message size" });
}

TEST_CASE("DATA: 8-bit and other control bytes pass unchanged")
{
    DataResult r = read_data_every_way("caf\xc3\xa9\t\x01\x7f\r\n.\r\n");
    CHECK(r.refusal == DataRefusal::none);
    CHECK(r.content == "caf\xc3\xa9\t\x01\x7f\n");
}

TEST_CASE("DATA: feeding after the end consumes nothing")
{
    DataReader reader;
    std::string content;
    auto p = reader.feed(".\r\n", content);
    CHECK(p.finished);
    p = reader.feed("MAIL FROM:<a@b>\r\n", content);
    CHECK(p.finished);
    CHECK(p.consumed == 0);
    CHECK(content.empty());
}

// --- replies ---

TEST_CASE("format_reply: one line, multi-line, enhanced codes")
{
    CHECK(format_reply(Reply { 250, "2.1.0", "Ok" }) == "250 2.1.0 Ok\r\n");
    CHECK(format_reply(Reply { 354, "", "End data with <CR><LF>.<CR><LF>" })
        == "354 End data with <CR><LF>.<CR><LF>\r\n");
    CHECK(format_reply(250, "", { "mail.example", "SIZE 1000", "PIPELINING", "HELP" })
        == "250-mail.example\r\n250-SIZE 1000\r\n250-PIPELINING\r\n250 HELP\r\n");
    CHECK(format_reply(214, "2.0.0", { "a", "b" }) == "214-2.0.0 a\r\n214 2.0.0 b\r\n");
    CHECK(format_reply(250, "", {}) == "250\r\n");
    CHECK(format_reply(250, "2.0.0", {}) == "250 2.0.0\r\n");
    CHECK(format_reply(250, "", { "", "x" }) == "250-\r\n250 x\r\n");
    // A malformed enhanced code, or one of another class, is left out.
    CHECK(format_reply(Reply { 550, "4.1.1", "x" }) == "550 x\r\n");
    CHECK(format_reply(Reply { 550, "5.1", "x" }) == "550 x\r\n");
    CHECK(format_reply(Reply { 550, "5.1.1234", "x" }) == "550 x\r\n");
    CHECK(format_reply(Reply { 550, "5.1.1 ", "x" }) == "550 x\r\n");
    CHECK(format_reply(Reply { 550, "5.1.1\r\n250", "x" }) == "550 x\r\n");
    CHECK(format_reply(Reply { 550, "5.1.10", "x" }) == "550 5.1.10 x\r\n");
    CHECK_THROWS_AS(format_reply(Reply { 199, "", "x" }), std::invalid_argument);
    CHECK_THROWS_AS(format_reply(Reply { 600, "", "x" }), std::invalid_argument);
}

TEST_CASE("format_reply: no CR, LF, NUL, control or 8-bit byte gets through")
{
    CHECK(
        format_reply(Reply { 550, "5.1.1", "<a@b>\r\n250 2.0.0 Ok" }) == "550 5.1.1 <a@b>??250 2.0.0 Ok\r\n");
    CHECK(format_reply(Reply { 550, "", "a\nb\rc\0d\x1b\x7f\xff"s }) == "550 a?b?c?d???\r\n");
    CHECK(format_reply(250, "", { "one\r\n250 forged", "two" }) == "250-one??250 forged\r\n250 two\r\n");
}

TEST_CASE("format_reply: every line fits in 512 octets with its CRLF")
{
    std::string out = format_reply(Reply { 250, "2.0.0", std::string(2000, 'x') });
    CHECK(out.size() == mm::limits::reply_line);
    CHECK(out.substr(out.size() - 2) == "\r\n");
    out = format_reply(250, "", { std::string(600, 'a'), std::string(600, 'b') });
    CHECK(out.size() == 2 * mm::limits::reply_line);
}
