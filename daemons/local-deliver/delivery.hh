// SPDX-License-Identifier: GPL-2.0-or-later
// What every local transport shares: the delivery status, the message source
// (spool fd range or text), the envelope of one local delivery, and the
// renderer that writes the delivered form (From_ line, Envelope-to and
// Return-path headers, >From quoting). Message content is untrusted bytes.
// Linked by local-deliver.
#pragma once

#include "mm/recipient.hh"

#include "mm/address.hh"
#include "mm/fd.hh"
#include "mm/result.hh"

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace mm::local {

struct DeliveryStatus {
    enum Kind { delivered, deferred, failed } kind = delivered;
    std::string reason; // printable ASCII, at most limits::error_text bytes

    static DeliveryStatus ok() { return {}; }
    static DeliveryStatus defer(std::string_view why) { return { deferred, printable_reason(why) }; }
    static DeliveryStatus fail(std::string_view why) { return { failed, printable_reason(why) }; }
    // Temporary errors defer, every other kind fails.
    static DeliveryStatus from_error(const Error& error);

    // Control and 8-bit bytes become '?', cut to limits::error_text.
    static std::string printable_reason(std::string_view why);
};

const char* status_name(DeliveryStatus::Kind kind);

// The content of a message (canonical: LF line ends). Either a range of a
// read-only spool file, read with pread(2) so that the fd's offset is never
// used, or text in memory (tests, generated messages). The fd is borrowed.
class MessageSource {
public:
    static MessageSource from_fd(const Fd& fd, std::uint64_t offset, std::uint64_t length)
    {
        return MessageSource(fd.get(), offset, length, {});
    }
    static MessageSource from_text(std::string_view text) { return MessageSource(-1, 0, text.size(), text); }

    std::uint64_t length() const { return length_; }
    // Appends up to `max` bytes starting at `pos` (relative to the content).
    // Reading past the end of the file is an error: the spool file shrank.
    Result<void> read(std::uint64_t pos, std::size_t max, std::string& out) const;

private:
    MessageSource(int fd, std::uint64_t offset, std::uint64_t length, std::string_view text)
        : fd_(fd), offset_(offset), length_(length), text_(text)
    {
    }
    int fd_;
    std::uint64_t offset_;
    std::uint64_t length_;
    std::string_view text_;
};

// One local delivery's envelope (masqmail §4.3, §4.4).
struct LocalEnvelope {
    std::string message_id;  // the queue id: MESSAGE_ID and $uid
    Address return_path;     // null sender: "<>", and MAILER-DAEMON in the From_ line
    Address original_rcpt;   // the top-level recipient: Envelope-to, USER, LOCAL_PART, DOMAIN
    Address rcpt;            // the leaf recipient after aliasing: $rcpt...
    std::string received_host; // empty for local submissions
    std::string ident;         // the submitting user, as masqmail's $ident
    std::string qualify_domain; // host_name
};

// "From SENDER Www Mmm dd hh:mm:ss yyyy\n" (ctime(3) format, local time).
std::string from_line(const LocalEnvelope& envelope, std::time_t now);
// "Envelope-to: <ORIGINAL>\nReturn-path: <SENDER>\n", in that order (§4.3).
std::string delivery_headers(const LocalEnvelope& envelope);

struct RenderOptions {
    bool from_line = false; // start with from_line()
    bool from_hack = false; // quote lines starting "From " as ">From "
    bool mbox_end = false;  // end with LF (added if missing) and one empty line
};

// Produces the delivered form piece by piece, so that a large message never
// sits in memory whole: prefix, then the content (quoted as asked), then the end.
class MessageRenderer {
public:
    MessageRenderer(const MessageSource& source, const LocalEnvelope& envelope, const RenderOptions& options,
        std::time_t now);

    // Appends the next piece (at most about chunk bytes) to `out`; false
    // once everything was given.
    Result<bool> next(std::string& out);
    static constexpr std::size_t chunk = 64 * 1024;

private:
    void quote(std::string_view in, std::string& out);

    const MessageSource& source_;
    RenderOptions options_;
    std::string prefix_;
    std::uint64_t pos_ = 0;
    bool prefix_done_ = false;
    bool end_done_ = false;
    bool at_line_start_ = true;
    std::string pending_; // a line start that so far matches "From "
    char last_ = '\n';
};

// Writes everything the renderer gives to `fd`.
Result<void> write_rendered(MessageRenderer& renderer, const Fd& fd);

// Mailbox names are checked with mm::is_safe_mailbox_name (mm/recipient.hh),
// the same rule alias expansion applies.
using mm::is_safe_mailbox_name;

} // namespace mm::local
