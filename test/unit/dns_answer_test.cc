// SPDX-License-Identifier: GPL-2.0-or-later
// DNS answers read as hostile bytes: good answers with and without
// compression, CNAME chains, reply codes, and every way the bytes can lie
// (loops, forward pointers, long names, counts, lengths, cuts).
#include "catch.hh"
#include "dns_packet.hh"

#include "mm/dns_answer.hh"

#include <string>

using mm::DnsAnswer;
using mm::parse_dns_answer;
using mm::test::DnsPacket;

namespace {

constexpr unsigned mx = 15, a = 1, aaaa = 28;

DnsPacket mx_answer()
{
    return DnsPacket(DnsPacket::response, 1, 3, 0, 2)
        .question("example.org", mx)
        .mx("example.org", 20, "b.mx.example.org")
        .mx("example.org", 10, "a.mx.example.org")
        .mx("EXAMPLE.org", 20, "c.mx.example.org")
        .a("a.mx.example.org", "192.0.2.1")
        .aaaa("a.mx.example.org", "2001:db8::1");
}

// The reason a garbled answer is refused (a temporary error, 4.4.3).
std::string require_garbled(const std::string& bytes, int qtype = mx)
{
    auto r = parse_dns_answer(bytes, qtype);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == mm::ErrorKind::temporary);
    CHECK(std::string(r.error().enhanced_code()) == "4.4.3");
    return r.error().message();
}

using Catch::Matchers::Contains;

} // namespace

TEST_CASE("dns answer: MX records in the order written, additional addresses, case-insensitive owners")
{
    auto r = parse_dns_answer(mx_answer().str(), mx);
    REQUIRE(r);
    CHECK(r->rcode == 0);
    CHECK_FALSE(r->truncated);
    CHECK(r->question == "example.org");
    REQUIRE(r->records.size() == 3);
    CHECK(r->records[0].data == "b.mx.example.org");
    CHECK(r->records[0].preference == 20);
    CHECK(r->records[1].preference == 10);
    CHECK(r->records[2].data == "c.mx.example.org");
    REQUIRE(r->additional.size() == 2);
    CHECK(r->additional[0].data == "192.0.2.1");
    CHECK(r->additional[1].data == "2001:db8::1");
    CHECK(r->additional[1].name == "a.mx.example.org");
}

TEST_CASE("dns answer: compressed owner and exchange names")
{
    DnsPacket p(DnsPacket::response, 1, 1, 0, 0);
    p.question("example.org", mx); // name at offset 12
    std::string rdata = DnsPacket().u16(5).labels("mx").pointer(12).str();
    p.pointer(12).u16(mx).u16(1).u32(60).u16(static_cast<unsigned>(rdata.size())).raw(rdata);
    auto r = parse_dns_answer(p.str(), mx);
    REQUIRE(r);
    REQUIRE(r->records.size() == 1);
    CHECK(r->records[0].name == "example.org");
    CHECK(r->records[0].data == "mx.example.org");
    CHECK(r->records[0].preference == 5);
}

TEST_CASE("dns answer: CNAME chain followed, records of other names ignored")
{
    auto p = DnsPacket(DnsPacket::response, 1, 4, 0, 0)
                 .question("www.example.org", a)
                 .cname("www.example.org", "web.example.org")
                 .cname("web.example.org", "host.example.net")
                 .a("host.example.net", "192.0.2.7")
                 .a("elsewhere.example", "198.51.100.1");
    auto r = parse_dns_answer(p.str(), a);
    REQUIRE(r);
    REQUIRE(r->records.size() == 1);
    CHECK(r->records[0].data == "192.0.2.7");

    auto loop = DnsPacket(DnsPacket::response, 1, 2, 0, 0)
                    .question("x.example", a)
                    .cname("x.example", "y.example")
                    .cname("y.example", "x.example");
    auto l = parse_dns_answer(loop.str(), a);
    REQUIRE(l);
    CHECK(l->records.empty());
}

TEST_CASE("dns answer: reply codes and an empty answer")
{
    auto nx = parse_dns_answer(DnsPacket(DnsPacket::response | 3, 1, 0, 0, 0).question("nowhere.example", mx).str(), mx);
    REQUIRE(nx);
    CHECK(nx->rcode == mm::dns_rcode_nxdomain);
    auto servfail = parse_dns_answer(DnsPacket(DnsPacket::response | 2, 0, 0, 0, 0).str(), mx);
    REQUIRE(servfail);
    CHECK(servfail->rcode == mm::dns_rcode_servfail);
    auto nodata = parse_dns_answer(DnsPacket(DnsPacket::response, 1, 0, 0, 0).question("example.org", mx).str(), mx);
    REQUIRE(nodata);
    CHECK(nodata->rcode == 0);
    CHECK(nodata->records.empty());
}

TEST_CASE("dns answer: the null MX is read as an exchange of '.'")
{
    auto p = DnsPacket(DnsPacket::response, 1, 1, 0, 0).question("nomail.example", mx).mx("nomail.example", 0, "");
    auto r = parse_dns_answer(p.str(), mx);
    REQUIRE(r);
    REQUIRE(r->records.size() == 1);
    CHECK(r->records[0].data == ".");
}

TEST_CASE("dns answer: compression loops and forward pointers are refused")
{
    // The owner points at itself.
    DnsPacket self(DnsPacket::response, 1, 1, 0, 0);
    self.question("example.org", mx);
    self.pointer(self.size()).u16(mx).u16(1).u32(1).u16(0);
    CHECK_THAT(require_garbled(self.str()), Contains("does not point backwards"));
    // The exchange points forward to a pointer that points back at it.
    DnsPacket mutual(DnsPacket::response, 1, 1, 0, 0);
    mutual.question("example.org", mx);
    std::size_t rdata_at = mutual.size() + 2 + 2 + 2 + 4 + 2;
    mutual.pointer(12).u16(mx).u16(1).u32(1).u16(6).u16(10).pointer(rdata_at + 4).pointer(rdata_at + 2);
    CHECK_THAT(require_garbled(mutual.str()), Contains("does not point backwards"));
    // A label that runs into a pointer back to the name's own start.
    DnsPacket back(DnsPacket::response, 1, 1, 0, 0);
    back.question("example.org", mx);
    std::size_t owner_at = back.size();
    back.labels("x").pointer(owner_at).u16(mx).u16(1).u32(1).u16(0);
    CHECK_THAT(require_garbled(back.str()), Contains("does not point backwards"));
}

TEST_CASE("dns answer: a name over 255 octets, a bad label type")
{
    std::string name;
    for (int i = 0; i < 5; ++i)
        name += std::string(60, 'a' + static_cast<char>(i)) + ".";
    name.pop_back(); // 5 labels of 61 octets in wire form: 306
    CHECK_THAT(require_garbled(DnsPacket(DnsPacket::response, 1, 0, 0, 0).question(name, mx).str()),
        Contains("longer than 255"));
    // Through pointers: five labels of 60 octets, each pointing back to the
    // one before, kept in the data of a record of a type nobody reads.
    DnsPacket p(DnsPacket::response, 1, 2, 0, 0);
    p.question("example.org", mx);
    std::size_t rdata_at = p.size() + 13 + 10;
    DnsPacket chain;
    std::size_t previous = 12;
    for (int i = 0; i < 5; ++i) {
        std::size_t here = rdata_at + chain.size();
        chain.labels(std::string(60, 'z')).pointer(previous);
        previous = here;
    }
    p.record("example.org", 16, chain.str());
    p.pointer(previous).u16(16).u16(1).u32(1).u16(0);
    CHECK_THAT(require_garbled(p.str()), Contains("longer than 255"));
    require_garbled(DnsPacket(DnsPacket::response, 1, 0, 0, 0).u8(0x40).u8(0).u16(mx).u16(1).str());
}

TEST_CASE("dns answer: every cut of a good answer is refused; TC is reported, not read")
{
    std::string whole = mx_answer().str();
    for (std::size_t n = 0; n < whole.size(); ++n) {
        INFO("cut at " << n);
        CHECK_FALSE(parse_dns_answer(whole.substr(0, n), mx));
    }
    auto tc = DnsPacket(DnsPacket::response | DnsPacket::truncated, 1, 3, 0, 0).question("example.org", mx);
    auto r = parse_dns_answer(tc.str(), mx);
    REQUIRE(r);
    CHECK(r->truncated);
    CHECK(r->records.empty());
}

TEST_CASE("dns answer: lies in the header, the question and the records")
{
    // A query, not a response.
    require_garbled(DnsPacket(0x0100, 1, 0, 0, 0).question("example.org", mx).str());
    // An answer to another type, another class, two questions.
    require_garbled(DnsPacket(DnsPacket::response, 1, 0, 0, 0).question("example.org", a).str());
    require_garbled(DnsPacket(DnsPacket::response, 1, 0, 0, 0).name("example.org").u16(mx).u16(3).str());
    require_garbled(
        DnsPacket(DnsPacket::response, 2, 0, 0, 0).question("example.org", mx).question("example.org", mx).str());
    // More records counted than the bytes could hold.
    require_garbled(DnsPacket(DnsPacket::response, 1, 65535, 65535, 65535).question("example.org", mx).str());
    // An A record of 5 octets, an AAAA of 4.
    require_garbled(DnsPacket(DnsPacket::response, 1, 1, 0, 0)
                        .question("example.org", a)
                        .record("example.org", a, "12345")
                        .str(),
        a);
    require_garbled(DnsPacket(DnsPacket::response, 1, 1, 0, 0)
                        .question("example.org", aaaa)
                        .record("example.org", aaaa, "1234")
                        .str(),
        aaaa);
    // An MX whose name is shorter or longer than its record says.
    require_garbled(DnsPacket(DnsPacket::response, 1, 1, 0, 0)
                        .question("example.org", mx)
                        .record("example.org", mx, DnsPacket().u16(1).name("mx.example.org").u8(0).str())
                        .str());
    require_garbled(DnsPacket(DnsPacket::response, 1, 1, 0, 0)
                        .question("example.org", mx)
                        .record("example.org", mx, DnsPacket().u16(1).str())
                        .str());
    // Shorter than a header; longer than any DNS message.
    require_garbled(std::string(11, '\0'));
    require_garbled(mx_answer().str() + std::string(70000, '\0'));
}

TEST_CASE("dns answer: names with bytes no host name has are not used")
{
    auto p = DnsPacket(DnsPacket::response, 1, 2, 0, 1)
                 .question("example.org", mx)
                 .mx("example.org", 10, "bad host.example.org")
                 .record("example.org", mx, DnsPacket().u16(20).u8(6).raw("a.b\ncd").u8(0).str())
                 .a("bad host.example.org", "192.0.2.9");
    auto r = parse_dns_answer(p.str(), mx);
    REQUIRE(r);
    REQUIRE(r->records.size() == 2);
    CHECK(r->records[0].data.empty());
    CHECK(r->records[1].data.empty());
    CHECK(r->additional.empty());
}
