// SPDX-License-Identifier: GPL-2.0-or-later
// Every size and count limit of the suite, with the RFC or anchor it comes
// from, and overflow-checked arithmetic for sizes. Linked by every process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>

namespace mm::limits {

// RFC 5321 §4.5.3.1: sizes of SMTP objects, in octets.
inline constexpr std::size_t local_part = 64;      // §4.5.3.1.1
inline constexpr std::size_t domain = 255;         // §4.5.3.1.2
inline constexpr std::size_t domain_label = 63;    // RFC 1035 §2.3.4
inline constexpr std::size_t path = 256;           // §4.5.3.1.3, including < and >
inline constexpr std::size_t command_line = 512;   // §4.5.3.1.4, including CRLF
inline constexpr std::size_t reply_line = 512;     // §4.5.3.1.5, including CRLF
inline constexpr std::size_t text_line = 1000;     // §4.5.3.1.6, including CRLF
// A longer text line is refused, not stored; RFC 5322 §2.1.1 output folds at 998.
inline constexpr std::size_t text_line_accepted = 64 * 1024;
inline constexpr std::size_t recipients_minimum = 100;  // §4.5.3.1.8: must accept at least 100
inline constexpr std::size_t recipients = 1000;         // Postfix smtpd_recipient_limit
// The SMTP server (Postfix smtpd_hard_error_limit 20; connection counts ours:
// one event loop holds 1000 sessions in a few MiB).
inline constexpr std::size_t smtp_errors = 20;               // 4xx/5xx replies before 421 and close
inline constexpr std::size_t smtp_connections = 1000;        // smtp_max_connections default
inline constexpr std::size_t smtp_connections_per_client = 20; // per address, clients that may not relay
inline constexpr std::size_t smtp_connections_hard = 100000; // whatever the config says
inline constexpr int smtp_overload_timeout_seconds = 10;     // Postfix: smtpd_timeout under stress
inline constexpr std::size_t smtp_read_chunk = 16 * 1024;    // bytes read from a client at once
// The SMTP client reads servers' replies as hostile: a line may run to
// reply_line_accepted octets (real servers exceed 512 in EHLO), a reply to
// reply_lines lines and reply_bytes in all; beyond, the session is dropped.
inline constexpr std::size_t reply_line_accepted = 4096;
inline constexpr std::size_t reply_lines = 128;
inline constexpr std::size_t reply_bytes = 64 * 1024;
// Output lines are cut at 998 octets plus CRLF (RFC 5322 §2.1.1).
inline constexpr std::size_t output_line = 998;
// Local parts longer than RFC 5321's 64 exist in the wild (86-octet Google
// addresses); accept up to this many, refuse beyond (user-needs A6).
inline constexpr std::size_t local_part_accepted = 128;
// A whole address as text in a header or on a command line, display name included.
inline constexpr std::size_t address_text = 1024;
inline constexpr std::size_t addresses_per_header = 10000;
inline constexpr std::size_t comment_depth = 32;  // nesting of RFC 5322 comments (ours; the RFC has none)

// Messages (RFC 5322, Postfix defaults).
inline constexpr std::size_t header_section = 100 * 1024;          // header_size_limit 102400
// After a route's address rewriting (ours: room for the replacements).
inline constexpr std::size_t rewritten_header_section = 2 * header_section;
inline constexpr std::size_t received_hops = 50;                   // hopcount_limit
inline constexpr std::uint64_t message_size_default = 32u << 20;   // 32 MiB when max_msg_size = 0
inline constexpr std::uint64_t message_size_hard = 1u << 30;       // 1 GiB, whatever the config says

// Configuration files.
inline constexpr std::size_t config_file = 4u << 20;   // a masqmail.conf or route file
inline constexpr std::size_t config_line = 64 * 1024;  // one physical line
inline constexpr std::size_t config_name = 255;        // masqmail: statement names
inline constexpr std::size_t config_value = 64 * 1024; // one value (masqmail: 2047)
inline constexpr std::size_t config_list_items = 10000;
inline constexpr std::size_t config_include_line = 1024;  // a line of a file named in a list
inline constexpr std::size_t config_diagnostics = 1000;   // errors and warnings kept per check
inline constexpr std::int64_t config_interval_seconds = 100LL * 365 * 86400;  // 100 years
inline constexpr std::size_t alias_file = 8u << 20;
inline constexpr std::size_t alias_depth = 20;   // nesting of alias expansion
inline constexpr std::size_t alias_fanout = 10000;  // leaves of one expansion

// Spool.
inline constexpr std::size_t file_name = 255;
inline constexpr std::size_t spool_envelope_field = 4096;  // one envelope record
inline constexpr std::size_t spool_envelope = 4u << 20;    // all envelope records of a message
inline constexpr std::size_t spool_text_field = 1024;      // HELO name, peer, ident, ORCPT (RFC 3461: 500)
inline constexpr std::size_t state_file = 4u << 20;        // a per-recipient state file
inline constexpr std::size_t error_text = 512;             // stored last error per recipient
inline constexpr std::size_t queue_entries_scanned = 1000000;

// IPC between the daemons (anchors §5a).
inline constexpr std::size_t ipc_frame = 64 * 1024;
inline constexpr std::size_t ipc_fields = 4096;
inline constexpr std::size_t ipc_data_chunk = 32 * 1024;
inline constexpr std::size_t ipc_fds = 1;  // descriptors passed beside one frame (SCM_RIGHTS)

// DNS answers for direct MX delivery, read as hostile (RFC 1035 §4.1; names
// are at most limits::domain octets in wire form, RFC 1035 §2.3.4).
inline constexpr std::size_t dns_message = 65535;    // the most a TCP answer holds (RFC 1035 §4.2.2)
inline constexpr std::size_t dns_cname_chain = 8;    // CNAMEs followed in one answer (ours)
inline constexpr std::size_t mx_hosts = 20;          // MX hosts of one domain resolved (ours)
inline constexpr std::size_t mx_host_addresses = 16; // addresses kept per MX host (ours)

// Logging: one line, longer is truncated.
inline constexpr std::size_t log_line = 4096;

// Commands run by us (mda, pipe, online_query, wrapper).
inline constexpr std::size_t command_args = 256;
inline constexpr std::size_t command_arg = 4096;

} // namespace mm::limits

namespace mm {

// a + b, or nothing when the sum does not fit in T.
template <class T>
    requires std::is_integral_v<T>
constexpr std::optional<T> checked_add(T a, T b)
{
    T sum{};
    if (__builtin_add_overflow(a, b, &sum))
        return std::nullopt;
    return sum;
}

template <class T>
    requires std::is_integral_v<T>
constexpr std::optional<T> checked_mul(T a, T b)
{
    T product{};
    if (__builtin_mul_overflow(a, b, &product))
        return std::nullopt;
    return product;
}

} // namespace mm
