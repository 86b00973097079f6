// SPDX-License-Identifier: GPL-2.0-or-later
// Message file encoding and in-memory parsing (doc/spool-format.md). Parsed
// bytes come from the spool and are hostile: every length, count, field and
// the checksum are checked, nothing is allocated beyond the limits.
// Linked by enqueue and qmgr.
#include "mm/spool_format.hh"

#include "mm/limits.hh"

#include <array>

namespace mm {

namespace {

using spool_record::RecordReader;

constexpr std::array<std::string_view, 6> protocol_names
    = { "local", "smtp", "esmtp", "esmtpa", "esmtps", "esmtpsa" };
constexpr std::string_view content_marker = "CT0:\n";
constexpr std::string_view body_7bit = "7BIT";
constexpr std::string_view body_8bit = "8BITMIME";

Result<void> append_text(std::string& out, std::string_view tag, const std::string& value)
{
    if (value.empty())
        return ok();
    return spool_record::append(out, tag, value, limits::spool_text_field);
}

Result<void> append_recipients(std::string& out, const std::vector<EnvelopeRecipient>& recipients)
{
    if (recipients.empty())
        return Error::permanent("no recipients");
    if (recipients.size() > limits::recipients)
        return Error::permanent("more than " + std::to_string(limits::recipients) + " recipients");
    for (const auto& r : recipients) {
        if (r.address.is_null())
            return Error::permanent("null recipient address");
        if (auto a = spool_record::append(out, "RT", r.address.path(), limits::path); !a)
            return a;
        if (auto a = append_text(out, "OR", r.original); !a)
            return a;
    }
    return ok();
}

// Reads the envelope records after the magic line, in their fixed order.
class HeadParser {
public:
    explicit HeadParser(std::string_view records)
        : reader_(records, limits::spool_envelope_field)
    {
    }

    Result<spool_format::Head> parse();
    bool truncated() const { return reader_.truncated(); }

private:
    Result<std::string> optional_text(std::string_view tag);
    Result<std::int64_t> time_record(std::string_view tag);
    Result<void> parse_recipients(Envelope& envelope);

    RecordReader reader_;
};

Result<std::string> HeadParser::optional_text(std::string_view tag)
{
    auto value = reader_.next_if(tag);
    if (!value)
        return std::move(value).error();
    if (!*value)
        return std::string();
    if (value->value().empty() || value->value().size() > limits::spool_text_field)
        return Error::permanent(std::string(tag) + " record empty or too long");
    return std::string(**value);
}

Result<std::int64_t> HeadParser::time_record(std::string_view tag)
{
    auto value = reader_.expect(tag);
    if (!value)
        return std::move(value).error();
    auto n = spool_record::parse_number(*value, static_cast<std::uint64_t>(QueueId::max_seconds));
    if (!n)
        return Error::permanent("bad time in " + std::string(tag) + " record");
    return static_cast<std::int64_t>(*n);
}

Result<void> HeadParser::parse_recipients(Envelope& envelope)
{
    while (reader_.peek_tag() == "RT") {
        if (envelope.recipients.size() >= limits::recipients)
            return Error::permanent("more than " + std::to_string(limits::recipients) + " recipients");
        auto value = reader_.expect("RT");
        if (!value)
            return std::move(value).error();
        auto address = parse_path(*value, { .qualify_domain = {}, .allow_null = false });
        if (!address)
            return Error::permanent("bad recipient address: " + address.error().message());
        auto original = optional_text("OR");
        if (!original)
            return std::move(original).error();
        envelope.recipients.push_back({ std::move(address).value(), std::move(original).value() });
        if (reader_.pos() > limits::spool_envelope)
            return Error::permanent(
                "envelope larger than " + std::to_string(limits::spool_envelope) + " bytes");
    }
    if (envelope.recipients.empty())
        return Error::permanent(reader_.truncated() ? "truncated before the recipients" : "no recipients");
    return ok();
}

Result<spool_format::Head> HeadParser::parse()
{
    auto qi = reader_.expect("QI");
    if (!qi)
        return std::move(qi).error();
    auto id = QueueId::parse(*qi);
    if (!id)
        return Error::permanent("bad queue id in QI record");
    Envelope e;
    auto received = time_record("TR");
    if (!received)
        return std::move(received).error();
    e.received_time = *received;
    auto pr = reader_.expect("PR");
    if (!pr)
        return std::move(pr).error();
    auto protocol = parse_received_protocol(*pr);
    if (!protocol)
        return Error::permanent("unknown protocol in PR record");
    e.protocol = *protocol;
    for (auto [tag, field] :
        { std::pair { "RH", &e.peer_address }, { "HE", &e.helo_name }, { "ID", &e.ident } }) {
        auto text = optional_text(tag);
        if (!text)
            return std::move(text).error();
        *field = std::move(text).value();
    }
    auto uid = reader_.next_if("UI");
    if (!uid)
        return std::move(uid).error();
    if (*uid) {
        auto n = spool_record::parse_number(**uid, UINT32_MAX);
        if (!n)
            return Error::permanent("bad uid in UI record");
        e.submitter_uid = static_cast<std::uint32_t>(*n);
    }
    auto bt = reader_.expect("BT");
    if (!bt)
        return std::move(bt).error();
    if (*bt != body_7bit && *bt != body_8bit)
        return Error::permanent("unknown body type in BT record");
    e.eight_bit_mime = *bt == body_8bit;
    auto mf = reader_.expect("MF");
    if (!mf)
        return std::move(mf).error();
    auto sender = parse_path(*mf, { .qualify_domain = {}, .allow_null = true });
    if (!sender)
        return Error::permanent("bad return path: " + sender.error().message());
    e.return_path = std::move(sender).value();
    if (auto r = parse_recipients(e); !r)
        return std::move(r).error();
    auto ct = reader_.expect("CT");
    if (!ct)
        return std::move(ct).error();
    if (!ct->empty())
        return Error::permanent("CT record not empty");
    return spool_format::Head { std::move(id).value(), std::move(e),
        spool_format::magic.size() + reader_.pos() };
}

} // namespace

const char* received_protocol_name(ReceivedProtocol p)
{
    auto i = static_cast<std::size_t>(p);
    return i < protocol_names.size() ? protocol_names[i].data() : "local";
}

std::optional<ReceivedProtocol> parse_received_protocol(std::string_view name)
{
    for (std::size_t i = 0; i < protocol_names.size(); ++i)
        if (protocol_names[i] == name)
            return static_cast<ReceivedProtocol>(i);
    return std::nullopt;
}

namespace spool_format {

std::size_t max_head_size()
{
    return magic.size() + limits::spool_envelope + content_marker.size();
}

void HeaderBoundary::feed(std::string_view chunk)
{
    if (!found_ && !chunk.empty()) {
        if (at_line_start_ && chunk.front() == '\n') {
            found_ = true;
            header_length_ = seen_ + 1;
        } else if (auto pos = chunk.find("\n\n"); pos != std::string_view::npos) {
            found_ = true;
            header_length_ = seen_ + pos + 2;
        }
        at_line_start_ = chunk.back() == '\n';
    }
    seen_ += chunk.size();
}

Result<std::string> encode_head(const QueueId& id, const Envelope& e)
{
    if (e.received_time < 0 || e.received_time > QueueId::max_seconds)
        return Error::permanent("received time out of range");
    std::string out(magic);
    (void)spool_record::append(out, "QI", id.str(), QueueId::length);
    spool_record::append_number(out, "TR", static_cast<std::uint64_t>(e.received_time));
    (void)spool_record::append(out, "PR", received_protocol_name(e.protocol), 16);
    for (auto [tag, field] :
        { std::pair { "RH", &e.peer_address }, { "HE", &e.helo_name }, { "ID", &e.ident } })
        if (auto r = append_text(out, tag, *field); !r)
            return std::move(r).error();
    if (e.submitter_uid)
        spool_record::append_number(out, "UI", *e.submitter_uid);
    (void)spool_record::append(out, "BT", e.eight_bit_mime ? body_8bit : body_7bit, 16);
    if (auto r = spool_record::append(out, "MF", e.return_path.path(), limits::path); !r)
        return std::move(r).error();
    if (auto r = append_recipients(out, e.recipients); !r)
        return std::move(r).error();
    if (out.size() - magic.size() > limits::spool_envelope)
        return Error::permanent("envelope larger than " + std::to_string(limits::spool_envelope) + " bytes");
    out += content_marker;
    return out;
}

std::string encode_end(std::uint64_t content_length, std::uint64_t header_length, spool_record::Crc32c crc)
{
    std::string out = "EN50:";
    out += spool_record::format_fixed_decimal(content_length, 20);
    out += ' ';
    out += spool_record::format_fixed_decimal(header_length, 20);
    out += ' ';
    crc.update(out);
    out += spool_record::format_crc(crc.value());
    out += '\n';
    return out;
}

Result<std::string> encode_message_file(const QueueId& id, const Envelope& envelope, std::string_view content)
{
    if (content.size() > limits::message_size_hard)
        return Error::permanent(
            "content larger than " + std::to_string(limits::message_size_hard) + " bytes");
    auto head = encode_head(id, envelope);
    if (!head)
        return std::move(head).error();
    spool_record::Crc32c crc;
    crc.update(*head);
    crc.update(content);
    HeaderBoundary boundary;
    boundary.feed(content);
    std::string file = std::move(head).value();
    file += content;
    file += encode_end(content.size(), boundary.header_length(), crc);
    return file;
}

Result<Head> parse_head(std::string_view prefix, bool* needs_more)
{
    if (needs_more != nullptr)
        *needs_more = false;
    if (prefix.substr(0, magic.size()) != magic) {
        if (needs_more != nullptr)
            *needs_more = prefix.size() < magic.size() && magic.substr(0, prefix.size()) == prefix;
        return Error::permanent("not a masqmail spool file (bad magic line)");
    }
    std::string_view records = prefix.substr(magic.size());
    if (records.size() > limits::spool_envelope + content_marker.size())
        records = records.substr(0, limits::spool_envelope + content_marker.size());
    HeadParser parser(records);
    auto head = parser.parse();
    if (!head && needs_more != nullptr)
        *needs_more = parser.truncated() && prefix.size() < max_head_size();
    return head;
}

Result<End> parse_end(std::string_view end_record, std::uint64_t content_offset, std::uint64_t file_size)
{
    if (file_size < content_offset || file_size - content_offset < end_record_size
        || end_record.size() != end_record_size)
        return Error::permanent("truncated: no END record");
    RecordReader reader(end_record, end_record_size);
    auto value = reader.expect("EN");
    if (!value || !reader.at_end() || value->size() != 50 || (*value)[20] != ' ' || (*value)[41] != ' ')
        return Error::permanent("bad END record");
    auto content_length = spool_record::parse_fixed_decimal(value->substr(0, 20), 20);
    auto header_length = spool_record::parse_fixed_decimal(value->substr(21, 20), 20);
    auto crc = spool_record::parse_crc(value->substr(42, 8));
    if (!content_length || !header_length || !crc)
        return Error::permanent("bad number in END record");
    if (*content_length != file_size - content_offset - end_record_size)
        return Error::permanent("content length in END record does not match the file size");
    if (*header_length > *content_length)
        return Error::permanent("header length in END record exceeds the content length");
    return End { ContentLayout { content_offset, *content_length, *header_length }, *crc };
}

Result<StoredMessage> parse_message_file(std::string_view file)
{
    auto head = parse_head(file);
    if (!head)
        return std::move(head).error();
    std::string_view end_record
        = file.size() >= end_record_size ? file.substr(file.size() - end_record_size) : "";
    auto end = parse_end(end_record, head->content_offset, file.size());
    if (!end)
        return std::move(end).error();
    if (spool_record::crc32c(file.substr(0, file.size() - crc_field_size)) != end->crc)
        return Error::permanent("checksum mismatch");
    HeaderBoundary boundary;
    boundary.feed(file.substr(end->layout.offset, end->layout.length));
    if (boundary.header_length() != end->layout.header_length)
        return Error::permanent("header length in END record does not match the content");
    return StoredMessage { std::move(head->id), std::move(head->envelope), end->layout };
}

} // namespace spool_format

} // namespace mm
