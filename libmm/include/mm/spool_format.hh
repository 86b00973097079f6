// SPDX-License-Identifier: GPL-2.0-or-later
// The message file of the spool (doc/spool-format.md): magic line, envelope
// records, the content verbatim, and a fixed-size END record with the content
// length, the header length and a CRC-32C of everything before it. Encoders
// for the writer, in-memory parsers for the reader and the fuzzer; parsed
// bytes are hostile. Linked by enqueue and qmgr.
#pragma once

#include "mm/address.hh"
#include "mm/queue_id.hh"
#include "mm/result.hh"
#include "mm/spool_record.hh"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

// How the message came in (RFC 3848 names; masqmail's PR:).
enum class ReceivedProtocol : std::uint8_t { local, smtp, esmtp, esmtpa, esmtps, esmtpsa };
const char* received_protocol_name(ReceivedProtocol p);
std::optional<ReceivedProtocol> parse_received_protocol(std::string_view name);

struct EnvelopeRecipient {
    Address address; // the top-level recipient as given (before aliases)
    std::string original; // DSN ORCPT text, "" when none was given
    friend bool operator==(const EnvelopeRecipient&, const EnvelopeRecipient&) = default;
};

// Everything the spool keeps about a message besides its content. Text
// fields must be printable ASCII (spool_record::is_storable_text) and at
// most limits::spool_text_field bytes; "" means absent.
struct Envelope {
    Address return_path; // null "<>" for bounces
    std::vector<EnvelopeRecipient> recipients; // 1..limits::recipients
    std::int64_t received_time = 0; // Unix seconds
    ReceivedProtocol protocol = ReceivedProtocol::local;
    std::string peer_address; // remote host for SMTP over TCP
    std::string helo_name;
    std::string ident; // login of the submitting user
    std::optional<std::uint32_t> submitter_uid;
    bool eight_bit_mime = false; // BODY=8BITMIME
    friend bool operator==(const Envelope&, const Envelope&) = default;
};

// Where the content lies in a message file.
struct ContentLayout {
    std::uint64_t offset = 0; // first byte of the content
    std::uint64_t length = 0; // content bytes (headers + body)
    std::uint64_t header_length = 0; // header section incl. the blank line; == length without body
    std::uint64_t body_length() const { return length - header_length; }
    friend bool operator==(const ContentLayout&, const ContentLayout&) = default;
};

struct StoredMessage {
    QueueId id;
    Envelope envelope;
    ContentLayout layout;
};

namespace spool_format {

inline constexpr std::string_view magic = "masqmail-spool 1\n";
// "EN50:" + 20 digits + ' ' + 20 digits + ' ' + 8 hex + '\n'
inline constexpr std::size_t end_record_size = 56;
// The CRC covers every byte of the file before its own 8 hex digits and LF.
inline constexpr std::size_t crc_field_size = 9;
// The longest head (magic + envelope + CT record) a reader accepts.
std::size_t max_head_size();

// Finds the end of the header section while content streams by: the first
// empty line, or the whole content when there is none.
class HeaderBoundary {
public:
    void feed(std::string_view chunk);
    // Header length once all content has been fed.
    std::uint64_t header_length() const { return found_ ? header_length_ : seen_; }

private:
    std::uint64_t seen_ = 0;
    std::uint64_t header_length_ = 0;
    bool found_ = false;
    bool at_line_start_ = true;
};

// Magic line, envelope records and the content marker. Checks every field.
Result<std::string> encode_head(const QueueId& id, const Envelope& envelope);
// The END record; `crc` has seen every byte before it and is updated with
// the record's own bytes up to its checksum field.
std::string encode_end(std::uint64_t content_length, std::uint64_t header_length, spool_record::Crc32c crc);
// A whole message file in memory (tests, fuzzer).
Result<std::string> encode_message_file(
    const QueueId& id, const Envelope& envelope, std::string_view content);

struct Head {
    QueueId id;
    Envelope envelope;
    std::uint64_t content_offset = 0;
};
// Parses the head from a prefix of a message file. When the prefix ends
// inside it, the error comes with *needs_more = true: read more and retry.
Result<Head> parse_head(std::string_view prefix, bool* needs_more = nullptr);
// Parses the END record (the last end_record_size bytes of a file of
// `file_size` bytes) and checks it against the head's content offset.
// Returns the layout and the stored checksum.
struct End {
    ContentLayout layout;
    std::uint32_t crc = 0;
};
Result<End> parse_end(std::string_view end_record, std::uint64_t content_offset, std::uint64_t file_size);
// Parses and fully verifies a whole message file held in memory.
Result<StoredMessage> parse_message_file(std::string_view file);

} // namespace spool_format

} // namespace mm
