// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP client's wire layer: servers' replies (read as hostile, bounded),
// the EHLO keywords, and the DATA stream rebuilt from canonical content
// (DESIGN rule 5: CRLF, dot-stuffing, lines of at most 998 octets). No I/O.
// Linked by remote-deliver.
#pragma once

#include "mm/result.hh"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm::smtp {

// One whole reply of a server: its code, the RFC 3463 code of its first line
// ("" when none) and every line's text without the code.
struct ServerReply {
    int code = 0;
    std::string enhanced;
    std::vector<std::string> lines;

    int kind() const { return code / 100; } // 2, 3, 4 or 5
    bool positive() const { return kind() == 2 || kind() == 3; }
    // "CODE text" of the first line and " / " and the others, printable
    // ASCII only (anything else becomes '?'), at most 512 bytes: for logs,
    // the queue and bounces.
    std::string summary() const;
};

// Cuts replies out of what a server sends. Lines end in CRLF (a bare LF is
// taken too); a reply is "NNN-text" lines then one "NNN text" (or "NNN")
// line, every line with the same code, 200 to 599. Anything else, or a reply
// beyond limits::reply_line_accepted, reply_lines or reply_bytes, is an
// error and the session must be dropped: the buffer is not trusted further.
class ReplyReader {
public:
    // Takes bytes from the connection; keeps what does not yet make a reply.
    // Fails at once when the buffered bytes already break a limit.
    Result<void> feed(std::string_view bytes);
    // The next complete reply, if one is buffered.
    Result<std::optional<ServerReply>> next();
    // Bytes received after the last complete reply (STARTTLS: must be none).
    std::size_t buffered() const { return buffer_.size() - pos_; }
    void discard() { buffer_.clear(), pos_ = 0; }

private:
    std::string buffer_;
    std::size_t pos_ = 0;
};

// What an EHLO reply offered (RFC 5321 §4.1.1.1, 1870, 2920, 6152, 3207, 4954).
struct Capabilities {
    bool esmtp = false; // the server answered EHLO (not HELO)
    bool pipelining = false;
    bool eight_bit_mime = false;
    bool starttls = false;
    bool enhanced_status_codes = false;
    bool size = false;
    std::uint64_t max_size = 0; // 0: no limit given
    std::vector<std::string> auth; // upper case: "PLAIN", "LOGIN", "CRAM-MD5", ...

    bool offers_auth(std::string_view mechanism) const;
};
Capabilities parse_ehlo(const ServerReply& reply);

// Rebuilds the DATA stream of a message from its canonical content (LF line
// ends): CRLF line ends, a leading dot doubled, lines longer than 998 octets
// cut (a header line folded before its last space or tab, or continued with
// a folding space when it has none; a body line simply broken), a missing
// final line end added, and ".\r\n" at the end.
class DataEncoder {
public:
    // Appends the encoded form of `content` (any chunk of the message) to `out`.
    void encode(std::string_view content, std::string& out);
    // Appends the end: CRLF if the message did not end with a line end, then ".\r\n".
    void finish(std::string& out);
    // The size the message has on the wire with CRLF line ends and without
    // the final dot: what SIZE= declares (RFC 1870 §3).
    static std::uint64_t wire_size(std::string_view content);

private:
    void fold_header_line(std::string& out);

    std::string header_line_;  // the current output line while in the header section
    std::size_t column_ = 0;   // octets of the current output line so far
    bool in_header_ = true;    // before the empty line that ends the header section
    bool line_empty_ = true;   // the current input line has no octet yet
};

} // namespace mm::smtp
