// SPDX-License-Identifier: GPL-2.0-or-later
// The maildrop file: a submission that postdrop (set-gid masqmail-drop, run
// by sendmail when no daemon takes the message) leaves in spool_dir/maildrop/
// for enqueue to commit. Its bytes come from an ordinary user, on postdrop's
// stdin and again when enqueue reads the file: the parser treats them as
// hostile. Who submitted is never in the file: it is the file's owner
// (st_uid, set by the kernel). Linked by postdrop, the front end and enqueue.
#pragma once

#include "mm/protocol.hh"
#include "mm/result.hh"

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace mm::maildrop {

// Format: the spool's records and END record (doc/spool-format.md,
// mm/spool_record.hh, mm/spool_format.hh), with their own magic and tags:
//
//   masqmail-drop 1\n          magic line, version 1
//   MF<n>:<sender>\n           optional: -f/-r as typed ("<>" the null sender)
//   RT<n>:<recipient>\n        0..limits::recipients, as typed, in order
//   EX1:<0|1>\n                -t: extract recipients from the header
//   FN<n>:<xtext>\n            optional: -F, RFC 3461 xtext (8-bit names pass)
//   QO1:<0|1>\n                -odq
//   VB1:<0|1>\n                -v
//   CT0:\n                     content follows: canonical text, LF line ends
//   <content>
//   EN50:<len> <hdrlen> <crc>\n  the spool's END record (spool_format::encode_end):
//                                CRC-32C of every byte before its 8 hex digits
//
// Text fields are printable ASCII (spool_record::is_storable_text) of at most
// limits::spool_text_field bytes, never empty; the full name may hold any
// byte but a control byte, and is stored as xtext. Either recipients or -t.
// A cut file (a writer that died) or a wrong checksum is a permanent error:
// enqueue moves the file aside.
inline constexpr std::string_view magic = "masqmail-drop 1\n";

// The envelope of a drop file is exactly what sendmail would send enqueue
// over a socket: one struct serves both ways of submitting.
using DropRequest = protocol::SubmitRequest;

struct DropFile {
    DropRequest request;
    std::string_view content; // a view into the parsed bytes
};

// The largest valid drop file: magic, envelope, 1 GiB of content, END.
// postdrop reads at most this much from stdin.
std::size_t max_file_size();

// Everything before the content (magic line to CT0:). Checks every field.
Result<std::string> encode_head(const DropRequest& request);
// The END record after `head` and `content` (for a writer that sends the
// three pieces without joining them).
std::string encode_end(std::string_view head, std::string_view content);
// A whole drop file.
Result<std::string> encode(const DropRequest& request, std::string_view content);

// Parses and fully verifies a drop file held in memory.
Result<DropFile> parse(std::string_view bytes);

// A fresh file name, "SSSSSSSSSS.PID.HHHHHHHHHHHHHHHH": Unix seconds (10
// digits), the pid, 64 random bits in lower-case hex. Only [0-9a-f.].
Result<std::string> unique_name();
// Whether `name` is exactly of unique_name()'s form (a listing of maildrop/
// may hold anything a user could create there).
bool is_drop_name(std::string_view name);
// postdrop writes ".NAME" and renames it to NAME once durable. A temporary
// is left only by a postdrop that died or is still writing: enqueue removes
// one when it is older than stale_temporary_age (never a younger one).
bool is_temporary_name(std::string_view name);
inline constexpr std::chrono::seconds stale_temporary_age { 3600 };

} // namespace mm::maildrop
