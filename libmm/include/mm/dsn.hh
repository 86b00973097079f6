// SPDX-License-Identifier: GPL-2.0-or-later
// Bounces and delay warnings: RFC 3464 delivery status notifications
// (multipart/report, RFC 6522), or masqmail's errmsg_file/warnmsg_file
// templates, plus the warning and expiry schedule of masqmail.md §7.3. The
// original message and every remote reply are untrusted: each byte we put in
// a header is sanitised. Linked by qmgr.
#pragma once

#include "mm/address.hh"
#include "mm/result.hh"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

enum class DsnKind : std::uint8_t { failure, delay };
// RFC 3464 §2.3.3 actions we report.
enum class DsnAction : std::uint8_t { failed, delayed };

struct DsnRecipient {
    Address address; // Final-Recipient (the top-level envelope recipient)
    std::string original; // ORCPT as stored ("rfc822;a@b" or "a@b"); "" when none
    // RFC 3463 status "5.1.1"; one that is malformed or of the wrong class
    // for the action becomes "5.0.0" (failed) or "4.0.0" (delayed).
    std::string status;
    DsnAction action = DsnAction::failed;
    // "smtp; 550 5.1.1 no such user", "x-local; mailbox full"; untrusted.
    // Without a "type;" prefix it is reported as "x-unknown; TEXT".
    std::string diagnostic;
    std::string remote_mta; // host that gave the reply; "" for none
    std::time_t last_attempt = 0; // 0: not reported
    std::time_t will_retry_until = 0; // delay warnings; 0: not reported
};

struct DsnInput {
    DsnKind kind = DsnKind::failure;
    std::string host_name; // masqmail host_name: Reporting-MTA, MAILER-DAEMON@, postmaster@
    std::string reporting_mta_version; // "masqmail 1.1.0" (template variable `version`)
    std::string original_queue_id; // must parse as a QueueId
    Address original_sender; // null: the original is itself a bounce
    std::time_t arrival_time = 0;
    std::time_t now = 0;
    std::vector<DsnRecipient> recipients; // 1..limits::recipients, all listed in this report
    std::string_view original_content; // headers + body, canonical LF
    // The whole original is returned when it is at most this long (failures
    // only); otherwise only its headers (always for delay warnings).
    std::size_t include_limit = 0;
    // The caller's policy decided to report to postmaster@host_name (a bounce
    // that failed, or a copy for the administrator). Without it a null
    // original sender gets no report at all.
    bool to_postmaster = false;
    // Left-hand side of the new Message-ID; "" derives one from the queue
    // id, the time, the kind and the recipients. Must be a dot-atom.
    std::string message_id_local_part;
    // For templates only (masqmail's received_host and ident variables).
    std::string received_host;
    std::string ident;
};

// A message for enqueue: null envelope sender, one recipient.
struct GeneratedMessage {
    Address sender; // always the null sender "<>"
    Address recipient;
    std::string content; // headers + body, canonical LF
    bool eight_bit = false; // content has 8-bit bytes: submit as BODY=8BITMIME
};

// Why no report is generated (the caller logs it, or reports to postmaster).
enum class DsnNotSent : std::uint8_t {
    null_sender, // never bounce a bounce (user-needs L2)
    postmaster_failed, // the report would go to postmaster, who is among the failed
};
const char* dsn_not_sent_text(DsnNotSent reason);

struct DsnOutcome {
    std::optional<GeneratedMessage> message; // empty: nothing to send
    DsnNotSent reason = DsnNotSent::null_sender; // meaningful only without a message
    bool sent() const { return message.has_value(); }
};

// postmaster@host_name: where double bounces go.
Result<Address> double_bounce_recipient(std::string_view host_name);

// Checks `input` (host name, queue id, recipients) and decides the report's
// envelope: a message with sender and recipient set and no content yet, or
// the reason none is sent. Errors are ErrorKind::internal (a caller bug).
Result<DsnOutcome> dsn_addressing(const DsnInput& input);

// The built-in RFC 3464 report.
Result<DsnOutcome> build_dsn(const DsnInput& input);

// masqmail's line-oriented template (§7.2; `template_text` is the content of
// errmsg_file or warnmsg_file). Lines of any length up to
// limits::text_line_accepted; an Auto-Submitted header is added when the
// template has none. A bad template is a permanent error: the caller logs it
// and falls back to build_dsn().
Result<DsnOutcome> build_dsn_from_template(const DsnInput& input, std::string_view template_text);

// §7.3: a delay warning is due if, for some interval I, age > I and no
// warning was sent yet or the last one was sent at an age <= I (before the
// message was older than I). Ages are the message's, not the time since the
// last warning.
bool warning_due(const std::vector<std::chrono::seconds>& warn_intervals, std::chrono::seconds age,
    std::optional<std::chrono::seconds> last_warning_age);
// Deferred recipients fail once the time queued while a route was online
// reaches max_defer_time (0: the first temporary failure is final).
bool expired(std::chrono::seconds online_age, std::chrono::seconds max_defer_time);

// Helpers shared by both builders.
// Untrusted text made fit for one header line: CR, LF, TAB become spaces,
// other control, DEL and 8-bit bytes '?', spaces collapsed and trimmed,
// cut to at most `max` bytes.
std::string sanitize_header_text(std::string_view text, std::size_t max);
// The header section of canonical content: up to and including the line
// before the first empty line (the whole content when there is none).
std::string_view header_section(std::string_view content);
// The body: what follows the first empty line ("" when there is none).
std::string_view body_section(std::string_view content);
// header_section() cut at a line end to limits::header_section, ending in LF.
std::string returned_headers(std::string_view content);
bool has_eight_bit(std::string_view text);

} // namespace mm
