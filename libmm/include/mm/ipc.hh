// SPDX-License-Identifier: GPL-2.0-or-later
// IPC between the daemons: typed frames over AF_UNIX SOCK_SEQPACKET sockets,
// with at most one descriptor passed beside a frame (SCM_RIGHTS). Frames come
// from other daemons and from users' clients, so they are untrusted: every
// length is checked, and a bad frame is an error for that connection only.
// Linked by every daemon and by the wrappers that talk to one.
#pragma once

#include "mm/fd.hh"
#include "mm/result.hh"

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/types.h>

namespace mm::ipc {

// Wire format, all integers little-endian whatever the host:
//   header  u16 version | u16 type | u32 payload length | u64 request id   (16 octets)
//   payload fields, each  u16 tag | u32 value length | value octets
// A frame is at most limits::ipc_frame octets in all and carries at most
// limits::ipc_fields fields. Field types are not on the wire: each message
// type fixes its tags, their order and their types, and the reader checks
// them in that order (OpenSMTPD's m_get_* with m_end). Values: u32 and u64
// little-endian, bool one octet 0 or 1, text without control octets, bytes
// anything. A passed descriptor is announced by an empty field with fd_tag,
// so a frame says how many descriptors must arrive with it.
inline constexpr std::uint16_t protocol_version = 1;
inline constexpr std::size_t header_size = 16;
inline constexpr std::size_t field_header_size = 6;
inline constexpr std::uint16_t fd_tag = 0xffff;

// Every frame type of the suite. The numbers are on the wire: never reuse or
// renumber one, only add. Hundreds group them by the daemon that serves them.
// What each carries is defined beside its server, not here.
enum class MessageType : std::uint16_t {
    // Any server's reply to a request that returns nothing else: ok or an Error kind and text.
    status = 1,

    // enqueue (from smtp-listener, sendmail, qmgr for DSNs): one submission.
    submit_begin = 100,  // envelope: sender, recipients, client information
    data_chunk = 101,    // message data, at most limits::ipc_data_chunk octets
    submit_end = 102,    // end of data: commit now
    submit_result = 103, // committed (queue id) or refused (error kind, text)

    // qmgr: notifications from enqueue, requests from mailq/runq/mailrm.
    new_message = 200,      // enqueue committed a message to new/ (a hint: qmgr re-reads it)
    run_queue = 201,        // runq: deliver everything deliverable now
    run_route = 202,        // runq -qo NAME: deliver what waits for this route
    route_online = 203,     // route-selector: a route came up
    queue_list = 204,       // mailq: list the queue
    queue_list_entry = 205, // one message of the listing
    queue_list_end = 206,   // end of the listing
    remove_message = 207,   // mailrm: delete a message

    // local-deliver and remote-deliver (from qmgr): one delivery, message fd attached.
    deliver = 300,
    delivery_result = 301, // per recipient: delivered, deferred or failed, with text
    remote_deliver = 302,  // remote-deliver: one message over one route to one next hop
    remote_result = 303,   // per recipient: delivered, deferred or failed, with the server's reply

    // route-selector (from qmgr).
    route_query = 400,  // which route and next hop does each recipient take now?
    route_answer = 401,
};

// Whether `value` is one of the MessageType numbers above.
bool is_message_type(std::uint16_t value);
// "submit_begin", ...; "unknown" for a number not in the registry.
const char* message_type_name(MessageType type);

// A text value: no control octet (0x00-0x1f, 0x7f); UTF-8 and other 8-bit
// octets pass. Addresses, queue ids, route names and error texts are text.
bool is_text(std::string_view value);

// Builds one frame. Errors (a text with control octets, a value past the size
// or field limit, a second descriptor) are kept and reported by finish(), so
// a sequence of add_*() calls needs no check of its own.
class FrameWriter {
public:
    FrameWriter(MessageType type, std::uint64_t request_id);

    void add_u32(std::uint16_t tag, std::uint32_t value);
    void add_u64(std::uint16_t tag, std::uint64_t value);
    void add_bool(std::uint16_t tag, bool value);
    // Refuses a value that is not is_text().
    void add_text(std::uint16_t tag, std::string_view value);
    void add_bytes(std::uint16_t tag, std::string_view value);
    // Announces the descriptor that send_frame() passes beside this frame.
    void add_fd();

    // The frame, or the first error. Once only: the writer is spent after.
    [[nodiscard]] Result<std::string> finish();

private:
    void add_field(std::uint16_t tag, std::string_view value);
    void fail(std::string message);

    std::string frame_;
    std::size_t fields_ = 0;
    std::size_t fds_ = 0;
    std::optional<Error> error_;
    bool finished_ = false;
};

// One field as on the wire, for code that walks a frame generically.
struct Field {
    std::uint16_t tag = 0;
    std::string_view value;
};

// Reads one frame. parse() checks the header and the framing of every field;
// the getters then take the fields in order, each checking the tag and the
// value, and finish() fails unless every field was taken. A failed getter
// leaves the reader where it was. Values are views into the parsed bytes,
// which the caller keeps alive while it uses the reader.
class FrameReader {
public:
    // `attached` is the descriptor received with the frame (not valid() if
    // none): the frame must announce exactly as many as arrived.
    [[nodiscard]] static Result<FrameReader> parse(std::string_view frame, Fd attached = Fd());
    // The reader keeps views into the frame: parsing a temporary string would dangle.
    static Result<FrameReader> parse(std::string&& frame, Fd attached = Fd()) = delete;

    MessageType type() const { return type_; }
    std::uint64_t request_id() const { return request_id_; }

    bool at_end() const { return pos_ >= frame_.size(); }
    // The tag of the next field, nothing at the end.
    std::optional<std::uint16_t> next_tag() const;
    bool next_is(std::uint16_t tag) const { return next_tag() == tag; }

    [[nodiscard]] Result<std::uint32_t> get_u32(std::uint16_t tag);
    [[nodiscard]] Result<std::uint64_t> get_u64(std::uint16_t tag);
    [[nodiscard]] Result<bool> get_bool(std::uint16_t tag);
    [[nodiscard]] Result<std::string_view> get_text(std::uint16_t tag);
    [[nodiscard]] Result<std::string_view> get_bytes(std::uint16_t tag);
    // The descriptor announced by the next field.
    [[nodiscard]] Result<Fd> get_fd();
    // The next field whatever its tag (not a descriptor announcement).
    [[nodiscard]] Result<Field> get_field();

    // Optional fields: the value when the next field has `tag`, else nothing.
    [[nodiscard]] Result<std::optional<std::uint32_t>> get_optional_u32(std::uint16_t tag)
    {
        return get_optional(tag, &FrameReader::get_u32);
    }
    [[nodiscard]] Result<std::optional<std::uint64_t>> get_optional_u64(std::uint16_t tag)
    {
        return get_optional(tag, &FrameReader::get_u64);
    }
    [[nodiscard]] Result<std::optional<bool>> get_optional_bool(std::uint16_t tag)
    {
        return get_optional(tag, &FrameReader::get_bool);
    }
    [[nodiscard]] Result<std::optional<std::string_view>> get_optional_text(std::uint16_t tag)
    {
        return get_optional(tag, &FrameReader::get_text);
    }
    [[nodiscard]] Result<std::optional<std::string_view>> get_optional_bytes(std::uint16_t tag)
    {
        return get_optional(tag, &FrameReader::get_bytes);
    }

    // The end check: fails if any field (or the descriptor) was not taken.
    [[nodiscard]] Result<void> finish() const;

private:
    FrameReader(std::string_view frame, MessageType type, std::uint64_t request_id, Fd attached);
    // The value of the next field if its tag is `tag`, without advancing.
    Result<std::string_view> peek_value(std::uint16_t tag) const;
    Result<std::string_view> peek_fixed(std::uint16_t tag, std::size_t size) const;
    void advance(std::string_view value);
    Error field_error(std::string_view what) const;

    template <class T>
    Result<std::optional<T>> get_optional(std::uint16_t tag, Result<T> (FrameReader::*getter)(std::uint16_t))
    {
        if (!next_is(tag))
            return std::optional<T>();
        Result<T> value = (this->*getter)(tag);
        if (!value)
            return std::move(value).error();
        return std::optional<T>(std::move(value).value());
    }

    std::string_view frame_;
    MessageType type_;
    std::uint64_t request_id_;
    Fd attached_;
    std::size_t pos_ = header_size;
    std::size_t field_index_ = 0;
};

// --- Sockets: AF_UNIX SOCK_SEQPACKET, close-on-exec always. ---

enum class IoMode { blocking, nonblocking };

// recv_frame()'s outcomes that are not errors.
enum class RecvStatus {
    frame,       // `bytes` holds one frame (not yet parsed), `fd` what came with it
    peer_closed, // orderly end of the connection
    would_block, // non-blocking socket, nothing to read: wait for readability
};

struct Received {
    RecvStatus status = RecvStatus::frame;
    std::string bytes;
    Fd fd; // not valid() when no descriptor came
};

// Sends one frame, and `pass_fd` beside it when given. Never raises SIGPIPE.
// A non-blocking socket that is full gives an error for which
// is_would_block() is true: wait for writability and send again.
[[nodiscard]] Result<void> send_frame(const Fd& sock, std::string_view frame, const Fd* pass_fd = nullptr);
// Receives one frame and at most limits::ipc_fds descriptor (close-on-exec).
// A frame longer than limits::ipc_frame, a cut control message, more
// descriptors or other ancillary data: a protocol error, every received
// descriptor closed, and the next frame unaffected. An empty message counts
// as the end (SOCK_SEQPACKET cannot tell them apart; no frame is empty).
[[nodiscard]] Result<Received> recv_frame(const Fd& sock);
// True for the error of an operation on a non-blocking socket that would block.
bool is_would_block(const Error& error);

// The peer's pid, uid and gid as the kernel recorded them at connect time.
[[nodiscard]] Result<ucred> peer_credentials(const Fd& sock);
// ok if the peer's uid is one of `allowed`; else a permanent error (EPERM).
[[nodiscard]] Result<void> require_peer_uid(const Fd& sock, std::span<const uid_t> allowed);
[[nodiscard]] Result<void> require_peer_uid(const Fd& sock, std::initializer_list<uid_t> allowed);

struct SocketPair {
    Fd first;
    Fd second;
};
// A connected pair, as the supervisor wires daemons and tests use.
[[nodiscard]] Result<SocketPair> seqpacket_pair(IoMode mode = IoMode::blocking);

// Binds and listens at `path` with socket file mode `mode` (set through the
// umask during bind(2): the process is single-threaded). A stale socket left
// by a dead server is replaced; a live one, or any file that is not a socket,
// is an error. The directory must be writable only by the caller's user.
[[nodiscard]] Result<Fd> listen_seqpacket(const std::string& path, mode_t mode, IoMode io = IoMode::nonblocking);
// Accepts one connection; with nothing pending on a non-blocking listener,
// an error for which is_would_block() is true.
[[nodiscard]] Result<Fd> accept_seqpacket(const Fd& listener, IoMode io = IoMode::nonblocking);
// Connects to the server listening at `path`.
[[nodiscard]] Result<Fd> connect_seqpacket(const std::string& path, IoMode io = IoMode::blocking);

} // namespace mm::ipc
