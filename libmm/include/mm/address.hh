// SPDX-License-Identifier: GPL-2.0-or-later
// Mail addresses: RFC 5321 paths (MAIL FROM:/RCPT TO:, command line, config
// entries) and RFC 5322 address lists (From:, To:, Cc:, ...). Input is
// untrusted (network, message headers, argv); every byte is checked against
// mm/limits.hh, and CR, LF, NUL and 8-bit bytes are refused in addresses.
// Linked by every process that handles addresses.
#pragma once

#include "mm/result.hh"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

// A validated envelope address. The default-constructed Address is the null
// sender "<>". Built only by the parsers below, so code past them never
// re-checks: the local part and domain contain no CR, LF, NUL, 8-bit or other
// control byte, and respect the limits: local part not empty and at most
// limits::local_part_accepted octets as written by str(), domain valid
// (is_valid_domain), and path() at most limits::path octets, so every Address
// fits in an SMTP command.
class Address {
public:
    Address() = default;

    bool is_null() const { return local_.empty() && domain_.empty(); }
    // The local part as the unquoted string (quotes and quoted-pair escapes
    // removed): "john doe" for "\"john doe\"@example.org".
    const std::string& local_part() const { return local_; }
    // The domain, as written (case kept), or a domain literal "[192.0.2.1]".
    const std::string& domain() const { return domain_; }
    // "local@domain", the local part quoted when RFC 5321 requires it; "" for null.
    std::string str() const;
    // "<local@domain>" or "<>": the form used in SMTP commands and logs.
    std::string path() const;

    // Equality: local part byte-exact, domain case-insensitive.
    friend bool operator==(const Address& a, const Address& b);

    // Only the parsers (address.cc) construct non-null addresses.
    struct Parts;
    explicit Address(Parts parts);

private:
    std::string local_;
    std::string domain_;
};

struct Address::Parts {
    std::string local;
    std::string domain;
};

// Every parser below fails with ErrorKind::permanent (callers answer 501/553,
// or exit EX_DATAERR). Messages are short, never echo control or 8-bit bytes,
// and an unqualified address without qualify_domain gives "address must be
// qualified".
struct AddressOptions {
    // Domain appended to an address without '@' ("qualification", masqmail's
    // host_name). Empty: an unqualified address is an error.
    std::string_view qualify_domain;
    // Whether "<>" (the null sender) is accepted.
    bool allow_null = false;
};

// An RFC 5321 Path as it follows "MAIL FROM:" or "RCPT TO:": "<addr>", "<>",
// or with an obsolete source route "<@a,@b:addr>" (route dropped). Leading
// and trailing spaces are not part of it. Unbracketed text is accepted as
// masqmail does for the command line, never for SMTP (the SMTP server checks
// for the '<' itself).
Result<Address> parse_path(std::string_view text, const AddressOptions& options);

// The SMTP server's form of parse_path: `text` must begin with '<' (no
// unbracketed form); the Path ends at its '>' (a '>' inside a quoted local part
// does not end it), and `rest` is set to what follows, e.g. " SIZE=1000" for
// "<a@b> SIZE=1000". `rest` is left unchanged on failure.
Result<Address> parse_smtp_path(std::string_view text, const AddressOptions& options, std::string_view& rest);

// One address as written on a command line or in a configuration entry:
// "user", "user@host", "<user@host>", "Name <user@host>" or
// "user@host (comment)"; surrounding whitespace allowed. It is one RFC 5322
// mailbox (the display name is dropped); at most limits::address_text octets.
Result<Address> parse_address(std::string_view text, const AddressOptions& options);

// One entry of an RFC 5322 address list.
struct Mailbox {
    std::string display_name;  // decoded phrase, "" when absent; quotes removed
    Address address;
    // Byte range of the addr-spec within the parsed header value, so that a
    // rewriter can replace just it and keep everything else byte-identical.
    // For "<...>" it is everything inside the brackets except surrounding
    // whitespace and comments (an obsolete source route included); empty for
    // "<>". For an unqualified address it covers the local part only.
    std::size_t spec_begin = 0;
    std::size_t spec_end = 0;
    bool angle = false;  // written as "<addr-spec>" (name-addr form)
};

// An RFC 5322 address-list (the value of From:, To:, Cc:, Reply-To:, ...):
// mailboxes separated by commas, with display names, comments, quoted local
// parts, domain literals, folding whitespace; groups "name: a, b;" are
// flattened into their members; an empty group ("undisclosed-recipients:;")
// contributes nothing; empty list elements (",,") are skipped. Line breaks
// are allowed only as folding (CRLF or LF followed by a space or tab); the
// value must not end with its header line's own line break. Display names and
// comments may hold 8-bit text (RFC 6532, kept raw, as are encoded words);
// addr-specs may not. Comments nest at most limits::comment_depth deep.
// Bounded by limits::header_section octets and limits::addresses_per_header
// mailboxes; a group whose ';' is missing at the very end is tolerated.
Result<std::vector<Mailbox>> parse_address_list(std::string_view header_value, const AddressOptions& options);

// Whether `text` is a syntactically valid domain (dot-atom labels of letters,
// digits and hyphens within limits, or a domain literal).
bool is_valid_domain(std::string_view text);

} // namespace mm
