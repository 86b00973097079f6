// SPDX-License-Identifier: GPL-2.0-or-later
// A DNS answer (RFC 1035 §4.1) reduced to what direct MX delivery needs: the
// MX, A or AAAA records of the question's name (CNAMEs followed) and the A
// and AAAA records of the additional section. Input: a name server's bytes,
// hostile: every offset, count and name is bounded, and compression pointers
// must point backwards (no loops). Pure, so it is fuzzed. Linked by
// remote-deliver (through mx_resolve) and the mx-lookup test tool.
#pragma once

#include "mm/result.hh"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

// Record types and reply codes used here (RFC 1035 §3.2.2, §4.1.1; RFC 3596).
inline constexpr int dns_type_a = 1;
inline constexpr int dns_type_cname = 5;
inline constexpr int dns_type_mx = 15;
inline constexpr int dns_type_aaaa = 28;
inline constexpr int dns_rcode_noerror = 0;
inline constexpr int dns_rcode_servfail = 2;
inline constexpr int dns_rcode_nxdomain = 3;

struct DnsRecord {
    std::string name; // owner, dotted, no trailing dot, as written (case kept)
    int type = 0;
    std::uint16_t preference = 0; // MX only
    // MX: the exchange ("." for the root: a null MX, RFC 7505); A, AAAA: the
    // address as inet_ntop writes it; CNAME: the target. "" when the name
    // held bytes no host name has (a control byte, a space, a dot in a label).
    std::string data;
};

struct DnsAnswer {
    int rcode = dns_rcode_noerror;
    bool truncated = false; // TC set: no record was read
    std::string question; // the name asked about ("" when the answer has no question)
    // The records of the asked type for the question's name, or for the name
    // its CNAME chain (at most limits::dns_cname_chain links) ends at.
    std::vector<DnsRecord> records;
    std::vector<DnsRecord> additional; // A and AAAA records of the additional section
};

// Reads a response to a query of type `qtype` (class IN). A malformed
// message (bad header, out-of-bounds counts or lengths, a looping or
// forward compression pointer, a name over 255 octets, an A record that is
// not 4 octets, a question of another type) is a temporary error (4.4.3):
// a broken answer must defer mail, never bounce it.
Result<DnsAnswer> parse_dns_answer(std::string_view bytes, int qtype);

} // namespace mm
