// SPDX-License-Identifier: GPL-2.0-or-later
// Direct delivery's destinations without any name server: MX order and
// shuffling, the null MX, domain literals and [host], bad names, the
// dns_server option, and a name server that refuses (a closed local port).
#include "catch.hh"
#include "config_fixture.hh"
#include "dns_packet.hh"

#include "mm/config.hh"
#include "mm/mx_resolve.hh"

#include <netinet/in.h>
#include <set>
#include <sys/socket.h>
#include <unistd.h>

using mm::MailExchanger;
using mm::test::DnsPacket;
using Method = mm::config::ResolveMethod;

namespace {

mm::DnsAnswer parsed(const DnsPacket& p)
{
    auto r = mm::parse_dns_answer(p.str(), mm::dns_type_mx);
    REQUIRE(r);
    return *r;
}

std::vector<std::string> hosts_of(const std::vector<MailExchanger>& list)
{
    std::vector<std::string> out;
    for (const MailExchanger& mx : list)
        out.push_back(mx.host);
    return out;
}

// A UDP port on 127.0.0.1 nobody listens on (bound, then closed).
std::uint16_t closed_udp_port()
{
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in sa {};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    socklen_t len = sizeof sa;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    ::close(fd);
    return ntohs(sa.sin_port);
}

const std::vector<Method> no_methods;
constexpr std::chrono::seconds second(1);

} // namespace

TEST_CASE("mx order: lowest preference first, equal ones shuffled, additional addresses IPv6 first")
{
    auto answer = parsed(DnsPacket(DnsPacket::response, 1, 4, 0, 3)
                             .question("example.org", 15)
                             .mx("example.org", 20, "b.mx.example.org")
                             .mx("example.org", 10, "a.mx.example.org")
                             .mx("example.org", 30, "z.mx.example.org")
                             .mx("example.org", 20, "c.mx.example.org")
                             .a("a.mx.example.org", "192.0.2.1")
                             .aaaa("A.MX.example.org", "2001:db8::1")
                             .a("unrelated.example", "192.0.2.99"));
    std::set<std::vector<std::string>> orders;
    for (std::uint64_t seed = 0; seed < 64; ++seed) {
        auto list = mm::mail_exchangers_of(answer, seed);
        REQUIRE(list);
        REQUIRE(list->size() == 4);
        CHECK(list->front().host == "a.mx.example.org");
        CHECK(list->front().preference == 10);
        CHECK(list->front().addresses == std::vector<std::string> { "2001:db8::1", "192.0.2.1" });
        CHECK(list->back().host == "z.mx.example.org");
        CHECK(list->back().addresses.empty());
        orders.insert(hosts_of(*list));
    }
    CHECK(orders == std::set<std::vector<std::string>> {
              { "a.mx.example.org", "b.mx.example.org", "c.mx.example.org", "z.mx.example.org" },
              { "a.mx.example.org", "c.mx.example.org", "b.mx.example.org", "z.mx.example.org" } });
}

TEST_CASE("mx order: a host listed twice keeps its best preference; bad host names are dropped")
{
    auto answer = parsed(DnsPacket(DnsPacket::response, 1, 5, 0, 0)
                             .question("example.org", 15)
                             .mx("example.org", 30, "mx.example.org")
                             .mx("example.org", 5, "MX.example.org")
                             .mx("example.org", 1, "bad host.example.org")
                             .mx("example.org", 1, "-dash.example.org")
                             .mx("example.org", 1, "[192")); // labels "[192": no literal
    auto list = mm::mail_exchangers_of(answer, 1);
    REQUIRE(list);
    REQUIRE(list->size() == 1);
    CHECK(list->front().host == "mx.example.org");
    CHECK(list->front().preference == 5);
    auto none = parsed(DnsPacket(DnsPacket::response, 1, 0, 0, 0).question("example.org", 15));
    auto empty = mm::mail_exchangers_of(none, 1);
    REQUIRE(empty);
    CHECK(empty->empty());
}

TEST_CASE("null MX (RFC 7505): permanent 5.1.10; a '.' among other MX records is skipped")
{
    auto null_mx = parsed(
        DnsPacket(DnsPacket::response, 1, 1, 0, 0).question("nomail.example", 15).mx("nomail.example", 0, ""));
    auto r = mm::mail_exchangers_of(null_mx, 0);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == mm::ErrorKind::permanent);
    CHECK(std::string(r.error().enhanced_code()) == "5.1.10");
    CHECK_THAT(r.error().message(), Catch::Matchers::Contains("nomail.example"));

    auto mixed = parsed(DnsPacket(DnsPacket::response, 1, 2, 0, 0)
                            .question("half.example", 15)
                            .mx("half.example", 0, "")
                            .mx("half.example", 10, "mx.half.example"));
    auto m = mm::mail_exchangers_of(mixed, 0);
    REQUIRE(m);
    CHECK(hosts_of(*m) == std::vector<std::string> { "mx.half.example" });
}

TEST_CASE("domain literals need no lookup; malformed ones and bad names are permanent 5.1.2")
{
    auto v4 = mm::resolve_mail_exchangers("[192.0.2.1]", no_methods, std::nullopt, second);
    REQUIRE(v4);
    REQUIRE(v4->size() == 1);
    CHECK(v4->front().host == "[192.0.2.1]");
    CHECK(v4->front().addresses == std::vector<std::string> { "192.0.2.1" });
    auto v6 = mm::resolve_mail_exchangers("[IPv6:2001:DB8:0:0::1]", no_methods, std::nullopt, second);
    REQUIRE(v6);
    CHECK(v6->front().addresses == std::vector<std::string> { "2001:db8::1" });
    auto v6_lower = mm::resolve_mail_exchangers("[ipv6:::1]", no_methods, std::nullopt, second);
    REQUIRE(v6_lower);
    CHECK(v6_lower->front().addresses == std::vector<std::string> { "::1" });

    for (const char* bad : { "[300.1.1.1]", "[192.0.2.1", "[]", "[IPv6:192.0.2.1:x]", "[::1]", "[[x]]",
             "bad..example", "-x.example", "", "a b.example", "192.0.2.1", "[mail.example.123]" }) {
        INFO(bad);
        auto r = mm::resolve_mail_exchangers(bad, { Method::dns_mx }, std::nullopt, second);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == mm::ErrorKind::permanent);
        CHECK(std::string(r.error().enhanced_code()) == "5.1.2");
    }
}

TEST_CASE("no method, or a name server that refuses: temporary 4.4.3 naming the domain")
{
    auto none = mm::resolve_mail_exchangers("[mail.example.org]", no_methods, std::nullopt, second);
    REQUIRE_FALSE(none);
    CHECK(none.error().kind() == mm::ErrorKind::temporary);
    CHECK_THAT(none.error().message(), Catch::Matchers::Contains("[mail.example.org]"));

    mm::config::DnsServer server { AF_INET, "127.0.0.1", closed_udp_port() };
    auto refused = mm::resolve_mail_exchangers("example.org", { Method::dns_mx }, server, second);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind() == mm::ErrorKind::temporary);
    CHECK(std::string(refused.error().enhanced_code()) == "4.4.3");
    CHECK_THAT(refused.error().message(), Catch::Matchers::Contains("example.org"));
    CHECK_THAT(refused.error().message(), Catch::Matchers::Contains("127.0.0.1:"));
}

TEST_CASE("dns_server: a numeric address and port; anything else is refused with file:line")
{
    using mm::config::Diagnostics;
    Diagnostics diag;
    auto c = mm::config::parse_main_config("host_name = h.example\ndns_server = 127.0.0.1:5353\n", "m.conf", diag);
    REQUIRE(c);
    REQUIRE(c->dns_server);
    CHECK(c->dns_server->family == AF_INET);
    CHECK(c->dns_server->address == "127.0.0.1");
    CHECK(c->dns_server->port == 5353);
    CHECK(c->dns_server->str() == "127.0.0.1:5353");
    auto v6 = mm::config::parse_main_config("host_name = h.example\ndns_server = \"[::1]\"\n", "m.conf", diag);
    REQUIRE(v6);
    CHECK(v6->dns_server->family == AF_INET6);
    CHECK(v6->dns_server->port == 53);
    CHECK(v6->dns_server->str() == "[::1]:53");
    auto unset = mm::config::parse_main_config("host_name = h.example\n", "m.conf", diag);
    REQUIRE(unset);
    CHECK_FALSE(unset->dns_server);

    for (const char* bad : { "ns.example.org", "::1", "127.0.0.1:0", "127.0.0.1:99999", "[::1", "" }) {
        INFO(bad);
        Diagnostics d;
        auto r = mm::config::parse_main_config(
            std::string("host_name = h.example\ndns_server = \"") + bad + "\"\n", "m.conf", d);
        CHECK_FALSE(r);
        CHECK_THAT(mm::test::diagnostic_lines(d), Catch::Matchers::Contains("m.conf:2: 'dns_server'"));
    }
}
