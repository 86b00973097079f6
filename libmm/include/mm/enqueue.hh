// SPDX-License-Identifier: GPL-2.0-or-later
// Accepting one message into the queue: header fixes, the recipient list,
// limits, and the commit of DESIGN rule 1. The content and the envelope are
// untrusted; the identity fields come from peer credentials. Linked by the
// enqueue daemon and by the front end, which commits through it for a
// private instance with no daemon running (one code path either way) and
// checks with it before it hands a message to postdrop.
#pragma once

#include "mm/address.hh"
#include "mm/config.hh"
#include "mm/queue_id.hh"
#include "mm/result.hh"
#include "mm/spool.hh"
#include "mm/spool_format.hh"

#include <cstdint>
#include <ctime>
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
    bool eight_bit_mime = false;       // BODY=8BITMIME; set for any local submission with 8-bit bytes
    // -odq or do_queue: committed into queue/, delivered at the next queue run.
    bool queue_only = false;
};

// A message ready for the spool: what accept_message() commits.
struct PreparedMessage {
    Envelope envelope;   // the recipients given, then those found by -t
    std::string content; // the fixed message, canonical (LF line ends)
};

struct Accepted {
    QueueId id;
    std::size_t recipient_count = 0;
    std::uint64_t size = 0;
};

// The largest message accepted: max_msg_size, or the default when it is 0,
// never more than the hard limit.
std::uint64_t max_message_size(const config::MainConfig& config);

// Everything accept_message() does before the spool: parses `content`
// (canonical, LF line ends), fixes its headers for queue id `id` and time
// `now` (Received, Message-ID, Date), and builds the envelope. Errors, all
// permanent: too many hops, a To/Cc/Bcc field -t cannot parse, no recipient,
// too many, too large. sendmail calls it before handing a message to
// postdrop, so that it refuses at once what enqueue would refuse later.
Result<PreparedMessage> prepare_message(const config::MainConfig& config, const Submission& submission,
    std::string_view content, const QueueId& id, std::time_t now);

// A message checked and written to tmp/, not yet durable: the first half
// of accept_message(), for enqueue's batches.
struct StagedMessage {
    MessageWriter writer;
    MessageWriter::Destination destination = MessageWriter::Destination::deliver_now;
    Accepted accepted;
    Envelope envelope;
};
Result<StagedMessage> stage_message(const Spool& spool, const config::MainConfig& config,
    const Submission& submission, std::string_view content);

// Makes a batch durable at once: every file sealed (fsync; on ext4 and
// most journalling file systems the first flush carries the others'
// blocks, so the rest are cheap), renamed into place, then one fsync per
// destination directory. results[i] belongs to batch[i]; only an ok one may
// be acknowledged.
std::vector<Result<Accepted>> commit_staged(std::vector<StagedMessage>& batch);

// prepare_message() with a fresh id and the current time, then the commit
// to the spool. Only a returned Accepted may be acknowledged (exit 0, 250).
// Errors: permanent for bad input (as prepare_message), temporary for local
// trouble (ENOSPC keeps its errno for 452).
Result<Accepted> accept_message(const Spool& spool, const config::MainConfig& config,
    const Submission& submission, std::string_view content);

} // namespace mm
