// SPDX-License-Identifier: GPL-2.0-or-later
// A route's address rewriting at send time (masqmail §3.4): the envelope
// return path and the From/Sender/Reply-To/Mail-Followup-To fields of the copy
// sent over that route; the spool is never changed. Message content is
// untrusted; the maps come from administrator-owned route files but are
// checked again before their text enters a message. Pure functions, bounded
// by mm/limits.hh. Linked by remote-deliver and the front end (--explain).
#pragma once

#include "mm/address.hh"
#include "mm/config.hh"
#include "mm/result.hh"
#include "mm/route.hh"

#include <string>
#include <string_view>
#include <vector>

namespace mm {

// One address a route's maps change, for logs and `masqmail --explain`.
struct AddressRewrite {
    std::string_view field; // "From", "Sender", "Reply-To", "Mail-Followup-To" or "Return-Path"
    std::string_view map; // the route option the rule came from, e.g. "map_outgoing_addresses"
    std::string old_address; // the addr-spec as it was ("joe" when unqualified)
    // What replaced it: the whole replacement mailbox when a bare address was
    // replaced ("Joe <joe@example.org>"), else the new addr-spec.
    std::string new_address;
    friend bool operator==(const AddressRewrite&, const AddressRewrite&) = default;
};

struct RoutedCopy {
    Address return_path; // rewritten, or the original
    std::string message; // the stored text with the rewritten fields
    std::vector<AddressRewrite> rewrites; // the return path first, then in field order
};

// The copy of a stored message (canonical form, LF line ends: the header
// section, optionally followed by the empty line and the body) that goes out
// over `route`. Rules:
//  * only local addresses are rewritten: unqualified ones and those whose
//    domain is in cfg.local_hosts (local_addresses is deliberately ignored);
//    the null sender never is (masqmail §10 37);
//  * per address the field's own map is searched first, then
//    map_outgoing_addresses; the first key (a glob on the local part,
//    case-insensitive only with caseless_matching) that matches wins;
//  * "*@domain" replaces the domain only (or appends it); otherwise a bare
//    addr-spec is replaced by the whole replacement, display name included,
//    together with the blanks that followed it on its line (masqmail's t500);
//    in a name-addr or next to a comment only the addr-spec is replaced, so
//    the existing display name and comments win;
//  * every occurrence of the four fields and every address in each list;
//    a field whose value does not parse, or uses group syntax, is kept as is;
//  * all other bytes (other fields, spacing, separators, folding, the body,
//    an mbox "From " line) are copied unchanged.
// Errors: a rule that would put a control byte (CR, LF, NUL, ...) or more
// than one address into the message, or a bad domain, is refused when it
// first matches (temporary: the administrator fixes the route); a stored text
// parse_message refuses, or a result over limits::rewritten_header_section
// octets of header or an over-long return path, is permanent.
Result<RoutedCopy> rewrite_for_route(const config::RouteConfig& route, const config::MainConfig& cfg,
    std::string_view stored, const Address& return_path);

// The return path alone (map_return_path_addresses, then
// map_outgoing_addresses; display names play no part). Appends to `rewrites`
// when it changes and `rewrites` is not null.
Result<Address> rewrite_return_path(const config::RouteConfig& route, const config::MainConfig& cfg,
    const Address& return_path, std::vector<AddressRewrite>* rewrites = nullptr);

// The rewrites rewrite_for_route makes, in its order (the copy is dropped).
Result<std::vector<AddressRewrite>> explain_rewrites(const config::RouteConfig& route,
    const config::MainConfig& cfg, std::string_view stored, const Address& return_path);

// What `address` would become over `route` as the return path and as a bare
// address in each of the four fields: one entry per place it changes.
Result<std::vector<AddressRewrite>> explain_address_rewrites(
    const config::RouteConfig& route, const config::MainConfig& cfg, const Address& address);

} // namespace mm
