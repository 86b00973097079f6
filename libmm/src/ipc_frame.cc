// SPDX-License-Identifier: GPL-2.0-or-later
// IPC frames: the message type registry, FrameWriter and FrameReader. The
// reader's input comes from a peer process and is untrusted: every offset is
// checked against the frame before it is used. Linked by every daemon.
#include "mm/ipc.hh"

#include "mm/limits.hh"

#include <utility>

namespace mm::ipc {

namespace {

void put_le(std::string& out, std::uint64_t value, std::size_t octets)
{
    for (std::size_t i = 0; i < octets; ++i)
        out += static_cast<char>((value >> (8 * i)) & 0xff);
}

// The little-endian number in `octets` octets at `pos`; the caller has
// checked that they are inside `bytes`.
std::uint64_t get_le(std::string_view bytes, std::size_t pos, std::size_t octets)
{
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < octets; ++i)
        value |= std::uint64_t{static_cast<unsigned char>(bytes[pos + i])} << (8 * i);
    return value;
}

std::uint16_t get_le16(std::string_view bytes, std::size_t pos)
{
    return static_cast<std::uint16_t>(get_le(bytes, pos, 2));
}

std::uint32_t get_le32(std::string_view bytes, std::size_t pos)
{
    return static_cast<std::uint32_t>(get_le(bytes, pos, 4));
}

// Where the next field's value starts and how long it is. parse() has
// checked the framing, but the reader trusts nothing it did not see itself.
struct FieldPos {
    std::uint16_t tag;
    std::size_t value_pos;
    std::size_t value_size;
};

std::optional<FieldPos> field_at(std::string_view frame, std::size_t pos)
{
    if (pos > frame.size() || frame.size() - pos < field_header_size)
        return std::nullopt;
    std::uint16_t tag = get_le16(frame, pos);
    std::size_t size = get_le32(frame, pos + 2);
    std::size_t value_pos = pos + field_header_size;
    if (size > frame.size() - value_pos)
        return std::nullopt;
    return FieldPos{tag, value_pos, size};
}

Result<void> check_fields(std::string_view frame, bool fd_attached)
{
    std::size_t fields = 0;
    std::size_t fds = 0;
    std::size_t pos = header_size;
    while (pos < frame.size()) {
        std::optional<FieldPos> field = field_at(frame, pos);
        if (!field)
            return Error::protocol("ipc: field " + std::to_string(fields) + " truncated");
        if (++fields > limits::ipc_fields)
            return Error::protocol("ipc: more than " + std::to_string(limits::ipc_fields) + " fields");
        if (field->tag == fd_tag) {
            if (field->value_size != 0)
                return Error::protocol("ipc: descriptor field with a value");
            if (++fds > limits::ipc_fds)
                return Error::protocol("ipc: more than one descriptor announced");
        }
        pos = field->value_pos + field->value_size;
    }
    if (fds != (fd_attached ? 1u : 0u))
        return Error::protocol(fd_attached ? "ipc: descriptor received but not announced"
                                           : "ipc: descriptor announced but not received");
    return ok();
}

} // namespace

bool is_message_type(std::uint16_t value)
{
    switch (static_cast<MessageType>(value)) {
    case MessageType::status:
    case MessageType::submit_begin:
    case MessageType::data_chunk:
    case MessageType::submit_end:
    case MessageType::submit_result:
    case MessageType::new_message:
    case MessageType::run_queue:
    case MessageType::run_route:
    case MessageType::route_online:
    case MessageType::queue_list:
    case MessageType::queue_list_entry:
    case MessageType::queue_list_end:
    case MessageType::remove_message:
    case MessageType::deliver:
    case MessageType::delivery_result:
    case MessageType::remote_deliver:
    case MessageType::remote_result:
    case MessageType::route_query:
    case MessageType::route_answer:
        return true;
    }
    return false;
}

const char* message_type_name(MessageType type)
{
    switch (type) {
    case MessageType::status: return "status";
    case MessageType::submit_begin: return "submit_begin";
    case MessageType::data_chunk: return "data_chunk";
    case MessageType::submit_end: return "submit_end";
    case MessageType::submit_result: return "submit_result";
    case MessageType::new_message: return "new_message";
    case MessageType::run_queue: return "run_queue";
    case MessageType::run_route: return "run_route";
    case MessageType::route_online: return "route_online";
    case MessageType::queue_list: return "queue_list";
    case MessageType::queue_list_entry: return "queue_list_entry";
    case MessageType::queue_list_end: return "queue_list_end";
    case MessageType::remove_message: return "remove_message";
    case MessageType::deliver: return "deliver";
    case MessageType::delivery_result: return "delivery_result";
    case MessageType::remote_deliver: return "remote_deliver";
    case MessageType::remote_result: return "remote_result";
    case MessageType::route_query: return "route_query";
    case MessageType::route_answer: return "route_answer";
    }
    return "unknown";
}

bool is_text(std::string_view value)
{
    for (char c : value) {
        auto octet = static_cast<unsigned char>(c);
        if (octet < 0x20 || octet == 0x7f)
            return false;
    }
    return true;
}

// --- FrameWriter ---

FrameWriter::FrameWriter(MessageType type, std::uint64_t request_id)
{
    frame_.reserve(256);
    put_le(frame_, protocol_version, 2);
    put_le(frame_, static_cast<std::uint16_t>(type), 2);
    put_le(frame_, 0, 4); // payload length, set by finish()
    put_le(frame_, request_id, 8);
}

void FrameWriter::fail(std::string message)
{
    if (!error_)
        error_ = Error::internal("ipc: " + std::move(message));
}

void FrameWriter::add_field(std::uint16_t tag, std::string_view value)
{
    if (finished_)
        return fail("field added to a finished frame");
    if (error_)
        return;
    if (fields_ >= limits::ipc_fields)
        return fail("more than " + std::to_string(limits::ipc_fields) + " fields");
    // frame_.size() <= ipc_frame always holds, so neither side can wrap.
    if (value.size() > limits::ipc_frame - frame_.size()
        || limits::ipc_frame - frame_.size() - value.size() < field_header_size)
        return fail("frame larger than " + std::to_string(limits::ipc_frame) + " octets");
    put_le(frame_, tag, 2);
    put_le(frame_, value.size(), 4);
    frame_.append(value);
    ++fields_;
}

void FrameWriter::add_u32(std::uint16_t tag, std::uint32_t value)
{
    std::string octets;
    put_le(octets, value, 4);
    add_bytes(tag, octets);
}

void FrameWriter::add_u64(std::uint16_t tag, std::uint64_t value)
{
    std::string octets;
    put_le(octets, value, 8);
    add_bytes(tag, octets);
}

void FrameWriter::add_bool(std::uint16_t tag, bool value)
{
    add_bytes(tag, value ? std::string_view("\1", 1) : std::string_view("\0", 1));
}

void FrameWriter::add_text(std::uint16_t tag, std::string_view value)
{
    if (!is_text(value))
        return fail("text field " + std::to_string(tag) + " with a control octet");
    add_bytes(tag, value);
}

void FrameWriter::add_bytes(std::uint16_t tag, std::string_view value)
{
    if (tag == fd_tag)
        return fail("value field with the descriptor tag");
    add_field(tag, value);
}

void FrameWriter::add_fd()
{
    if (fds_ >= limits::ipc_fds)
        return fail("more than one descriptor");
    ++fds_;
    add_field(fd_tag, {});
}

Result<std::string> FrameWriter::finish()
{
    if (finished_)
        return Error::internal("ipc: frame finished twice");
    finished_ = true;
    if (error_)
        return std::move(*error_);
    std::string payload_length;
    put_le(payload_length, frame_.size() - header_size, 4);
    frame_.replace(4, 4, payload_length);
    return std::move(frame_);
}

// --- FrameReader ---

FrameReader::FrameReader(std::string_view frame, MessageType type, std::uint64_t request_id, Fd attached)
    : frame_(frame), type_(type), request_id_(request_id), attached_(std::move(attached))
{
}

Result<FrameReader> FrameReader::parse(std::string_view frame, Fd attached)
{
    if (frame.size() < header_size)
        return Error::protocol("ipc: frame of " + std::to_string(frame.size()) + " octets, shorter than a header");
    if (frame.size() > limits::ipc_frame)
        return Error::protocol("ipc: frame larger than " + std::to_string(limits::ipc_frame) + " octets");
    std::uint16_t version = get_le16(frame, 0);
    if (version != protocol_version)
        return Error::protocol("ipc: protocol version " + std::to_string(version) + ", expected "
            + std::to_string(protocol_version));
    std::uint16_t type = get_le16(frame, 2);
    if (!is_message_type(type))
        return Error::protocol("ipc: unknown message type " + std::to_string(type));
    std::size_t payload = get_le32(frame, 4);
    if (payload != frame.size() - header_size)
        return Error::protocol("ipc: payload length " + std::to_string(payload) + " in a frame of "
            + std::to_string(frame.size() - header_size));
    Result<void> fields = check_fields(frame, attached.valid());
    if (!fields)
        return std::move(fields).error();
    return FrameReader(frame, static_cast<MessageType>(type), get_le(frame, 8, 8), std::move(attached));
}

std::optional<std::uint16_t> FrameReader::next_tag() const
{
    std::optional<FieldPos> field = field_at(frame_, pos_);
    if (!field)
        return std::nullopt;
    return field->tag;
}

Error FrameReader::field_error(std::string_view what) const
{
    return Error::protocol("ipc: " + std::string(message_type_name(type_)) + " field "
        + std::to_string(field_index_) + ": " + std::string(what));
}

Result<std::string_view> FrameReader::peek_value(std::uint16_t tag) const
{
    std::optional<FieldPos> field = field_at(frame_, pos_);
    if (!field)
        return field_error("missing, expected tag " + std::to_string(tag));
    if (field->tag != tag)
        return field_error("tag " + std::to_string(field->tag) + ", expected " + std::to_string(tag));
    return frame_.substr(field->value_pos, field->value_size);
}

Result<std::string_view> FrameReader::peek_fixed(std::uint16_t tag, std::size_t size) const
{
    Result<std::string_view> value = peek_value(tag);
    if (value && value->size() != size)
        return field_error(std::to_string(value->size()) + " octets, expected " + std::to_string(size));
    return value;
}

void FrameReader::advance(std::string_view value)
{
    // `value` is a view into frame_ returned by peek_value().
    pos_ = static_cast<std::size_t>(value.data() - frame_.data()) + value.size();
    ++field_index_;
}

Result<std::uint32_t> FrameReader::get_u32(std::uint16_t tag)
{
    Result<std::string_view> value = peek_fixed(tag, 4);
    if (!value)
        return std::move(value).error();
    advance(*value);
    return get_le32(*value, 0);
}

Result<std::uint64_t> FrameReader::get_u64(std::uint16_t tag)
{
    Result<std::string_view> value = peek_fixed(tag, 8);
    if (!value)
        return std::move(value).error();
    advance(*value);
    return get_le(*value, 0, 8);
}

Result<bool> FrameReader::get_bool(std::uint16_t tag)
{
    Result<std::string_view> value = peek_fixed(tag, 1);
    if (!value)
        return std::move(value).error();
    if ((*value)[0] != '\0' && (*value)[0] != '\1')
        return field_error("boolean neither 0 nor 1");
    advance(*value);
    return (*value)[0] == '\1';
}

Result<std::string_view> FrameReader::get_text(std::uint16_t tag)
{
    Result<std::string_view> value = peek_value(tag);
    if (!value)
        return value;
    if (!is_text(*value))
        return field_error("text with a control octet");
    advance(*value);
    return value;
}

Result<std::string_view> FrameReader::get_bytes(std::uint16_t tag)
{
    if (tag == fd_tag)
        return field_error("descriptor read as bytes");
    Result<std::string_view> value = peek_value(tag);
    if (value)
        advance(*value);
    return value;
}

Result<Fd> FrameReader::get_fd()
{
    Result<std::string_view> value = peek_fixed(fd_tag, 0);
    if (!value)
        return std::move(value).error();
    if (!attached_.valid())
        return field_error("no descriptor attached");
    advance(*value);
    return std::move(attached_);
}

Result<Field> FrameReader::get_field()
{
    std::optional<std::uint16_t> tag = next_tag();
    if (!tag)
        return field_error("missing");
    if (*tag == fd_tag)
        return field_error("descriptor read as a field");
    Result<std::string_view> value = peek_value(*tag);
    if (!value)
        return std::move(value).error();
    advance(*value);
    return Field{*tag, *value};
}

Result<void> FrameReader::finish() const
{
    if (!at_end())
        return field_error("left over at the end of the frame");
    return ok();
}

} // namespace mm::ipc
