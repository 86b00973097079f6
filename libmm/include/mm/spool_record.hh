// SPDX-License-Identifier: GPL-2.0-or-later
// The record encoding shared by spool message files and state files:
// TAG LENGTH ':' VALUE LF, where TAG is two upper-case letters, LENGTH the
// decimal byte count of VALUE (no leading zeros) and VALUE printable ASCII
// only (so CR, LF and NUL can never be stored), plus the CRC-32C that seals
// each file. Input to the reader is hostile. Linked by enqueue and qmgr.
#pragma once

#include "mm/cursor.hh"
#include "mm/result.hh"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mm::spool_record {

// Whether every byte of `text` is printable ASCII (0x20..0x7e). The rule for
// every stored envelope and state field: stricter than "no CR, LF, NUL", so
// mailq output and logs built from stored fields are safe as well.
bool is_storable_text(std::string_view text);

// Appends one record. The caller guarantees a two-letter upper-case tag;
// the value is checked: not storable, or longer than max_value, is an error.
Result<void> append(std::string& out, std::string_view tag, std::string_view value, std::size_t max_value);
// Appends a record whose value is a canonical decimal number.
void append_number(std::string& out, std::string_view tag, std::uint64_t value);

struct Record {
    std::string_view tag;
    std::string_view value;
};

// Reads records from a bounded buffer. A record cut by the end of the buffer
// sets truncated(), so a caller that read only a prefix of a file knows that
// reading more may help; every other problem is final.
class RecordReader {
public:
    RecordReader(std::string_view text, std::size_t max_value)
        : cursor_(text)
        , max_value_(max_value)
    {
    }

    // The next record; an error when it is malformed, cut or absent.
    Result<Record> next();
    // The tag of the next record without consuming it ("" when none is complete).
    std::string_view peek_tag() const;
    // Consumes the next record when its tag is `tag`; nothing when it is not.
    Result<std::optional<std::string_view>> next_if(std::string_view tag);
    // Consumes the next record, which must have tag `tag`.
    Result<std::string_view> expect(std::string_view tag);

    bool truncated() const { return truncated_; }
    std::size_t pos() const { return cursor_.pos(); }
    bool at_end() const { return cursor_.at_end(); }

private:
    Cursor cursor_;
    std::size_t max_value_;
    bool truncated_ = false;
};

// A decimal number without sign, leading zeros or anything else: the only
// form we write, so the only one we read (a flipped byte cannot produce a
// different spelling of the same value).
std::optional<std::uint64_t> parse_number(std::string_view text);
// Same, limited to `max`.
std::optional<std::uint64_t> parse_number(std::string_view text, std::uint64_t max);
// Fixed-width forms used in the END record: exactly `width` decimal digits,
// zero-padded; and exactly 8 lower-case hex digits.
std::string format_fixed_decimal(std::uint64_t value, std::size_t width);
std::optional<std::uint64_t> parse_fixed_decimal(std::string_view text, std::size_t width);
std::string format_crc(std::uint32_t crc);
std::optional<std::uint32_t> parse_crc(std::string_view text);

// CRC-32C (Castagnoli), as in iSCSI and ext4: update(0, "123456789") == 0xe3069283.
class Crc32c {
public:
    void update(std::string_view data);
    std::uint32_t value() const { return ~state_; }

private:
    std::uint32_t state_ = 0xffffffffu;
};
std::uint32_t crc32c(std::string_view data);

} // namespace mm::spool_record
