// SPDX-License-Identifier: GPL-2.0-or-later
// Where direct delivery to a domain goes (RFC 5321 §5.1): its MX hosts in
// preference order with their IPv6 and IPv4 addresses, the domain itself
// when it has no MX, a domain literal as is. Asks the system's name servers
// or the one of main's dns_server (for split DNS and tests), or the hosts
// file (byname). Input: the recipient's domain (already a valid Address
// domain) and hostile DNS answers (dns_answer). Blocking; linked by
// remote-deliver and the mx-lookup test tool.
#pragma once

#include "mm/config_value.hh"
#include "mm/dns_answer.hh"
#include "mm/result.hh"
#include "mm/route.hh"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mm {

struct MailExchanger {
    std::string host; // the MX host, the domain (implicit MX), or the literal as written
    std::uint16_t preference = 0;
    std::vector<std::string> addresses; // numeric; IPv6 (AAAA) first, then IPv4 (A)
};

// The mail exchangers of `domain`, lowest preference first, equal ones in
// random order; only hosts with at least one address (at most
// limits::mx_hosts hosts of limits::mx_host_addresses addresses each).
//   "example.org": by each of `methods` in turn until one gives an address:
//     dns_mx: MX records, each host's AAAA and A records (the additional
//       section's too) from the same name server; no MX record: the domain's
//       own AAAA and A (implicit MX). byname: getaddrinfo (hosts file, then
//       whatever nsswitch.conf says), the domain as its only host.
//   "[192.0.2.1]", "[IPv6:2001:db8::1]": that address, no lookup.
//   "[mail.example.org]": that host's addresses, no MX lookup.
// `server` replaces /etc/resolv.conf's name servers; `timeout` bounds each
// query per name server (glibc counts whole seconds: at least 1 s).
// Errors: a null MX (RFC 7505) is permanent (5.1.10), a malformed literal or
// name permanent (5.1.2); anything else (no answer, SERVFAIL, NXDOMAIN, no
// address, a garbled answer) is temporary (4.4.3): being offline or a broken
// name server must defer mail, never bounce it (DESIGN rule 7).
Result<std::vector<MailExchanger>> resolve_mail_exchangers(const std::string& domain,
    const std::vector<config::ResolveMethod>& methods, const std::optional<config::DnsServer>& server,
    std::chrono::milliseconds timeout);

// The MX records of an MX answer as mail exchangers in RFC 5321 §5.1 order
// (lowest preference first; equal preferences shuffled with `seed`), the
// additional section's addresses filled in; records whose host is no valid
// host name are dropped. A null MX (a single MX record for ".") is a
// permanent error (5.1.10). No MX record: an empty list.
Result<std::vector<MailExchanger>> mail_exchangers_of(const DnsAnswer& answer, std::uint64_t seed);

} // namespace mm
