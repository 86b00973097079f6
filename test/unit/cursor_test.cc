// SPDX-License-Identifier: GPL-2.0-or-later
#include "catch.hh"
#include "mm/cursor.hh"
#include "mm/limits.hh"

#include <cstdint>
#include <limits>

using mm::Cursor;

TEST_CASE("cursor never reads past the end")
{
    Cursor c("ab");
    CHECK(c.next() == 'a');
    CHECK(c.next() == 'b');
    CHECK(c.at_end());
    CHECK(c.next() == '\0');
    CHECK(c.peek() == '\0');
    CHECK(c.peek_at(5) == '\0');
    c.skip(100);
    CHECK(c.pos() == 2);
    CHECK(c.rest().empty());
}

TEST_CASE("cursor consume and take")
{
    Cursor c("MAIL FROM:<a@b> SIZE=10");
    CHECK_FALSE(c.consume("mail"));
    CHECK(c.consume_nocase("mail from:"));
    CHECK(c.consume('<'));
    CHECK(c.take_until('>') == "a@b");
    CHECK(c.consume('>'));
    c.skip_while(mm::is_ascii_space);
    CHECK(c.take_while([](char x) { return x != '='; }) == "SIZE");
    CHECK(c.take_until('#') == "=10");
    CHECK(c.at_end());
    CHECK_FALSE(c.consume_nocase("x"));
}

TEST_CASE("parse_decimal accepts only a whole in-range number")
{
    CHECK(mm::parse_decimal<int>("0") == 0);
    CHECK(mm::parse_decimal<int>("2147483647") == 2147483647);
    CHECK_FALSE(mm::parse_decimal<int>("2147483648"));
    CHECK_FALSE(mm::parse_decimal<int>(""));
    CHECK_FALSE(mm::parse_decimal<int>("+1"));
    CHECK_FALSE(mm::parse_decimal<int>(" 1"));
    CHECK_FALSE(mm::parse_decimal<int>("1 "));
    CHECK_FALSE(mm::parse_decimal<int>("1x"));
    CHECK_FALSE(mm::parse_decimal<unsigned>("-1"));
    CHECK(mm::parse_decimal<int>("-5") == -5);
    CHECK(mm::parse_decimal<std::uint64_t>("18446744073709551615") == UINT64_MAX);
    CHECK_FALSE(mm::parse_decimal<std::uint64_t>("18446744073709551616"));
}

TEST_CASE("trim and case-insensitive compare")
{
    CHECK(mm::trim(" \t a b \t") == "a b");
    CHECK(mm::trim("   ").empty());
    CHECK(mm::equals_nocase("PostMaster", "postmaster"));
    CHECK_FALSE(mm::equals_nocase("postmaste", "postmaster"));
}

TEST_CASE("checked arithmetic refuses overflow")
{
    CHECK(mm::checked_add<std::uint32_t>(1, 2) == 3u);
    CHECK_FALSE(mm::checked_add<std::uint32_t>(UINT32_MAX, 1));
    CHECK_FALSE(mm::checked_mul<std::size_t>(SIZE_MAX / 2 + 1, 2));
    CHECK(mm::checked_mul<int>(-4, 5) == -20);
    CHECK_FALSE(mm::checked_add<int>(std::numeric_limits<int>::min(), -1));
}

TEST_CASE("limits keep the RFC minimums")
{
    STATIC_REQUIRE(mm::limits::recipients >= mm::limits::recipients_minimum);
    STATIC_REQUIRE(mm::limits::command_line == 512);
    STATIC_REQUIRE(mm::limits::text_line == 1000);
    STATIC_REQUIRE(mm::limits::path == 256);
    STATIC_REQUIRE(mm::limits::ipc_data_chunk < mm::limits::ipc_frame);
}
