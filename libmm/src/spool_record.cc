// SPDX-License-Identifier: GPL-2.0-or-later
// Record encoding of spool files and CRC-32C. The reader gets bytes from the
// spool, which it must treat as hostile. Linked by enqueue and qmgr.
#include "mm/spool_record.hh"

#include <array>
#include <charconv>

namespace mm::spool_record {

namespace {

bool is_tag(std::string_view tag)
{
    return tag.size() == 2 && tag[0] >= 'A' && tag[0] <= 'Z' && tag[1] >= 'A' && tag[1] <= 'Z';
}

std::string shown_tag(std::string_view tag)
{
    return is_tag(tag) ? std::string(tag) : std::string("??");
}

constexpr std::array<std::uint32_t, 256> make_crc_table()
{
    std::array<std::uint32_t, 256> table {};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1u) != 0 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        table[i] = c;
    }
    return table;
}

constexpr std::array<std::uint32_t, 256> crc_table = make_crc_table();

} // namespace

bool is_storable_text(std::string_view text)
{
    for (char c : text)
        if (c < 0x20 || c > 0x7e)
            return false;
    return true;
}

Result<void> append(std::string& out, std::string_view tag, std::string_view value, std::size_t max_value)
{
    if (value.size() > max_value)
        return Error::permanent(
            "field " + shown_tag(tag) + " longer than " + std::to_string(max_value) + " bytes");
    if (!is_storable_text(value))
        return Error::permanent("field " + shown_tag(tag) + " contains a control or 8-bit byte");
    out += tag;
    out += std::to_string(value.size());
    out += ':';
    out += value;
    out += '\n';
    return ok();
}

void append_number(std::string& out, std::string_view tag, std::uint64_t value)
{
    std::string digits = std::to_string(value);
    out += tag;
    out += std::to_string(digits.size());
    out += ':';
    out += digits;
    out += '\n';
}

Result<Record> RecordReader::next()
{
    if (cursor_.remaining() < 2) {
        truncated_ = true;
        return Error::permanent(cursor_.at_end() ? "missing record" : "truncated record");
    }
    std::string_view tag = cursor_.rest().substr(0, 2);
    if (!is_tag(tag))
        return Error::permanent("bad record tag at offset " + std::to_string(cursor_.pos()));
    cursor_.skip(2);
    std::string_view digits = cursor_.take_while(is_ascii_digit);
    if (cursor_.at_end()) {
        truncated_ = true;
        return Error::permanent("truncated " + std::string(tag) + " record");
    }
    auto length = parse_number(digits, max_value_);
    if (!length || !cursor_.consume(':'))
        return Error::permanent("bad length in " + std::string(tag) + " record");
    if (cursor_.remaining() <= *length) {
        truncated_ = true;
        return Error::permanent("truncated " + std::string(tag) + " record");
    }
    std::string_view value = cursor_.rest().substr(0, *length);
    cursor_.skip(*length);
    if (!cursor_.consume('\n'))
        return Error::permanent(std::string(tag) + " record not ended by LF");
    if (!is_storable_text(value))
        return Error::permanent(std::string(tag) + " record contains a control or 8-bit byte");
    return Record { tag, value };
}

std::string_view RecordReader::peek_tag() const
{
    RecordReader copy = *this;
    auto r = copy.next();
    return r ? r->tag : std::string_view();
}

Result<std::optional<std::string_view>> RecordReader::next_if(std::string_view tag)
{
    if (peek_tag() != tag)
        return std::optional<std::string_view>();
    auto r = next();
    if (!r)
        return std::move(r).error();
    return std::optional<std::string_view>(r->value);
}

Result<std::string_view> RecordReader::expect(std::string_view tag)
{
    RecordReader copy = *this;
    auto r = copy.next();
    if (!r) {
        truncated_ = copy.truncated_;
        return Error::permanent(r.error().message() + " (expected " + std::string(tag) + ")");
    }
    if (r->tag != tag)
        return Error::permanent("expected record " + std::string(tag) + ", found " + std::string(r->tag));
    *this = copy;
    return r->value;
}

std::optional<std::uint64_t> parse_number(std::string_view text)
{
    if (text.size() > 1 && text.front() == '0')
        return std::nullopt;
    return parse_decimal<std::uint64_t>(text);
}

std::optional<std::uint64_t> parse_number(std::string_view text, std::uint64_t max)
{
    auto n = parse_number(text);
    if (!n || *n > max)
        return std::nullopt;
    return n;
}

std::string format_fixed_decimal(std::uint64_t value, std::size_t width)
{
    std::string digits = std::to_string(value);
    if (digits.size() < width)
        digits.insert(0, width - digits.size(), '0');
    return digits;
}

std::optional<std::uint64_t> parse_fixed_decimal(std::string_view text, std::size_t width)
{
    if (text.size() != width)
        return std::nullopt;
    return parse_decimal<std::uint64_t>(text);
}

std::string format_crc(std::uint32_t crc)
{
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(8, '0');
    for (std::size_t i = 8; i-- > 0; crc >>= 4)
        out[i] = hex[crc & 0xfu];
    return out;
}

std::optional<std::uint32_t> parse_crc(std::string_view text)
{
    if (text.size() != 8)
        return std::nullopt;
    std::uint32_t value = 0;
    for (char c : text) {
        std::uint32_t digit = 0;
        if (is_ascii_digit(c))
            digit = static_cast<std::uint32_t>(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = static_cast<std::uint32_t>(c - 'a' + 10);
        else
            return std::nullopt;
        value = value << 4 | digit;
    }
    return value;
}

void Crc32c::update(std::string_view data)
{
    std::uint32_t c = state_;
    for (char byte : data)
        c = crc_table[(c ^ static_cast<unsigned char>(byte)) & 0xffu] ^ (c >> 8);
    state_ = c;
}

std::uint32_t crc32c(std::string_view data)
{
    Crc32c crc;
    crc.update(data);
    return crc.value();
}

} // namespace mm::spool_record
