// SPDX-License-Identifier: GPL-2.0-or-later
// Accepting one message into the queue: header fixes, the recipient list,
// limits, and the commit of DESIGN rule 1. The content and the envelope are
// untrusted; the identity fields come from peer credentials. Linked by the
// enqueue daemon and, for a private instance with no daemon running, by the
// front end itself: one code path either way.
#pragma once

#include "mm/address.hh"
#include "mm/config.hh"
#include "mm/queue_id.hh"
#include "mm/result.hh"
#include "mm/spool.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

struct Submission {
    Address sender;                    // the return path; null for bounces
    std::vector<Address> recipients;   // from the command line or RCPT TO
    bool extract_recipients = false;   // -t: add To/Cc/Bcc recipients
    std::string full_name;             // -F or the user's GECOS name
    ReceivedProtocol protocol = ReceivedProtocol::local;
    std::string peer_address;          // SMTP client address
    std::string helo_name;             // SMTP HELO/EHLO argument
    std::string ident;                 // login of the submitting user
    std::optional<std::uint32_t> uid;  // uid of the submitting user
    bool eight_bit_mime = false;
    // -odq or do_queue: committed into queue/, delivered at the next queue run.
    bool queue_only = false;
};

struct Accepted {
    QueueId id;
    std::size_t recipient_count = 0;
    std::uint64_t size = 0;
};

// The largest message accepted: max_msg_size, or the default when it is 0,
// never more than the hard limit.
std::uint64_t max_message_size(const config::MainConfig& config);

// Fixes the headers of `content` (canonical, LF line ends), builds the
// envelope, and commits the message to the spool. Only a returned Accepted
// may be acknowledged (exit 0, 250). Errors: permanent for bad input (no
// recipient, too many, too many hops, too large), temporary for local
// trouble (ENOSPC keeps its errno for 452).
Result<Accepted> accept_message(const Spool& spool, const config::MainConfig& config,
    const Submission& submission, std::string_view content);

} // namespace mm
