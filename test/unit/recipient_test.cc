// SPDX-License-Identifier: GPL-2.0-or-later
// Recipient locality (masqmail §2.2), mailbox-name safety (A3) and log_user.
#include "catch.hh"
#include "mm/recipient.hh"

#include <string>
#include <vector>

using mm::Address;
using mm::config::MainConfig;

namespace {

Address address(const std::string& text)
{
    auto a = mm::parse_address(text, { .qualify_domain = "host.example" });
    REQUIRE(a);
    return *a;
}

MainConfig config(bool caseless = false)
{
    MainConfig cfg;
    cfg.host_name = "host.example";
    cfg.local_hosts = { "localhost", "host", "host.example", "*.lan" };
    cfg.local_addresses = { address("bob@remote.org"), address("Carol@remote.org") };
    cfg.not_local_addresses = { address("list@host.example"), address("Ext@host.example") };
    cfg.caseless_matching = caseless;
    return cfg;
}

} // namespace

TEST_CASE("is_local: local_hosts globs, local_addresses, not_local_addresses")
{
    struct Case {
        const char* address;
        bool local;
        bool local_caseless;
    };
    const std::vector<Case> cases {
        { "alice", true, true }, // qualified with host_name
        { "alice@localhost", true, true },
        { "alice@HOST.Example", true, true }, // domains are caseless
        { "alice@box.lan", true, true }, // glob
        { "alice@BOX.LAN", true, true },
        { "alice@lan", false, false }, // "*.lan" needs the dot
        { "alice@host.example.org", false, false },
        { "alice@remote.org", false, false },
        { "bob@remote.org", true, true }, // local_addresses
        { "bob@REMOTE.ORG", true, true },
        { "Bob@remote.org", false, true }, // local part per caseless_matching
        { "carol@remote.org", false, true },
        { "list@host.example", false, false }, // not_local_addresses
        { "list@HOST.EXAMPLE", false, false },
        { "List@host.example", true, false },
        { "ext@host.example", true, false },
        { "list@localhost", true, true }, // a different domain
        { "\"john doe\"@host.example", true, true },
        { "alice@[192.0.2.1]", false, false },
    };
    for (const Case& c : cases) {
        INFO(c.address);
        CHECK(mm::is_local(address(c.address), config(false)) == c.local);
        CHECK(mm::is_local(address(c.address), config(true)) == c.local_caseless);
    }
}

TEST_CASE("is_local: the empty domain is always local; no local_hosts means only local_addresses")
{
    MainConfig cfg = config();
    CHECK(mm::is_local(Address(), cfg));
    cfg.local_hosts.clear();
    CHECK_FALSE(mm::is_local(address("alice@host.example"), cfg));
    CHECK(mm::is_local(address("bob@remote.org"), cfg));
    CHECK(mm::is_local_domain("x.LAN", config()));
    CHECK_FALSE(mm::is_local_domain("example.org", config()));
}

TEST_CASE("same_recipient: local part per flag, domain caseless")
{
    CHECK(mm::same_recipient(address("a@X.org"), address("a@x.ORG"), false));
    CHECK_FALSE(mm::same_recipient(address("A@x.org"), address("a@x.org"), false));
    CHECK(mm::same_recipient(address("A@x.org"), address("a@x.org"), true));
    CHECK_FALSE(mm::same_recipient(address("a@x.org"), address("a@y.org"), true));
}

TEST_CASE("recipient_key: equal exactly when same_recipient")
{
    const char* all[] = { "a@X.org", "a@x.ORG", "A@x.org", "a@y.org", "\"a@b\"@x.org", "a", "A" };
    for (bool caseless : { false, true })
        for (const char* x : all)
            for (const char* y : all)
                CHECK((mm::recipient_key(address(x), caseless) == mm::recipient_key(address(y), caseless))
                    == mm::same_recipient(address(x), address(y), caseless));
}

TEST_CASE("is_safe_mailbox_name")
{
    struct Case {
        std::string name;
        bool safe;
    };
    const std::vector<Case> cases {
        { "alice", true },
        { "john doe", true },
        { "a.b", true },
        { "a..b", true },
        { "-x", true },
        { "", false },
        { ".", false },
        { "..", false },
        { "../x", false },
        { "../../etc/passwd", false },
        { "a/b", false },
        { "/etc", false },
        { ".hidden", false },
        { std::string("a\nb"), false },
        { std::string("a\0b", 3), false },
        { "a\x7f", false },
        { "caf\xc3\xa9", false },
        { std::string(255, 'a'), true },
        { std::string(256, 'a'), false },
    };
    for (const Case& c : cases) {
        INFO(c.name);
        CHECK(mm::is_safe_mailbox_name(c.name) == c.safe);
    }
}

TEST_CASE("with_log_user appends the archive address once")
{
    MainConfig cfg = config();
    std::vector<Address> rcpts { address("alice"), address("x@remote.org") };
    CHECK(mm::with_log_user(rcpts, cfg) == rcpts);
    cfg.log_user = address("archive");
    std::vector<Address> with = mm::with_log_user(rcpts, cfg);
    REQUIRE(with.size() == 3);
    CHECK(with[2] == address("archive@host.example"));
    CHECK(mm::with_log_user(with, cfg) == with);
    CHECK(mm::with_log_user({}, cfg) == std::vector<Address> { address("archive") });
}
