// SPDX-License-Identifier: GPL-2.0-or-later
// Maildrop file encoding and parsing (mm/maildrop.hh), on the spool's record
// codec and END record. Parsed bytes were written by an ordinary user and are
// hostile: every field, count, length and the checksum are checked, nothing
// is allocated beyond the limits. Linked by postdrop, the front end, enqueue.
#include "mm/maildrop.hh"

#include "mm/cursor.hh"
#include "mm/limits.hh"
#include "mm/queue_id.hh"
#include "mm/spool_format.hh"
#include "mm/spool_record.hh"

#include <unistd.h>

namespace mm::maildrop {

namespace {

using spool_record::RecordReader;

constexpr std::string_view content_marker = "CT0:\n";
// An xtext byte takes at most three ("+HH").
constexpr std::size_t max_record_value = 3 * limits::spool_text_field;
constexpr std::string_view upper_hex = "0123456789ABCDEF";

bool is_control(char c)
{
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

// RFC 3461 xchar: '!'..'~' except '+' and '='; every other byte is "+HH".
bool is_xchar(char c)
{
    return c >= '!' && c <= '~' && c != '+' && c != '=';
}

std::string to_xtext(std::string_view text)
{
    std::string out;
    for (char c : text) {
        if (is_xchar(c)) {
            out += c;
            continue;
        }
        auto u = static_cast<unsigned char>(c);
        out += '+';
        out += upper_hex[u >> 4];
        out += upper_hex[u & 0xfu];
    }
    return out;
}

// Only the spelling to_xtext() writes: upper-case hex, and only for bytes
// that must be escaped (one spelling per value).
std::optional<std::string> from_xtext(std::string_view xtext)
{
    std::string out;
    Cursor c(xtext);
    while (!c.at_end()) {
        char ch = c.next();
        if (is_xchar(ch)) {
            out += ch;
            continue;
        }
        if (ch != '+' || c.remaining() < 2)
            return std::nullopt;
        auto hi = upper_hex.find(c.next());
        auto lo = upper_hex.find(c.next());
        if (hi == std::string_view::npos || lo == std::string_view::npos)
            return std::nullopt;
        auto byte = static_cast<char>(hi << 4 | lo);
        if (is_xchar(byte))
            return std::nullopt;
        out += byte;
    }
    return out;
}

Result<void> check_full_name(std::string_view name)
{
    if (name.empty())
        return Error::permanent("empty full name");
    if (name.size() > limits::spool_text_field)
        return Error::permanent(
            "full name longer than " + std::to_string(limits::spool_text_field) + " bytes");
    for (char c : name)
        if (is_control(c))
            return Error::permanent("full name contains a control byte");
    return ok();
}

Result<void> append_text(std::string& out, std::string_view tag, std::string_view value)
{
    if (value.empty())
        return Error::permanent("empty " + std::string(tag) + " field");
    return spool_record::append(out, tag, value, limits::spool_text_field);
}

void append_flag(std::string& out, std::string_view tag, bool value)
{
    spool_record::append_number(out, tag, value ? 1 : 0);
}

Error no_recipients()
{
    return Error::permanent("no recipients and no -t");
}

// Reads the records after the magic line, in their fixed order, up to CT.
class HeadParser {
public:
    explicit HeadParser(std::string_view records)
        : reader_(records, max_record_value)
    {
    }

    Result<DropRequest> parse();
    std::size_t pos() const { return reader_.pos(); }

private:
    Result<std::string> text(std::string_view tag);
    Result<bool> flag(std::string_view tag);
    Result<void> recipients(DropRequest& request);
    Result<void> full_name(DropRequest& request);
    Result<void> smtp_origin(DropRequest& request);

    RecordReader reader_;
};

Result<std::string> HeadParser::text(std::string_view tag)
{
    auto value = reader_.expect(tag);
    if (!value)
        return std::move(value).error();
    if (value->empty() || value->size() > limits::spool_text_field)
        return Error::permanent(std::string(tag) + " record empty or too long");
    return std::string(*value);
}

Result<bool> HeadParser::flag(std::string_view tag)
{
    auto value = reader_.expect(tag);
    if (!value)
        return std::move(value).error();
    if (*value != "0" && *value != "1")
        return Error::permanent("bad value in " + std::string(tag) + " record");
    return *value == "1";
}

Result<void> HeadParser::recipients(DropRequest& request)
{
    while (reader_.peek_tag() == "RT") {
        if (request.recipients.size() >= limits::recipients)
            return Error::permanent("more than " + std::to_string(limits::recipients) + " recipients");
        auto r = text("RT");
        if (!r)
            return std::move(r).error();
        request.recipients.push_back(std::move(r).value());
    }
    return ok();
}

Result<void> HeadParser::full_name(DropRequest& request)
{
    auto value = reader_.next_if("FN");
    if (!value)
        return std::move(value).error();
    if (!*value)
        return ok();
    auto name = from_xtext(**value);
    if (!name)
        return Error::permanent("bad xtext in FN record");
    if (auto checked = check_full_name(*name); !checked)
        return checked;
    request.full_name = std::move(name);
    return ok();
}

// -bs through postdrop: "SP" protocol, "HE" HELO name (may be absent when
// empty). A drop file never carries a peer address: postdrop is local.
Result<void> HeadParser::smtp_origin(DropRequest& request)
{
    auto protocol = reader_.next_if("SP");
    if (!protocol)
        return std::move(protocol).error();
    if (!*protocol)
        return ok();
    protocol::SmtpOrigin origin;
    if (!parse_received_protocol(**protocol) || **protocol == "local")
        return Error::permanent("unknown protocol in SP record");
    origin.protocol = std::string(**protocol);
    auto helo = reader_.next_if("HE");
    if (!helo)
        return std::move(helo).error();
    if (*helo) {
        for (char c : **helo)
            if (is_control(c))
                return Error::permanent("HE record contains a control byte");
        origin.helo_name = std::string(**helo);
    }
    request.smtp = std::move(origin);
    return ok();
}

Result<DropRequest> HeadParser::parse()
{
    DropRequest request;
    if (reader_.peek_tag() == "MF") {
        auto sender = text("MF");
        if (!sender)
            return std::move(sender).error();
        request.sender = std::move(sender).value();
    }
    if (auto r = recipients(request); !r)
        return std::move(r).error();
    auto extract = flag("EX");
    if (!extract)
        return std::move(extract).error();
    request.extract_recipients = *extract;
    if (auto r = full_name(request); !r)
        return std::move(r).error();
    auto queue_only = flag("QO");
    if (!queue_only)
        return std::move(queue_only).error();
    request.queue_only = *queue_only;
    auto verbose = flag("VB");
    if (!verbose)
        return std::move(verbose).error();
    request.verbose = *verbose;
    if (auto r = smtp_origin(request); !r)
        return std::move(r).error();
    auto ct = reader_.expect("CT");
    if (!ct)
        return std::move(ct).error();
    if (!ct->empty())
        return Error::permanent("CT record not empty");
    if (request.recipients.empty() && !request.extract_recipients)
        return no_recipients();
    return request;
}

bool is_canonical_pid(std::string_view digits)
{
    return !digits.empty() && digits.size() <= 10 && digits.front() != '0'
        && spool_record::parse_number(digits).has_value();
}

} // namespace

std::size_t max_file_size()
{
    return magic.size() + limits::spool_envelope + content_marker.size() + limits::message_size_hard
        + spool_format::end_record_size;
}

Result<std::string> encode_head(const DropRequest& request)
{
    if (request.recipients.empty() && !request.extract_recipients)
        return no_recipients();
    if (request.recipients.size() > limits::recipients)
        return Error::permanent("more than " + std::to_string(limits::recipients) + " recipients");
    std::string out(magic);
    if (request.sender)
        if (auto r = append_text(out, "MF", *request.sender); !r)
            return std::move(r).error().with_context("sender");
    for (const std::string& recipient : request.recipients)
        if (auto r = append_text(out, "RT", recipient); !r)
            return std::move(r).error().with_context("recipient");
    append_flag(out, "EX", request.extract_recipients);
    if (request.full_name) {
        if (auto r = check_full_name(*request.full_name); !r)
            return std::move(r).error();
        if (auto r = spool_record::append(out, "FN", to_xtext(*request.full_name), max_record_value); !r)
            return std::move(r).error();
    }
    append_flag(out, "QO", request.queue_only);
    append_flag(out, "VB", request.verbose);
    if (request.smtp) {
        if (!request.smtp->peer_address.empty())
            return Error::permanent("a drop file carries no SMTP peer address");
        if (auto r = append_text(out, "SP", request.smtp->protocol); !r)
            return std::move(r).error();
        if (!request.smtp->helo_name.empty())
            if (auto r = append_text(out, "HE", request.smtp->helo_name); !r)
                return std::move(r).error();
    }
    out += content_marker;
    return out;
}

std::string encode_end(std::string_view head, std::string_view content)
{
    spool_record::Crc32c crc;
    crc.update(head);
    crc.update(content);
    spool_format::HeaderBoundary boundary;
    boundary.feed(content);
    return spool_format::encode_end(content.size(), boundary.header_length(), crc);
}

Result<std::string> encode(const DropRequest& request, std::string_view content)
{
    if (content.size() > limits::message_size_hard)
        return Error::permanent(
            "content larger than " + std::to_string(limits::message_size_hard) + " bytes");
    auto head = encode_head(request);
    if (!head)
        return std::move(head).error();
    std::string end = encode_end(*head, content);
    std::string file = std::move(head).value();
    file.reserve(file.size() + content.size() + end.size());
    file += content;
    file += end;
    return file;
}

Result<DropFile> parse(std::string_view bytes)
{
    if (bytes.size() > max_file_size())
        return Error::permanent("larger than any drop file");
    if (bytes.substr(0, magic.size()) != magic)
        return Error::permanent("not a maildrop file (bad magic line)");
    HeadParser head(bytes.substr(magic.size()));
    auto request = head.parse();
    if (!request)
        return std::move(request).error();
    std::uint64_t content_offset = magic.size() + head.pos();
    std::string_view end_record = bytes.size() >= spool_format::end_record_size
        ? bytes.substr(bytes.size() - spool_format::end_record_size)
        : std::string_view();
    auto end = spool_format::parse_end(end_record, content_offset, bytes.size());
    if (!end)
        return std::move(end).error();
    if (end->layout.length > limits::message_size_hard)
        return Error::permanent(
            "content larger than " + std::to_string(limits::message_size_hard) + " bytes");
    if (spool_record::crc32c(bytes.substr(0, bytes.size() - spool_format::crc_field_size)) != end->crc)
        return Error::permanent("checksum mismatch");
    std::string_view content = bytes.substr(content_offset, end->layout.length);
    spool_format::HeaderBoundary boundary;
    boundary.feed(content);
    if (boundary.header_length() != end->layout.header_length)
        return Error::permanent("header length in END record does not match the content");
    return DropFile { std::move(request).value(), content };
}

Result<std::string> unique_name()
{
    // A queue id is the time and 64 random bits; the pid goes between them.
    auto id = QueueId::generate();
    if (!id)
        return std::move(id).error();
    const std::string& s = id->str();
    return s.substr(0, QueueId::seconds_digits + 1) + std::to_string(::getpid()) + "."
        + s.substr(QueueId::seconds_digits + 1);
}

bool is_drop_name(std::string_view name)
{
    constexpr std::size_t head = QueueId::seconds_digits + 1;
    constexpr std::size_t tail = QueueId::random_digits + 1;
    if (name.size() <= head + tail)
        return false;
    std::string_view pid = name.substr(head, name.size() - head - tail);
    if (name[name.size() - tail] != '.' || !is_canonical_pid(pid))
        return false;
    std::string id(name.substr(0, head));
    id += name.substr(name.size() - QueueId::random_digits);
    return QueueId::parse(id).has_value();
}

bool is_temporary_name(std::string_view name)
{
    return name.size() > 1 && name.front() == '.' && is_drop_name(name.substr(1));
}

} // namespace mm::maildrop
