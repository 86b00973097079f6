// SPDX-License-Identifier: GPL-2.0-or-later
#include "catch.hh"
#include "mm/fs.hh"
#include "mm/queue_id.hh"

#include <algorithm>
#include <ctime>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

TEST_CASE("generated queue ids have the fixed form and parse back")
{
    auto id = mm::QueueId::generate();
    REQUIRE(id);
    const std::string& s = id->str();
    CHECK(s.size() == mm::QueueId::length);
    CHECK(s[10] == '.');
    CHECK(mm::is_safe_name(s));
    auto again = mm::QueueId::parse(s);
    REQUIRE(again);
    CHECK(*again == *id);
    std::int64_t now = std::time(nullptr);
    CHECK(id->unix_seconds() <= now);
    CHECK(id->unix_seconds() >= now - 5);
}

TEST_CASE("queue ids from parts")
{
    auto a = mm::QueueId::from_parts(1700000000, 0x0123456789abcdefu);
    REQUIRE(a);
    CHECK(a->str() == "1700000000.0123456789abcdef");
    CHECK(a->unix_seconds() == 1700000000);
    auto zero = mm::QueueId::from_parts(0, 0);
    REQUIRE(zero);
    CHECK(zero->str() == "0000000000.0000000000000000");
    auto max = mm::QueueId::from_parts(mm::QueueId::max_seconds, ~0ull);
    REQUIRE(max);
    CHECK(max->str() == "9999999999.ffffffffffffffff");
    CHECK_FALSE(mm::QueueId::from_parts(-1, 0));
    CHECK_FALSE(mm::QueueId::from_parts(mm::QueueId::max_seconds + 1, 0));
}

TEST_CASE("queue id parser refuses every other name")
{
    const std::vector<std::string> bad = {
        "", ".", "..", "../x", "../1700000000.0123456789abcdef", "1700000000.0123456789abcdef/",
        "1700000000.0123456789abcde", // short
        "1700000000.0123456789abcdef0", // long
        "1700000000.0123456789ABCDEF", // upper case
        "1700000000.0123456789abcdeg", "1700000000-0123456789abcdef", "170000000.00123456789abcdef",
        "170000000a.0123456789abcdef", " 700000000.0123456789abcdef", "+700000000.0123456789abcdef",
        "-700000000.0123456789abcdef", "1700000000.0123456789abcdef.st", "1700000000.0123456789abcdef.tmp",
        std::string("1700000000.0123456789abcde\0", 27),
        std::string("1700000000\0"
                    "0123456789abcdef",
            27),
        "1700000000.0123456789abcd\n", std::string(4096, '1'),
        "1xUg19-2la-00", // masqmail 1.0's id form
    };
    for (const auto& name : bad) {
        INFO("name: " << name);
        auto id = mm::QueueId::parse(name);
        REQUIRE_FALSE(id);
        CHECK(id.error().kind() == mm::ErrorKind::permanent);
    }
}

TEST_CASE("queue ids order by time of arrival, then randomly")
{
    std::vector<mm::QueueId> ids;
    for (std::int64_t t : { 1700000300, 999999999, 1700000000, 1700000100 })
        ids.push_back(*mm::QueueId::generate_at(t));
    std::sort(ids.begin(), ids.end());
    CHECK(ids[0].unix_seconds() == 999999999);
    CHECK(ids[1].unix_seconds() == 1700000000);
    CHECK(ids[2].unix_seconds() == 1700000100);
    CHECK(ids[3].unix_seconds() == 1700000300);
    CHECK(*mm::QueueId::from_parts(5, 0xff) < *mm::QueueId::from_parts(5, 0x100));
}

TEST_CASE("queue ids generated in the same second are unique")
{
    std::unordered_set<mm::QueueId> seen;
    for (int i = 0; i < 10000; ++i) {
        auto id = mm::QueueId::generate_at(1700000000);
        REQUIRE(id);
        CHECK(seen.insert(*id).second);
    }
}
