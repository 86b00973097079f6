// SPDX-License-Identifier: GPL-2.0-or-later
// A message split into its header fields and body (RFC 5322), parsed from the
// canonical stored form (LF line endings) and rendered back to it. The content
// is untrusted (local users, SMTP peers); every parse is bounded by
// mm/limits.hh. Linked by enqueue, the SMTP listener and the delivery agents.
#pragma once

#include "mm/result.hh"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

struct HeaderField {
    std::string name;  // as written, without the colon
    // The whole field as stored: name, colon, value and its continuation
    // lines joined by LF, without the final LF.
    std::string raw;

    // Case-insensitive, exact comparison of the name ("Fro" is not "From").
    bool is(std::string_view other) const;
    // Everything after the colon, folding kept (what parse_address_list takes).
    std::string_view value() const;
    friend bool operator==(const HeaderField&, const HeaderField&) = default;
};

struct ParsedMessage {
    std::vector<HeaderField> headers;
    std::string body;  // everything after the header section
    friend bool operator==(const ParsedMessage&, const ParsedMessage&) = default;
};

// Parses `canonical` (lines ending in LF; the last one may lack it). Rules
// (masqmail 1.0 §1.5.4 with bug 39 fixed):
//  * an mbox "From " line as the very first line is discarded (unless it is
//    an obsolete-syntax field "From : x", which is kept as From:);
//  * a field is NAME ':' ..., NAME being 1..n printable ASCII bytes other than
//    ':' (RFC 5322 ftext); spaces or tabs between NAME and ':' are tolerated
//    (RFC 5322 §4.5.8 obs-optional) and kept in `raw`;
//  * a line starting with a space or tab continues the previous field;
//  * an empty line ends the header section and is not part of the body;
//  * any other line ends the header section and is the first body line.
// Errors (permanent): a NUL or CR byte anywhere (the canonical form has
// neither), or a header section over limits::header_section octets.
Result<ParsedMessage> parse_message(std::string_view canonical);

// The canonical text: every field and an LF, the empty line, the body. The
// empty line is always written, so parse_message(render(m)) == m for every
// parsed m.
std::string render(const ParsedMessage& message);

// The first field named `name`, or nullptr.
const HeaderField* find_header(const ParsedMessage& message, std::string_view name);
std::size_t count_headers(const ParsedMessage& message, std::string_view name);
// Removes every field named `name`; returns how many were removed.
std::size_t erase_headers(ParsedMessage& message, std::string_view name);
inline std::size_t count_received(const ParsedMessage& message)
{
    return count_headers(message, "Received");
}

// A field we generate: "Name: value", folded at spaces so that no line is
// longer than 78 octets where possible and none longer than 998 (RFC 5322
// §2.1.1); a word that alone exceeds 998 octets is split. `name` and `value`
// must be free of CR, LF and NUL (callers check; see header_fixup).
HeaderField make_header(std::string_view name, std::string_view value);

// Whether `text` may appear in a header we generate: no CR, LF, NUL or other
// control byte except TAB.
bool is_header_safe(std::string_view text);

} // namespace mm
