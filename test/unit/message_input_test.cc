// SPDX-License-Identifier: GPL-2.0-or-later
// Local submission reader: masqmail's dot rules with and without -i, line
// endings, NUL, the size and line limits at N and N+1, and reading from an fd.
#include "catch.hh"
#include "mm/limits.hh"
#include "mm/message_input.hh"

#include <string>
#include <unistd.h>

using mm::LocalMessageReader;

namespace {

constexpr std::uint64_t big = 1u << 20;

// Feeds `input` in pieces of `chunk` bytes (0: all at once).
mm::Result<std::string> read_string(std::string_view input, bool dots, std::uint64_t max = big,
    std::size_t chunk = 0)
{
    LocalMessageReader reader(dots, max);
    std::size_t step = chunk == 0 ? input.size() : chunk;
    for (std::size_t i = 0; i < input.size(); i += step) {
        auto ended = reader.feed(input.substr(i, step));
        if (!ended)
            return std::move(ended).error();
        if (*ended)
            break;
    }
    return reader.finish();
}

struct Case {
    const char* name;
    std::string input;
    std::string with_dots;  // without -i
    std::string verbatim;   // with -i
};

} // namespace

TEST_CASE("dot rules and line endings, with and without -i")
{
    const Case cases[] = {
        { "plain", "a\nb\n", "a\nb\n", "a\nb\n" },
        { "double dot", "..\n", ".\n", "..\n" },
        { "any leading dot is dropped", ".foo\n..bar\n", "foo\n.bar\n", ".foo\n..bar\n" },
        { "lone dot ends input", "a\n.\nb\n", "a\n", "a\n.\nb\n" },
        { "lone dot at the very start", ".\nb\n", "", ".\nb\n" },
        { "unterminated lone dot at EOF ends", "a\n.", "a\n", "a\n.\n" },
        { "dot with trailing space is not the end", ". \nx\n", " \nx\n", ". \nx\n" },
        { "EOF without dot", "a\nb", "a\nb\n", "a\nb\n" },
        { "CRLF", "a\r\nb\r\n.\r\nc\r\n", "a\nb\n", "a\nb\n.\nc\n" },
        { "CRLF dot-dot", "..\r\n", ".\n", "..\n" },
        { "lone CR is a line break", "a\rb\r\n", "a\nb\n", "a\nb\n" },
        { "CR CR LF is two line breaks", "a\r\r\nb", "a\n\nb\n", "a\n\nb\n" },
        { "lone CR before dot ends", "a\r.\rb", "a\n", "a\n.\nb\n" },
        { "CR at EOF", "a\r", "a\n", "a\n" },
        { "empty input", "", "", "" },
        { "empty lines kept", "\n\n", "\n\n", "\n\n" },
        { "8-bit kept", "\xc3\xa4\xff\n", "\xc3\xa4\xff\n", "\xc3\xa4\xff\n" },
    };
    for (const auto& c : cases) {
        for (std::size_t chunk : { 0, 1, 2, 3 }) {
            INFO(c.name << " chunk " << chunk);
            auto dots = read_string(c.input, true, big, chunk);
            REQUIRE(dots);
            CHECK(*dots == c.with_dots);
            auto raw = read_string(c.input, false, big, chunk);
            REQUIRE(raw);
            CHECK(*raw == c.verbatim);
        }
    }
}

TEST_CASE("a NUL byte is refused in either mode")
{
    for (bool dots : { true, false }) {
        auto r = read_string(std::string("a\n\0b\n", 5), dots);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == mm::ErrorKind::permanent);
        CHECK(r.error().message() == "message contains NUL");
    }
    // After the terminating dot nothing is read, NUL or not.
    CHECK(read_string(std::string(".\n\0", 3), true));
}

TEST_CASE("the size limit holds at N and refuses N+1 octets")
{
    // "abc\n" is 4 canonical octets; CRLF input counts as its LF form.
    CHECK(*read_string("abc\r\n", false, 4) == "abc\n");
    auto over = read_string("abcd\n", false, 4);
    REQUIRE_FALSE(over);
    CHECK(over.error().kind() == mm::ErrorKind::permanent);
    CHECK(over.error().message() == "message too large (limit 4 bytes)");
    // The LF added to an unterminated last line counts.
    CHECK_FALSE(read_string("abcd", false, 4));
    CHECK(read_string("abc", false, 4));
    // A removed dot does not count.
    CHECK(*read_string("..ab\n", true, 4) == ".ab\n");
}

TEST_CASE("a line over text_line_accepted is refused")
{
    const std::size_t n = mm::limits::text_line_accepted;
    CHECK(read_string(std::string(n, 'x') + "\n", false, big, 4096));
    CHECK(read_string(std::string(n, 'x'), false, big, 4096));
    auto r = read_string(std::string(n + 1, 'x') + "\n", false, big, 4096);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == mm::ErrorKind::permanent);
    // A CRLF line of n content octets is fine: the line ending does not count.
    CHECK(read_string(std::string(n, 'x') + "\r\n", true, big, 7));
}

TEST_CASE("read_local_message reads an fd to the dot or EOF")
{
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    mm::Fd rd(fds[0]), wr(fds[1]);
    const std::string text = "Subject: x\r\n\r\n..a\r\n.\r\nnot read\r\n";
    REQUIRE(::write(wr.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    wr.reset();
    auto r = mm::read_local_message(rd, true, big);
    REQUIRE(r);
    CHECK(*r == "Subject: x\n\n.a\n");

    REQUIRE(::pipe(fds) == 0);
    rd = mm::Fd(fds[0]);
    wr = mm::Fd(fds[1]);
    REQUIRE(::write(wr.get(), "a\n.\nb", 5) == 5);
    wr.reset();
    r = mm::read_local_message(rd, false, big);
    REQUIRE(r);
    CHECK(*r == "a\n.\nb\n");

    auto bad = mm::read_local_message(mm::Fd(), false, big);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().is_temporary());
}
