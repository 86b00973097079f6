// SPDX-License-Identifier: GPL-2.0-or-later
#include "spool_fixture.hh"

#include "mm/limits.hh"
#include "mm/spool_record.hh"
#include "mm/state_file.hh"

using mm::DeliveryState;
using mm::RecipientState;
using mm::test::sample_envelope;
using mm::test::SpoolDir;

namespace {

const mm::QueueId test_id = *mm::QueueId::parse("1700000000.0123456789abcdef");

DeliveryState sample_state()
{
    DeliveryState s = DeliveryState::all_pending(3);
    s.last_warning = 1700003600;
    s.online_seconds = 5400;
    s.recipients[0].state = RecipientState::delivered;
    s.recipients[0].attempts = 1;
    s.recipients[0].first_attempt = s.recipients[0].last_attempt = 1700000010;
    s.recipients[1].state = RecipientState::pending;
    s.recipients[1].attempts = 4;
    s.recipients[1].first_attempt = 1700000010;
    s.recipients[1].last_attempt = 1700003000;
    s.recipients[1].next_attempt = 1700004000;
    s.recipients[1].last_error = "451 4.7.1 Greylisted, try again later";
    s.recipients[2].state = RecipientState::failed;
    s.recipients[2].finished_leaves = { { "bob@example.org", true }, { "|/usr/bin/procmail", false } };
    return s;
}

std::string rec(std::string_view tag, std::string_view value)
{
    return std::string(tag) + std::to_string(value.size()) + ":" + std::string(value) + "\n";
}

// Records after the magic line, sealed with a correct END record.
std::string sealed(const std::string& records)
{
    std::string file = std::string(mm::state_file::magic) + records + "EN8:";
    return file + mm::spool_record::format_crc(mm::spool_record::crc32c(file)) + "\n";
}

} // namespace

TEST_CASE("state file round trip")
{
    auto s = sample_state();
    auto bytes = mm::state_file::encode(test_id, s);
    REQUIRE(bytes);
    CHECK(bytes->starts_with(
        "masqmail-state 1\nQI27:1700000000.0123456789abcdef\nTW10:1700003600\nOS4:5400\nNR1:3\n"
        "RS37:0 delivered 1 1700000010 1700000010 0\n"));
    CHECK(bytes->find("RE37:451 4.7.1 Greylisted, try again later\n") != std::string::npos);
    CHECK(
        bytes->find("AL25:delivered bob@example.org\nAL25:failed |/usr/bin/procmail\n") != std::string::npos);
    auto parsed = mm::state_file::parse(*bytes);
    REQUIRE(parsed);
    CHECK(parsed->id == test_id);
    CHECK(parsed->state == s);
}

TEST_CASE("final states")
{
    CHECK_FALSE(mm::is_final(RecipientState::pending));
    CHECK_FALSE(mm::is_final(RecipientState::failed));
    CHECK(mm::is_final(RecipientState::delivered));
    CHECK(mm::is_final(RecipientState::dsn_sent));
    auto s = sample_state();
    CHECK_FALSE(s.all_final());
    s.recipients[1].state = RecipientState::delivered;
    s.recipients[2].state = RecipientState::dsn_sent;
    CHECK(s.all_final());
    CHECK(DeliveryState::all_pending(2).recipients.size() == 2);
}

TEST_CASE("error text from peers is made storable")
{
    CHECK(mm::sanitize_error_text("550 no\r\nsuch\x01user\xff") == "550 no??such?user?");
    CHECK(mm::sanitize_error_text(std::string(2000, 'x')).size() == mm::limits::error_text);
    auto s = sample_state();
    s.recipients[1].last_error = mm::sanitize_error_text("450 a\r\n.\r\nRCPT TO:<x>");
    auto bytes = mm::state_file::encode(test_id, s);
    REQUIRE(bytes);
    CHECK(mm::state_file::parse(*bytes)->state == s);
}

TEST_CASE("the encoder refuses what the parser would refuse")
{
    std::vector<std::function<void(DeliveryState&)>> breakers = {
        [](DeliveryState& s) { s.recipients[1].last_error = "a\nb"; },
        [](DeliveryState& s) { s.recipients[1].last_error = std::string("a\0b", 3); },
        [](DeliveryState& s) { s.recipients[1].last_error = std::string(mm::limits::error_text + 1, 'x'); },
        [](DeliveryState& s) {
            s.recipients[2].finished_leaves.push_back({ "", true });
        },
        [](DeliveryState& s) {
            s.recipients[2].finished_leaves.push_back({ "a\rb", true });
        },
        [](DeliveryState& s) { s.recipients[0].next_attempt = -5; },
        [](DeliveryState& s) { s.last_warning = mm::QueueId::max_seconds + 1; },
        [](DeliveryState& s) { s.recipients.clear(); },
        [](DeliveryState& s) { s.recipients.resize(mm::limits::recipients + 1); },
    };
    for (std::size_t i = 0; i < breakers.size(); ++i) {
        INFO("case " << i);
        auto s = sample_state();
        breakers[i](s);
        CHECK_FALSE(mm::state_file::encode(test_id, s));
    }
}

TEST_CASE("the largest values round trip")
{
    DeliveryState s = DeliveryState::all_pending(mm::limits::recipients);
    s.last_warning = s.online_seconds = mm::QueueId::max_seconds;
    auto& r = s.recipients.back();
    r.state = RecipientState::dsn_sent;
    r.attempts = UINT32_MAX;
    r.first_attempt = r.last_attempt = r.next_attempt = mm::QueueId::max_seconds;
    r.last_error = std::string(mm::limits::error_text, '~');
    r.finished_leaves = { { std::string(mm::limits::spool_envelope_field - 10, 'd'), true },
        { std::string(mm::limits::spool_envelope_field - 7, 'f'), false } };
    auto bytes = mm::state_file::encode(test_id, s);
    REQUIRE(bytes);
    auto parsed = mm::state_file::parse(*bytes);
    REQUIRE(parsed);
    CHECK(parsed->state == s);
    r.finished_leaves[1].key += 'f';
    CHECK_FALSE(mm::state_file::encode(test_id, s));
}

TEST_CASE("malformed state files are refused")
{
    const std::string qi = rec("QI", test_id.str());
    const std::string head = qi + rec("TW", "0") + rec("OS", "0");
    const std::string rs0 = rec("RS", "0 pending 0 0 0 0");
    REQUIRE(mm::state_file::parse(sealed(head + rec("NR", "1") + rs0)));
    const std::vector<std::pair<const char*, std::string>> table = {
        { "empty", "" },
        { "no recipients", head + rec("NR", "0") },
        { "count too big", head + rec("NR", "1001") + rs0 },
        { "fewer recipients than counted", head + rec("NR", "2") + rs0 },
        { "more recipients than counted", head + rec("NR", "1") + rs0 + rec("RS", "1 pending 0 0 0 0") },
        { "index out of order", head + rec("NR", "1") + rec("RS", "1 pending 0 0 0 0") },
        { "unknown state", head + rec("NR", "1") + rec("RS", "0 done 0 0 0 0") },
        { "attempts overflow", head + rec("NR", "1") + rec("RS", "0 pending 4294967296 0 0 0") },
        { "negative time", head + rec("NR", "1") + rec("RS", "0 pending 0 -1 0 0") },
        { "missing field", head + rec("NR", "1") + rec("RS", "0 pending 0 0 0") },
        { "extra field", head + rec("NR", "1") + rec("RS", "0 pending 0 0 0 0 0") },
        { "double space", head + rec("NR", "1") + rec("RS", "0 pending  0 0 0 0") },
        { "leading zero", head + rec("NR", "1") + rec("RS", "0 pending 01 0 0 0") },
        { "empty error", head + rec("NR", "1") + rs0 + rec("RE", "") },
        { "long error", head + rec("NR", "1") + rs0 + rec("RE", std::string(513, 'x')) },
        { "control byte in error", head + rec("NR", "1") + rs0 + rec("RE", "a\tb") },
        { "bad leaf", head + rec("NR", "1") + rs0 + rec("AL", "sent x@y") },
        { "empty leaf", head + rec("NR", "1") + rs0 + rec("AL", "delivered ") },
        { "error after leaf", head + rec("NR", "1") + rs0 + rec("AL", "delivered x@y") + rec("RE", "e") },
        { "unknown record", head + rec("NR", "1") + rs0 + rec("ZZ", "1") },
        { "bad id", rec("QI", "..") + rec("TW", "0") + rec("OS", "0") + rec("NR", "1") + rs0 },
        { "missing TW", qi + rec("OS", "0") + rec("NR", "1") + rs0 },
    };
    for (const auto& [what, records] : table) {
        INFO(what);
        auto p = mm::state_file::parse(sealed(records));
        REQUIRE_FALSE(p);
        CHECK(p.error().kind() == mm::ErrorKind::permanent);
    }
    CHECK_FALSE(mm::state_file::parse(std::string(mm::limits::state_file + 1, 'x')));
    std::string other_version = sealed(head + rec("NR", "1") + rs0);
    other_version[15] = '2';
    CHECK_FALSE(mm::state_file::parse(other_version));
}

TEST_CASE("a state file truncated or changed at any byte is refused")
{
    auto bytes = mm::state_file::encode(test_id, sample_state());
    REQUIRE(bytes);
    for (std::size_t cut = 0; cut < bytes->size(); ++cut) {
        INFO("cut at " << cut);
        CHECK_FALSE(mm::state_file::parse(std::string_view(*bytes).substr(0, cut)));
    }
    for (std::size_t at = 0; at < bytes->size(); ++at) {
        for (unsigned mask : { 0x01u, 0x20u, 0x80u, 0xffu }) {
            INFO("byte " << at << " xor " << mask);
            std::string bad = *bytes;
            bad[at] = static_cast<char>(static_cast<unsigned char>(bad[at]) ^ mask);
            CHECK_FALSE(mm::state_file::parse(bad));
        }
    }
}

TEST_CASE("spool state files: absent means pending, written atomically")
{
    SpoolDir s;
    auto id = s.commit(sample_envelope());
    REQUIRE(s.spool().claim_for_delivery(id));
    auto initial = s.spool().read_state(id, 2);
    REQUIRE(initial);
    CHECK(*initial == DeliveryState::all_pending(2));
    auto state = DeliveryState::all_pending(2);
    state.recipients[0].state = RecipientState::delivered;
    state.recipients[1].last_error = "421 closing";
    REQUIRE(s.spool().write_state(id, state));
    state.recipients[1].attempts = 2;
    REQUIRE(s.spool().write_state(id, state));
    auto back = s.spool().read_state(id, 2);
    REQUIRE(back);
    CHECK(*back == state);
    CHECK(s.count("queue") == 2); // no temporary file left behind
}

TEST_CASE("a bad state file quarantines the message with it")
{
    SpoolDir s;
    auto id = s.commit(sample_envelope());
    REQUIRE(s.spool().claim_for_delivery(id));
    REQUIRE(s.spool().write_state(id, DeliveryState::all_pending(2)));
    std::string good = s.read("queue", mm::state_file_name(id));
    std::size_t recipients = 2;
    SECTION("truncated")
    {
        s.write("queue", mm::state_file_name(id), good.substr(0, good.size() / 2));
    }
    SECTION("byte changed")
    {
        good[good.size() / 2] ^= 1;
        s.write("queue", mm::state_file_name(id), good);
    }
    SECTION("recipient count differs from the message's")
    {
        recipients = 3;
    }
    SECTION("state of another message")
    {
        auto other = mm::state_file::encode(
            *mm::QueueId::parse("1600000000.0000000000000001"), DeliveryState::all_pending(2));
        s.write("queue", mm::state_file_name(id), *other);
    }
    SECTION("symlink")
    {
        std::filesystem::remove(s.path("queue", mm::state_file_name(id)));
        REQUIRE(::symlink("/etc/passwd", s.path("queue", mm::state_file_name(id)).c_str()) == 0);
    }
    SECTION("too large")
    {
        s.write("queue", mm::state_file_name(id), std::string(mm::limits::state_file + 1, 'x'));
    }
    auto r = s.spool().read_state(id, recipients);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == mm::ErrorKind::permanent);
    CHECK(s.count("queue") == 0);
    CHECK(s.exists("corrupt", id.str()));
    CHECK(s.exists("corrupt", mm::state_file_name(id)));
}
