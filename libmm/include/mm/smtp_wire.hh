// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP server's wire layer: command lines, command syntax, the DATA
// stream and reply text. Input is untrusted network bytes; nothing here does
// I/O or keeps global state, and every buffer it keeps is bounded. Refusals
// come back as Reply values for the session to send. Linked by smtp-listener.
#pragma once

#include "mm/address.hh"
#include "mm/limits.hh"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm::smtp {

// One reply: basic code, RFC 3463 enhanced code ("5.5.2", or "" for none)
// and one line of text.
struct Reply {
    int code = 0;
    std::string enhanced;
    std::string text;

    friend bool operator==(const Reply&, const Reply&) = default;
};

// --- command lines ---

// Cuts command lines out of the session's input buffer. Only CRLF ends a
// command (RFC 5321 §2.3.8): a bare LF, a bare CR, NUL, any other control
// byte but tab, and 8-bit bytes (we offer no SMTPUTF8) make the line a
// refusal with 500 5.5.2. A line longer than max_line octets with its CRLF
// (RFC 5321 §4.5.3.1.4: 512) is discarded up to and including its LF without
// being buffered, and refused once, when its LF arrives, so that one reply
// still answers one line for pipelining clients.
class CommandReader {
public:
    explicit CommandReader(std::size_t max_line = limits::command_line)
        : max_line_(max_line)
    {
    }

    enum class Status : std::uint8_t { line, need_more, refused };
    struct Outcome {
        Status status = Status::need_more;
        // Bytes at the front of the buffer the caller must drop now (also for
        // need_more: the bytes of a too-long line are dropped as they come).
        std::size_t consumed = 0;
        std::string_view line; // status line: the command without CRLF, a view into the buffer
        Reply refusal; // status refused
    };

    // Looks at the front of `buffer` (what the session has received and not
    // yet consumed). With need_more and consumed 0, call again once more
    // bytes have arrived; the caller never needs to hold more than max_line.
    Outcome next(std::string_view buffer);

    bool discarding() const { return discarding_; }

private:
    std::size_t max_line_;
    bool discarding_ = false;
};

// --- commands ---

enum class Verb : std::uint8_t { ehlo, helo, mail, rcpt, data, rset, noop, quit, vrfy, expn, help, starttls };

enum class Body : std::uint8_t { unspecified, seven_bit, eight_bit_mime };

struct Command {
    Verb verb = Verb::noop;
    // EHLO/HELO: the client's name; VRFY/EXPN/HELP/NOOP: the argument as
    // given (spaces at both ends trimmed); empty for the others.
    std::string argument;
    // MAIL/RCPT: the path, source route dropped; "<>" only for MAIL.
    Address address;
    // The path had no '@' and was qualified with ParseOptions::qualify_domain;
    // the session refuses it from network clients (501). RCPT TO:<postmaster>
    // is not flagged: RFC 5321 §4.1.1.3 requires accepting it.
    bool unqualified = false;
    // MAIL parameters (RFC 1870 SIZE, RFC 6152 BODY).
    std::optional<std::uint64_t> size;
    Body body = Body::unspecified;
};

struct ParseOptions {
    // Appended to an unqualified path (masqmail's host_name); empty: an
    // unqualified path is a syntax error.
    std::string_view qualify_domain;
    // EHLO was given: ESMTP parameters are allowed on MAIL and RCPT.
    bool esmtp = true;
    // A declared SIZE above this is refused with 552 5.3.4 (RFC 1870 §6.1).
    std::uint64_t max_message_size = limits::message_size_default;
};

// A parsed command, or the reply refusing it.
struct ParsedCommand {
    Command command; // meaningful when !refused
    std::optional<Reply> refused;
};

// Parses one line as CommandReader returns it. Verbs match whole and
// case-insensitively (masqmail's prefix match made "HELOX" a HELO; not here).
// Replies: 500 5.5.1 unknown command, 500 5.5.2 empty line, 501 5.5.4 bad
// syntax or argument, 501 5.1.7 bad sender, 501 5.1.3 bad recipient, 555 5.5.4
// unknown or unexpected parameter, 552 5.3.4 declared SIZE too large.
ParsedCommand parse_command(std::string_view line, const ParseOptions& options);

// --- DATA ---

struct DataLimits {
    // Total octets as received (CRLFs included; stuffing dots and the final
    // ".CRLF" not, RFC 1870 §3); beyond it nothing more is stored (552 5.3.4).
    std::uint64_t max_message_size = limits::message_size_default;
    // A text line with its CRLF, the stuffing dot not counted (RFC 5321
    // §4.5.3.1.6: 1000). May be raised up to limits::text_line_accepted.
    std::size_t max_line = limits::text_line;
};

// Why a message was refused; none when it may be queued.
enum class DataRefusal : std::uint8_t { none, bad_line_ending, nul, line_too_long, too_big };

// Reads the DATA stream after the 354, fed chunks split anywhere. Only
// CRLF "." CRLF ends it (the first line counts as following a CRLF, so an
// empty message is ".\r\n"). The content handed out is canonical: CRLF
// becomes LF and the leading dot of a line is removed (RFC 5321 §4.5.2).
// A bare CR or LF, a NUL, an over-long line or too many octets refuse the
// message; the first problem found is reported, nothing more is stored, and
// reading goes on to the real end so that no smuggled terminator can end the
// data. Between chunks it keeps a few counters only.
class DataReader {
public:
    explicit DataReader(const DataLimits& limits = {});

    struct Progress {
        std::size_t consumed = 0; // bytes of the chunk used; the rest is the next command
        bool finished = false; // the terminating CRLF.CRLF has been read
    };
    // Appends canonical content to `content` (nothing once refused) and stops
    // right after the terminator. The caller may empty `content` at will.
    Progress feed(std::string_view chunk, std::string& content);

    bool finished() const { return state_ == State::done; }
    DataRefusal refusal() const { return refusal_; }
    // Octets received so far, as counted against max_message_size.
    std::uint64_t received() const { return received_; }
    // The reply to the final dot when refused (550 5.5.2, 554 5.6.0 or 552 5.3.4).
    Reply refusal_reply() const;

private:
    enum class State : std::uint8_t { line_start, text, cr, dot, dot_cr, done };
    void refuse(DataRefusal why);
    void text_byte(char c, std::string& content);
    std::size_t plain_run(std::string_view rest) const;

    DataLimits limits_;
    State state_ = State::line_start;
    DataRefusal refusal_ = DataRefusal::none;
    std::size_t line_length_ = 0;
    std::uint64_t received_ = 0;
};

// --- replies ---

// "CODE-ENH text\r\n" for every line but the last, "CODE ENH text\r\n" for
// it; one line when `lines` is empty. Bytes that could end or forge a line
// (CR, LF, NUL, other controls, 8-bit) become '?', and each line is cut to
// the RFC 5321 §4.5.3.1.5 limit of 512 octets. The enhanced code is left out
// unless it is well formed with the same class as `code`. A code outside
// 200..599 is a bug (std::invalid_argument).
std::string format_reply(int code, std::string_view enhanced, const std::vector<std::string>& lines);
std::string format_reply(const Reply& reply);

} // namespace mm::smtp
