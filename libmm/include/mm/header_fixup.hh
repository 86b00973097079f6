// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail's accept-time header surgery (reference §1.5.5), for local
// submissions and SMTP alike: -t harvesting, Bcc/Return-Path/Envelope-To
// removal, missing From/To/Date/Message-ID, one Received line, the hop limit.
// The message is untrusted; the options come from enqueue (config, peer
// credentials, argv already parsed). Linked by enqueue.
#pragma once

#include "mm/address.hh"
#include "mm/message.hh"
#include "mm/result.hh"
#include "mm/limits.hh"
#include "mm/spool_format.hh"  // ReceivedProtocol (the type only)

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

namespace mm {

struct FixupOptions {
    std::string host_name;        // masqmail's host_name: Received "by", Message-ID
    std::string queue_id;         // QueueId::str()
    Address sender;               // the return path; null for bounces
    std::string sender_full_name; // -F or GECOS; "" = none
    ReceivedProtocol protocol = ReceivedProtocol::local;
    std::string peer_address;     // SMTP: the client's IP address
    std::string helo_name;        // SMTP: as the client gave it (sanitised here)
    std::string ident;            // login of the submitting user (not shown in headers)
    std::optional<std::uint32_t> uid;  // local: "from userid UID"
    bool extract_recipients = false;   // -t
    std::vector<Address> recipients;   // envelope recipients so far
    std::size_t max_received = limits::received_hops;
    std::time_t now = 0;
    bool save_envelope_to = false;     // keep Envelope-To as X-Orig-Envelope-To
    std::string package_version;       // "masqmail 0.1.0"; "" = this build's
};

struct FixupResult {
    // With extract_recipients: the addresses of every To:, Cc: and Bcc: field
    // in order, duplicates kept (masqmail does not remove them).
    std::vector<Address> header_recipients;
};

// Applies the fixes to `message` in place. Errors, all permanent:
//  * more than max_received Received: fields ("too many hops (N Received:
//    headers)"; SMTP answers 554 5.4.6, sendmail exits EX_DATAERR); only
//    Received: is counted, Delivered-To: is local delivery's business;
//  * with extract_recipients, a To/Cc/Bcc field that does not parse (bug 40:
//    never dropped silently), naming the field;
//  * a full name with CR, LF or NUL or over 256 octets (header injection, A4);
//  * host_name, queue_id or package_version unfit for a header (internal).
// On error the message is left unchanged.
Result<FixupResult> fix_headers(ParsedMessage& message, const FixupOptions& options);

// RFC 5322 date-time in local time with a numeric offset, English names
// whatever the locale: "Sat, 21 Nov 2026 08:00:28 +0000".
std::string message_date(std::time_t when);
// The same for a broken-down time and its offset east of UTC in seconds.
std::string format_message_date(const std::tm& tm, long gmt_offset);

// The display name of a From: line: a quoted-string ("Bob \"B\" Smith") for
// printable ASCII, RFC 2047 encoded words (UTF-8 when the bytes are valid
// UTF-8, else UNKNOWN-8BIT) when any 8-bit or control byte is present.
// CR, LF and NUL are refused.
Result<std::string> encode_display_name(std::string_view name);

} // namespace mm
