// SPDX-License-Identifier: GPL-2.0-or-later
#include "catch.hh"
#include "mm/ipc.hh"
#include "mm/limits.hh"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using mm::ErrorKind;
using mm::Fd;
using mm::ipc::FrameReader;
using mm::ipc::FrameWriter;
using mm::ipc::MessageType;
using mm::ipc::RecvStatus;
using mm::test::TempDir;

namespace {

std::string le(std::uint64_t value, std::size_t octets)
{
    std::string s;
    for (std::size_t i = 0; i < octets; ++i)
        s += static_cast<char>((value >> (8 * i)) & 0xff);
    return s;
}

std::string header(std::uint16_t type, std::size_t payload, std::uint64_t id = 7, std::uint16_t version = 1)
{
    return le(version, 2) + le(type, 2) + le(payload, 4) + le(id, 8);
}

std::string field(std::uint16_t tag, std::string_view value)
{
    return le(tag, 2) + le(value.size(), 4) + std::string(value);
}

// A frame assembled by hand, so the reader sees what no FrameWriter makes.
std::string raw_frame(std::uint16_t type, const std::string& payload)
{
    return header(type, payload.size()) + payload;
}

std::string finished(FrameWriter& w)
{
    mm::Result<std::string> frame = w.finish();
    REQUIRE(frame);
    return std::move(frame).value();
}

FrameReader parsed(const std::string& frame, Fd attached = Fd())
{
    mm::Result<FrameReader> r = FrameReader::parse(frame, std::move(attached));
    if (!r)
        FAIL(r.error().message());
    return std::move(r).value();
}

// Whether `frame` parses, or the error: the reader is dropped at once, so
// the frame may be a temporary.
mm::Result<void> parse_check(std::string_view frame, Fd attached = Fd())
{
    mm::Result<FrameReader> r = FrameReader::parse(frame, std::move(attached));
    if (!r)
        return std::move(r).error();
    return mm::ok();
}

FrameReader parsed(std::string&& frame, Fd attached = Fd()) = delete;

void check_protocol_error(const mm::Error& e)
{
    CHECK(e.kind() == ErrorKind::protocol);
}

constexpr auto submit = MessageType::submit_begin;

mm::ipc::SocketPair pair(mm::ipc::IoMode mode = mm::ipc::IoMode::blocking)
{
    mm::Result<mm::ipc::SocketPair> p = mm::ipc::seqpacket_pair(mode);
    REQUIRE(p);
    return std::move(p).value();
}

mm::ipc::Received received(const Fd& sock)
{
    mm::Result<mm::ipc::Received> rx = mm::ipc::recv_frame(sock);
    if (!rx)
        FAIL(rx.error().message());
    return std::move(rx).value();
}

std::string small_frame(std::uint64_t id, std::string_view text)
{
    FrameWriter w(MessageType::new_message, id);
    w.add_text(1, text);
    return finished(w);
}

} // namespace

// --- Frames ---

TEST_CASE("every field type survives a round trip")
{
    FrameWriter w(MessageType::deliver, 0x0102030405060708u);
    w.add_u32(1, 0);
    w.add_u32(2, 0xffffffffu);
    w.add_u64(3, 0xfedcba9876543210u);
    w.add_bool(4, true);
    w.add_bool(5, false);
    w.add_text(6, "j\xc3\xb6rg@example.org");
    w.add_text(7, "");
    w.add_bytes(8, std::string("a\0b\r\n\x7f", 6));
    w.add_bytes(9, "");
    std::string frame = finished(w);

    FrameReader r = parsed(frame);
    CHECK(r.type() == MessageType::deliver);
    CHECK(r.request_id() == 0x0102030405060708u);
    CHECK(*r.get_u32(1) == 0);
    CHECK(*r.get_u32(2) == 0xffffffffu);
    CHECK(*r.get_u64(3) == 0xfedcba9876543210u);
    CHECK(*r.get_bool(4) == true);
    CHECK(*r.get_bool(5) == false);
    CHECK(*r.get_text(6) == "j\xc3\xb6rg@example.org");
    CHECK(r.get_text(7)->empty());
    CHECK(*r.get_bytes(8) == std::string("a\0b\r\n\x7f", 6));
    CHECK(r.get_bytes(9)->empty());
    CHECK(r.at_end());
    CHECK(r.finish());
}

TEST_CASE("the wire format is fixed and little-endian")
{
    FrameWriter w(MessageType::submit_result, 0x1122334455667788u);
    w.add_u32(0x0a0b, 0x01020304u);
    std::string expected = std::string("\x01\x00" "\x67\x00" "\x0a\x00\x00\x00", 8)
        + "\x88\x77\x66\x55\x44\x33\x22\x11"
        + std::string("\x0b\x0a" "\x04\x00\x00\x00" "\x04\x03\x02\x01", 10);
    CHECK(finished(w) == expected);
    CHECK(mm::ipc::header_size == 16);

    FrameWriter empty(MessageType::run_queue, 0);
    CHECK(finished(empty).size() == mm::ipc::header_size);
}

TEST_CASE("the end check refuses a left-over field")
{
    FrameWriter w(submit, 1);
    w.add_text(1, "sender@example.org");
    w.add_u32(2, 5);
    std::string frame = finished(w);

    FrameReader r = parsed(frame);
    REQUIRE(r.get_text(1));
    auto end = r.finish();
    REQUIRE_FALSE(end);
    check_protocol_error(end.error());
    REQUIRE(r.get_u32(2));
    CHECK(r.finish());
}

TEST_CASE("a wrong tag, type or length is a protocol error and moves nothing")
{
    FrameWriter w(submit, 1);
    w.add_u32(1, 42);
    w.add_bytes(2, "xy");
    w.add_bytes(3, std::string(1, '\2'));
    w.add_bytes(4, std::string("bad\rtext", 8));
    std::string frame = finished(w);
    FrameReader r = parsed(frame);

    auto wrong_tag = r.get_u32(9);
    REQUIRE_FALSE(wrong_tag);
    check_protocol_error(wrong_tag.error());
    CHECK_FALSE(r.get_u64(1));  // 4 octets are not a u64
    CHECK_FALSE(r.get_bool(1)); // nor a bool
    CHECK(*r.get_u32(1) == 42); // the failed getters left the reader in place

    CHECK_FALSE(r.get_u32(2));
    CHECK_FALSE(r.get_bool(2));
    CHECK(*r.get_bytes(2) == "xy");

    auto not_bool = r.get_bool(3); // one octet, but neither 0 nor 1
    REQUIRE_FALSE(not_bool);
    check_protocol_error(not_bool.error());
    CHECK(r.get_bytes(3));

    auto not_text = r.get_text(4);
    REQUIRE_FALSE(not_text);
    check_protocol_error(not_text.error());
    CHECK(*r.get_bytes(4) == std::string("bad\rtext", 8));

    auto past_end = r.get_u32(5);
    REQUIRE_FALSE(past_end);
    check_protocol_error(past_end.error());
    CHECK(r.finish());
}

TEST_CASE("optional fields are taken only when they come next")
{
    FrameWriter w(MessageType::route_answer, 3);
    w.add_text(1, "dialup");
    w.add_u64(3, 99);
    std::string frame = finished(w);
    FrameReader r = parsed(frame);

    CHECK(r.next_tag() == 1);
    auto route = r.get_optional_text(1);
    REQUIRE(route);
    CHECK(route->value() == "dialup");
    auto absent = r.get_optional_u32(2);
    REQUIRE(absent);
    CHECK_FALSE(absent->has_value());
    CHECK(r.next_is(3));
    CHECK_FALSE(r.get_optional_u32(3)); // present but of the wrong size: an error
    auto size = r.get_optional_u64(3);
    REQUIRE(size);
    CHECK(size->value() == 99);
    CHECK_FALSE(r.next_tag().has_value());
    auto none = r.get_optional_bool(4);
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
    CHECK(r.finish());
}

TEST_CASE("a frame truncated at any octet is refused")
{
    FrameWriter w(submit, 77);
    w.add_text(1, "someone@example.org");
    w.add_u64(2, 12345);
    w.add_bool(3, true);
    w.add_bytes(4, "body");
    std::string frame = finished(w);
    REQUIRE(parse_check(frame));

    for (std::size_t cut = 0; cut < frame.size(); ++cut) {
        INFO("cut at " << cut);
        std::string prefix = frame.substr(0, cut);
        auto as_sent = parse_check(prefix);
        REQUIRE_FALSE(as_sent);
        check_protocol_error(as_sent.error());
        // Even with the payload length fixed up, the last field is cut.
        if (cut > mm::ipc::header_size) {
            std::string fixed = header(static_cast<std::uint16_t>(submit), cut - mm::ipc::header_size, 77)
                + prefix.substr(mm::ipc::header_size);
            auto inner = parse_check(fixed);
            bool on_field_boundary = cut == 16 + 6 + 19 || cut == 16 + 6 + 19 + 6 + 8 || cut == 16 + 6 + 19 + 6 + 8 + 6 + 1;
            CHECK(inner.has_value() == on_field_boundary);
        }
    }
}

TEST_CASE("the header is checked")
{
    std::string payload = field(1, "x");
    CHECK(parse_check(raw_frame(static_cast<std::uint16_t>(submit), payload)));
    CHECK_FALSE(parse_check(header(100, payload.size(), 7, 2) + payload)); // version
    CHECK_FALSE(parse_check(header(100, payload.size(), 7, 0) + payload));
    CHECK_FALSE(parse_check(raw_frame(0, payload)));    // type 0
    CHECK_FALSE(parse_check(raw_frame(999, payload)));  // unregistered type
    CHECK_FALSE(parse_check(header(100, payload.size() + 1) + payload));
    CHECK_FALSE(parse_check(header(100, payload.size() - 1) + payload));
    CHECK_FALSE(parse_check(header(100, payload.size()) + payload + "z")); // trailing octet
    CHECK_FALSE(parse_check(std::string_view()));
    // A field length that would wrap an offset computation.
    std::string huge = le(1, 2) + le(0xffffffffu, 4) + "abc";
    CHECK_FALSE(parse_check(raw_frame(100, huge)));
}

TEST_CASE("frames larger than the limit are refused by the writer and the reader")
{
    constexpr std::size_t room = mm::limits::ipc_frame - mm::ipc::header_size - mm::ipc::field_header_size;
    SECTION("exactly the limit passes")
    {
        FrameWriter w(MessageType::data_chunk, 1);
        w.add_bytes(1, std::string(room, 'x'));
        std::string frame = finished(w);
        CHECK(frame.size() == mm::limits::ipc_frame);
        FrameReader r = parsed(frame);
        CHECK(r.get_bytes(1)->size() == room);
    }
    SECTION("one octet more fails in the writer")
    {
        FrameWriter w(MessageType::data_chunk, 1);
        w.add_bytes(1, std::string(room + 1, 'x'));
        auto frame = w.finish();
        REQUIRE_FALSE(frame);
        CHECK(frame.error().kind() == ErrorKind::internal);
    }
    SECTION("the limit reached by many fields fails in the writer")
    {
        FrameWriter w(MessageType::data_chunk, 1);
        for (int i = 0; i < 70; ++i)
            w.add_bytes(1, std::string(1000, 'x'));
        CHECK_FALSE(w.finish());
    }
    SECTION("one octet more fails in the reader")
    {
        std::string payload = field(1, std::string(room + 1, 'x'));
        auto r = parse_check(raw_frame(101, payload));
        REQUIRE_FALSE(r);
        check_protocol_error(r.error());
    }
}

TEST_CASE("the field count is limited")
{
    FrameWriter w(MessageType::queue_list_entry, 1);
    for (std::size_t i = 0; i < mm::limits::ipc_fields; ++i)
        w.add_bytes(1, "");
    std::string frame = finished(w);
    FrameReader r = parsed(frame);
    for (std::size_t i = 0; i < mm::limits::ipc_fields; ++i)
        REQUIRE(r.get_bytes(1));
    CHECK(r.finish());

    FrameWriter over(MessageType::queue_list_entry, 1);
    for (std::size_t i = 0; i <= mm::limits::ipc_fields; ++i)
        over.add_bytes(1, "");
    CHECK_FALSE(over.finish());

    std::string payload;
    for (std::size_t i = 0; i <= mm::limits::ipc_fields; ++i)
        payload += field(1, "");
    auto parsed_over = parse_check(raw_frame(205, payload));
    REQUIRE_FALSE(parsed_over);
    check_protocol_error(parsed_over.error());
}

TEST_CASE("text refuses control octets, bytes do not")
{
    for (std::string bad : {std::string("a\rb"), std::string("a\nb"), std::string("a\0b", 3),
             std::string("a\tb"), std::string("a\x7f"), std::string("\x1b[2J")}) {
        INFO("text " << bad.size());
        CHECK_FALSE(mm::ipc::is_text(bad));
        FrameWriter w(submit, 1);
        w.add_text(1, bad);
        auto frame = w.finish();
        REQUIRE_FALSE(frame);
        CHECK(frame.error().kind() == ErrorKind::internal);

        FrameWriter raw(submit, 1);
        raw.add_bytes(1, bad);
        std::string bytes = finished(raw);
        FrameReader r = parsed(bytes);
        CHECK_FALSE(r.get_text(1));
        CHECK(*r.get_bytes(1) == bad);
    }
    CHECK(mm::ipc::is_text("route \xe2\x86\x92 smarthost ~!"));
}

TEST_CASE("the writer reports misuse at finish")
{
    SECTION("finished twice")
    {
        FrameWriter w(submit, 1);
        REQUIRE(w.finish());
        CHECK_FALSE(w.finish());
    }
    SECTION("a value with the descriptor tag")
    {
        FrameWriter w(submit, 1);
        w.add_u32(mm::ipc::fd_tag, 1);
        CHECK_FALSE(w.finish());
    }
    SECTION("two descriptors")
    {
        FrameWriter w(submit, 1);
        w.add_fd();
        w.add_fd();
        CHECK_FALSE(w.finish());
    }
    SECTION("the first error is the one reported")
    {
        FrameWriter w(submit, 1);
        w.add_text(1, "bad\n");
        w.add_bytes(2, std::string(mm::limits::ipc_frame, 'x'));
        auto frame = w.finish();
        REQUIRE_FALSE(frame);
        CHECK(frame.error().message().find("control") != std::string::npos);
    }
}

TEST_CASE("a descriptor must be announced exactly when it arrives")
{
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    Fd read_end(pipe_fds[0]);
    Fd write_end(pipe_fds[1]);

    FrameWriter w(MessageType::deliver, 5);
    w.add_text(1, "1700000000.abcdef");
    w.add_fd();
    std::string with_fd = finished(w);

    CHECK_FALSE(parse_check(with_fd)); // announced, none arrived
    FrameReader r = parsed(with_fd, Fd(::dup(read_end.get())));
    CHECK_FALSE(r.get_fd());                  // not next yet
    CHECK_FALSE(r.finish());
    REQUIRE(r.get_text(1));
    CHECK(r.next_is(mm::ipc::fd_tag));
    CHECK_FALSE(r.get_bytes(mm::ipc::fd_tag));
    CHECK_FALSE(r.get_field());
    CHECK_FALSE(r.finish());                  // the descriptor was not taken
    auto fd = r.get_fd();
    REQUIRE(fd);
    CHECK(fd->valid());
    CHECK(r.finish());

    std::string without_fd = small_frame(1, "x");
    auto surplus = parse_check(without_fd, Fd(::dup(read_end.get())));
    REQUIRE_FALSE(surplus);
    check_protocol_error(surplus.error());

    auto fd_with_value = parse_check(raw_frame(300, field(mm::ipc::fd_tag, "1")), Fd(::dup(read_end.get())));
    CHECK_FALSE(fd_with_value);
    auto two = parse_check(raw_frame(300, field(mm::ipc::fd_tag, "") + field(mm::ipc::fd_tag, "")),
        Fd(::dup(read_end.get())));
    CHECK_FALSE(two);
}

TEST_CASE("the message type registry is stable and complete")
{
    CHECK(static_cast<int>(MessageType::submit_begin) == 100);
    CHECK(static_cast<int>(MessageType::new_message) == 200);
    CHECK(static_cast<int>(MessageType::deliver) == 300);
    CHECK(static_cast<int>(MessageType::remote_deliver) == 302);
    CHECK(static_cast<int>(MessageType::remote_result) == 303);
    CHECK(static_cast<int>(MessageType::route_query) == 400);
    std::set<std::string> names;
    int known = 0;
    for (unsigned v = 0; v <= 0xffff; ++v) {
        auto value = static_cast<std::uint16_t>(v);
        if (!mm::ipc::is_message_type(value))
            continue;
        ++known;
        std::string name = mm::ipc::message_type_name(static_cast<MessageType>(value));
        CHECK(name != "unknown");
        names.insert(name);
    }
    CHECK(known == 19);
    CHECK(names.size() == 19);
    CHECK(std::string(mm::ipc::message_type_name(static_cast<MessageType>(999))) == "unknown");
}

// --- Sockets ---

TEST_CASE("frames cross a socketpair with their boundaries")
{
    auto [a, b] = pair();
    std::string first = small_frame(1, "one");
    FrameWriter big(MessageType::data_chunk, 2);
    big.add_bytes(1, std::string(mm::limits::ipc_data_chunk, 'D'));
    std::string second = finished(big);
    std::string third = small_frame(3, "three");
    REQUIRE(mm::ipc::send_frame(a, first));
    REQUIRE(mm::ipc::send_frame(a, second));
    REQUIRE(mm::ipc::send_frame(a, third));

    for (const std::string* expected : {&first, &second, &third}) {
        mm::ipc::Received rx = received(b);
        CHECK(rx.status == RecvStatus::frame);
        CHECK_FALSE(rx.fd.valid());
        CHECK(rx.bytes == *expected);
    }
}

TEST_CASE("a descriptor passed beside a frame works at the other end")
{
    auto [a, b] = pair();
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    Fd read_end(pipe_fds[0]);
    Fd write_end(pipe_fds[1]);

    FrameWriter w(MessageType::deliver, 9);
    w.add_fd();
    std::string frame = finished(w);
    REQUIRE(mm::ipc::send_frame(a, frame, &read_end));
    REQUIRE(read_end.close());

    mm::ipc::Received rx = received(b);
    REQUIRE(rx.status == RecvStatus::frame);
    REQUIRE(rx.fd.valid());
    CHECK((::fcntl(rx.fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
    FrameReader r = parsed(rx.bytes, std::move(rx.fd));
    auto fd = r.get_fd();
    REQUIRE(fd);
    REQUIRE(r.finish());

    REQUIRE(::write(write_end.get(), "hello", 5) == 5);
    char buf[8] = {};
    CHECK(::read(fd->get(), buf, sizeof(buf)) == 5);
    CHECK(std::string(buf, 5) == "hello");
}

namespace {

// Sends `frame` with the descriptors `fds` as one SCM_RIGHTS message, by hand.
void send_with_fds(const Fd& sock, std::string frame, const std::vector<int>& fds)
{
    std::vector<char> control(CMSG_SPACE(fds.size() * sizeof(int)));
    iovec iov{frame.data(), frame.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    REQUIRE(::sendmsg(sock.get(), &msg, 0) == static_cast<ssize_t>(frame.size()));
}

} // namespace

TEST_CASE("more descriptors than one are closed and refused")
{
    auto [a, b] = pair();
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    Fd read_end(pipe_fds[0]);
    std::string frame = small_frame(1, "x");
    // 2 fit the receive buffer and are closed by recv_frame; of 20, the
    // kernel cuts those that do not fit (MSG_CTRUNC) and closes them.
    std::size_t count = GENERATE(2u, 20u);
    {
        Fd write_end(pipe_fds[1]);
        std::vector<int> fds(count, write_end.get());
        send_with_fds(a, frame, fds);
    } // now only the receiver holds the write end
    auto rx = mm::ipc::recv_frame(b);
    REQUIRE_FALSE(rx);
    check_protocol_error(rx.error());
    char c = 0;
    CHECK(::read(read_end.get(), &c, 1) == 0); // every copy of the write end is closed

    REQUIRE(mm::ipc::send_frame(a, frame));
    CHECK(received(b).bytes == frame);
}

TEST_CASE("a malformed frame fails alone; the next frame reads normally")
{
    auto [a, b] = pair();
    std::string garbage = "\x01\x00\x64\x00garbage";
    REQUIRE(mm::ipc::send_frame(a, garbage));
    std::string oversized(mm::limits::ipc_frame + 1, 'x');
    REQUIRE(::send(a.get(), oversized.data(), oversized.size(), 0) == static_cast<ssize_t>(oversized.size()));
    std::string good = small_frame(2, "after");
    REQUIRE(mm::ipc::send_frame(a, good));

    mm::ipc::Received bad = received(b);
    CHECK_FALSE(parse_check(bad.bytes));
    auto too_big = mm::ipc::recv_frame(b);
    REQUIRE_FALSE(too_big);
    check_protocol_error(too_big.error());
    mm::ipc::Received next = received(b);
    FrameReader r = parsed(next.bytes);
    CHECK(r.request_id() == 2);
    CHECK(*r.get_text(1) == "after");
    CHECK(r.finish());
}

TEST_CASE("send_frame refuses empty and oversized frames")
{
    auto [a, b] = pair();
    CHECK_FALSE(mm::ipc::send_frame(a, ""));
    CHECK_FALSE(mm::ipc::send_frame(a, std::string(mm::limits::ipc_frame + 1, 'x')));
    Fd invalid;
    CHECK_FALSE(mm::ipc::send_frame(a, small_frame(1, "x"), &invalid));
}

TEST_CASE("the end of the connection is a status, not an error")
{
    auto [a, b] = pair();
    REQUIRE(mm::ipc::send_frame(a, small_frame(1, "last")));
    REQUIRE(a.close());
    CHECK(received(b).status == RecvStatus::frame);
    mm::ipc::Received end = received(b);
    CHECK(end.status == RecvStatus::peer_closed);
    CHECK(end.bytes.empty());
    CHECK(received(b).status == RecvStatus::peer_closed);

    auto sent = mm::ipc::send_frame(b, small_frame(2, "to nobody"));
    REQUIRE_FALSE(sent);
    CHECK(sent.error().sys_errno() == EPIPE);
}

TEST_CASE("non-blocking sockets report would-block")
{
    auto [a, b] = pair(mm::ipc::IoMode::nonblocking);
    CHECK(received(b).status == RecvStatus::would_block);

    std::string frame = small_frame(1, std::string(1000, 'f'));
    mm::Result<void> sent;
    for (int i = 0; i < 100000 && sent; ++i)
        sent = mm::ipc::send_frame(a, frame);
    REQUIRE_FALSE(sent);
    CHECK(mm::ipc::is_would_block(sent.error()));
    CHECK(received(b).bytes == frame);
}

TEST_CASE("the peer's uid is checked")
{
    auto [a, b] = pair();
    auto cred = mm::ipc::peer_credentials(b);
    REQUIRE(cred);
    CHECK(cred->uid == ::getuid());
    CHECK(cred->pid == ::getpid());
    CHECK(mm::ipc::require_peer_uid(b, {::getuid()}));
    CHECK(mm::ipc::require_peer_uid(b, {::getuid() + 1, ::getuid()}));

    auto refused = mm::ipc::require_peer_uid(b, {::getuid() + 1, ::getuid() + 2});
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind() == ErrorKind::permanent);
    CHECK(refused.error().sys_errno() == EPERM);
    CHECK_FALSE(mm::ipc::require_peer_uid(b, {}));

    Fd not_a_socket(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    CHECK_FALSE(mm::ipc::peer_credentials(not_a_socket));
}

TEST_CASE("listen, connect and accept at a path")
{
    TempDir dir;
    std::string path = dir.file("qmgr.sock");
    auto listener = mm::ipc::listen_seqpacket(path, 0660);
    REQUIRE(listener);
    struct stat st{};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0660);

    auto nothing = mm::ipc::accept_seqpacket(*listener);
    REQUIRE_FALSE(nothing);
    CHECK(mm::ipc::is_would_block(nothing.error()));

    auto client = mm::ipc::connect_seqpacket(path);
    REQUIRE(client);
    auto server = mm::ipc::accept_seqpacket(*listener, mm::ipc::IoMode::blocking);
    REQUIRE(server);
    CHECK(mm::ipc::require_peer_uid(*server, {::getuid()}));
    REQUIRE(mm::ipc::send_frame(*client, small_frame(4, "hello qmgr")));
    CHECK(received(*server).bytes == small_frame(4, "hello qmgr"));

    SECTION("a live socket is not replaced")
    {
        auto second = mm::ipc::listen_seqpacket(path, 0600);
        REQUIRE_FALSE(second);
        CHECK(second.error().sys_errno() == EADDRINUSE);
    }
    SECTION("a stale socket is replaced")
    {
        listener->reset();
        auto again = mm::ipc::listen_seqpacket(path, 0600);
        REQUIRE(again);
        REQUIRE(::lstat(path.c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0600);
        CHECK(mm::ipc::connect_seqpacket(path));
    }
}

TEST_CASE("listen refuses to replace anything but a socket")
{
    TempDir dir;
    std::string path = dir.file("file");
    REQUIRE(::close(::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)) == 0);
    auto on_file = mm::ipc::listen_seqpacket(path, 0600);
    REQUIRE_FALSE(on_file);
    CHECK(on_file.error().kind() == ErrorKind::permanent);
    CHECK(::access(path.c_str(), F_OK) == 0);

    std::string link = dir.file("link");
    REQUIRE(::symlink(path.c_str(), link.c_str()) == 0);
    CHECK_FALSE(mm::ipc::listen_seqpacket(link, 0600));
    CHECK(::access(path.c_str(), F_OK) == 0);
}

TEST_CASE("socket paths longer than sun_path are refused")
{
    TempDir dir;
    std::string base = dir.path() + "/";
    std::string longest = base + std::string(107 - base.size(), 's');
    REQUIRE(longest.size() == 107);
    CHECK(mm::ipc::listen_seqpacket(longest, 0600));

    std::string too_long = longest + "s";
    auto listen = mm::ipc::listen_seqpacket(too_long, 0600);
    REQUIRE_FALSE(listen);
    CHECK(listen.error().kind() == ErrorKind::permanent);
    CHECK(listen.error().message().find("socket path") != std::string::npos);
    auto connect = mm::ipc::connect_seqpacket(too_long);
    REQUIRE_FALSE(connect);
    CHECK(connect.error().kind() == ErrorKind::permanent);
    CHECK_FALSE(mm::ipc::connect_seqpacket(""));
    CHECK_FALSE(mm::ipc::connect_seqpacket(std::string("/tmp/a\0b", 8)));
}
