// SPDX-License-Identifier: GPL-2.0-or-later
// Reading a message submitted locally (sendmail's stdin) into the canonical
// form: LF line endings, no CR, no NUL, masqmail's dot rules (§1.5.3). The
// bytes are untrusted; memory is bounded by the size limit plus one line.
// Linked by the sendmail front end and enqueue.
#pragma once

#include "mm/fd.hh"
#include "mm/result.hh"

#include <cstdint>
#include <string>
#include <string_view>

namespace mm {

// Line rules, byte by byte as the input streams by:
//  * CRLF, LF and a CR not followed by LF each end a line (a lone CR is an old
//    Mac line break; the canonical form never holds a CR, so output rebuilt
//    from it can never carry a bare CR: DESIGN rule 5, user-needs F1/F3);
//  * with dot_terminates (no -i/-oi): a line that is exactly "." ends the
//    message (also unterminated at EOF; the rest of the input is not read),
//    and any other line starting with '.' loses that first dot;
//  * without it nothing is touched and the message ends at EOF;
//  * an unterminated last line gets its LF.
// Errors (permanent; sendmail exits EX_DATAERR): a NUL byte ("message contains
// NUL"), a line longer than limits::text_line_accepted octets without its line
// ending, or a canonical result over max_size octets ("message too large
// (limit N bytes)"; headers count, unlike masqmail's body-only check).
class LocalMessageReader {
public:
    LocalMessageReader(bool dot_terminates, std::uint64_t max_size);

    // Takes the next input bytes. True once the message has ended (a "."
    // line); later bytes are ignored.
    Result<bool> feed(std::string_view bytes);
    // End of input: completes the last line and gives the canonical text.
    Result<std::string> finish();

private:
    Result<void> end_line();

    bool dot_terminates_;
    std::uint64_t max_size_;
    bool pending_cr_ = false;
    bool done_ = false;
    std::string line_;
    std::string out_;
};

// Reads `in` to EOF (or the "." line) through LocalMessageReader. A read
// error is temporary (nothing was accepted yet).
Result<std::string> read_local_message(const Fd& in, bool dot_terminates, std::uint64_t max_size);

} // namespace mm
