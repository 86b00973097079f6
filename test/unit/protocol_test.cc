// SPDX-License-Identifier: GPL-2.0-or-later
#include "catch.hh"
#include "mm/ipc.hh"
#include "mm/limits.hh"
#include "mm/protocol.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <cstdint>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace protocol = mm::protocol;
namespace ex = mm::ex;
using mm::Error;
using mm::ErrorKind;
using mm::Fd;
using mm::RecipientState;
using mm::ipc::FrameReader;
using mm::ipc::FrameWriter;
using mm::ipc::MessageType;

namespace {

// Field tags as protocol.cc puts them on the wire: a test that builds a
// hostile frame by hand needs them, and a renumbering must break it.
constexpr std::uint16_t t_ok = 1;
constexpr std::uint16_t t_kind = 2;
constexpr std::uint16_t t_exit = 3;
constexpr std::uint16_t t_text = 4;
constexpr std::uint16_t t_errno = 5;
constexpr std::uint16_t t_sender = 10;
constexpr std::uint16_t t_recipient = 11;
constexpr std::uint16_t t_extract = 12;
constexpr std::uint16_t t_queue_id = 20;
constexpr std::uint16_t t_return_path = 21;
constexpr std::uint16_t t_leaf = 22;
constexpr std::uint16_t t_ident = 23;
constexpr std::uint16_t t_offset = 25;
constexpr std::uint16_t t_length = 26;
constexpr std::uint16_t t_outcome = 27;
constexpr std::uint16_t t_reason = 28;
constexpr std::uint16_t t_route = 29;
constexpr std::uint16_t t_continued = 30;
constexpr std::uint16_t t_state = 35;
constexpr std::uint16_t t_eight_bit = 41;
constexpr std::uint16_t t_pass = 43;
constexpr std::uint16_t t_connection = 44;
constexpr std::uint16_t t_next_hop = 45;
constexpr std::uint16_t t_header_length = 46;
constexpr std::uint16_t t_server = 47;
constexpr std::uint16_t t_unknown = 99;

const std::string queue_id_a = "1700000000.0123456789abcdef";
const std::string queue_id_b = "1700000001.fedcba9876543210";
const std::string content = "From: alice@example.org\nSubject: hi\n\nbody\n";

template <class T> T value_of(mm::Result<T> r)
{
    if (!r)
        FAIL(r.error().message());
    return std::move(r).value();
}

FrameReader parsed(const std::string& frame, Fd attached = Fd())
{
    return value_of(FrameReader::parse(frame, std::move(attached)));
}
FrameReader parsed(std::string&& frame, Fd attached = Fd()) = delete;

// A memfd holding `content`, as the front end hands it to enqueue.
Fd content_fd()
{
    Fd fd(::memfd_create("protocol-test", MFD_CLOEXEC));
    REQUIRE(fd.valid());
    REQUIRE(::write(fd.get(), content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    return fd;
}

std::string read_all(const Fd& fd)
{
    std::string out(256, '\0');
    ssize_t n = ::pread(fd.get(), out.data(), out.size(), 0);
    REQUIRE(n >= 0);
    out.resize(static_cast<std::size_t>(n));
    return out;
}

// A frame taken apart into its fields, edited, and put together again, so a
// test can drop, add or change one field of what an encoder made.
struct RawFrame {
    std::uint16_t type = 0;
    std::uint64_t request_id = 0;
    std::vector<std::pair<std::uint16_t, std::string>> fields;
};

std::uint64_t get_le(const std::string& s, std::size_t pos, std::size_t octets)
{
    REQUIRE(pos + octets <= s.size());
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < octets; ++i)
        v |= std::uint64_t { static_cast<unsigned char>(s[pos + i]) } << (8 * i);
    return v;
}

std::string le(std::uint64_t value, std::size_t octets)
{
    std::string s;
    for (std::size_t i = 0; i < octets; ++i)
        s += static_cast<char>(i < 8 ? (value >> (8 * i)) & 0xff : 0); // past 8 octets: zeros
    return s;
}

RawFrame split(const std::string& frame)
{
    RawFrame raw;
    raw.type = static_cast<std::uint16_t>(get_le(frame, 2, 2));
    raw.request_id = get_le(frame, 8, 8);
    std::size_t pos = mm::ipc::header_size;
    while (pos < frame.size()) {
        auto tag = static_cast<std::uint16_t>(get_le(frame, pos, 2));
        std::size_t size = get_le(frame, pos + 2, 4);
        REQUIRE(pos + mm::ipc::field_header_size + size <= frame.size());
        raw.fields.emplace_back(tag, frame.substr(pos + mm::ipc::field_header_size, size));
        pos += mm::ipc::field_header_size + size;
    }
    return raw;
}

std::string join(const RawFrame& raw)
{
    std::string payload;
    for (const auto& [tag, value] : raw.fields)
        payload += le(tag, 2) + le(value.size(), 4) + value;
    return le(mm::ipc::protocol_version, 2) + le(raw.type, 2) + le(payload.size(), 4) + le(raw.request_id, 8)
        + payload;
}

std::size_t index_of(const RawFrame& raw, std::uint16_t tag)
{
    for (std::size_t i = 0; i < raw.fields.size(); ++i)
        if (raw.fields[i].first == tag)
            return i;
    FAIL("no field with tag " << tag);
    return 0;
}

std::string without_field(const std::string& frame, std::uint16_t tag)
{
    RawFrame raw = split(frame);
    raw.fields.erase(raw.fields.begin() + static_cast<std::ptrdiff_t>(index_of(raw, tag)));
    return join(raw);
}

std::string with_extra_field(const std::string& frame, std::uint16_t tag = t_unknown, std::string value = "x")
{
    RawFrame raw = split(frame);
    raw.fields.emplace_back(tag, std::move(value));
    return join(raw);
}

// The frame with the first field of `tag` set to `value`.
std::string with_value(const std::string& frame, std::uint16_t tag, std::string value)
{
    RawFrame raw = split(frame);
    raw.fields[index_of(raw, tag)].second = std::move(value);
    return join(raw);
}

// The frame with a field inserted before the first field of `before`, so a
// test can put a field where its type's order does not allow it.
std::string with_field_before(
    const std::string& frame, std::uint16_t before, std::uint16_t tag, std::string value)
{
    RawFrame raw = split(frame);
    raw.fields.emplace(
        raw.fields.begin() + static_cast<std::ptrdiff_t>(index_of(raw, before)), tag, std::move(value));
    return join(raw);
}

std::string with_type(const std::string& frame, MessageType type)
{
    RawFrame raw = split(frame);
    raw.type = static_cast<std::uint16_t>(type);
    return join(raw);
}

void check_error(const Error& got, const Error& want)
{
    CHECK(got.kind() == want.kind());
    CHECK(got.message() == want.message());
    CHECK(got.sys_errno() == want.sys_errno());
    CHECK(got.exit_code() == want.exit_code());
}

// --- decoders run on a frame, as a server would: parse, then decode ---

template <class Decode> auto decoded(const std::string& frame, Decode decode, Fd attached = Fd())
{
    FrameReader r = parsed(frame, std::move(attached));
    return decode(r);
}

// The error a well-formed status frame carries.
Error status_error(const std::string& frame)
{
    mm::Result<void> status = value_of(decoded(frame, protocol::decode_status));
    REQUIRE_FALSE(status);
    return std::move(status).error();
}

// The error of a decoder that must refuse `frame`; a protocol error always
// but for the limits that are the input's fault.
template <class Decode>
Error refusal(
    const std::string& frame, Decode decode, Fd attached = Fd(), ErrorKind kind = ErrorKind::protocol)
{
    auto r = decoded(frame, decode, std::move(attached));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == kind);
    return r.error();
}

// --- submit ---

protocol::SubmitRequest full_submit()
{
    protocol::SubmitRequest q;
    q.sender = "alice@example.org";
    q.recipients = { "bob@example.org", "Carol Example <carol@example.net>", "j\xc3\xb6rg@[192.0.2.1]" };
    q.extract_recipients = true;
    q.full_name = "Alice Example";
    q.queue_only = true;
    q.verbose = true;
    return q;
}

void check_same(const protocol::SubmitRequest& got, const protocol::SubmitRequest& want)
{
    CHECK(got.sender == want.sender);
    CHECK(got.recipients == want.recipients);
    CHECK(got.extract_recipients == want.extract_recipients);
    CHECK(got.full_name == want.full_name);
    CHECK(got.queue_only == want.queue_only);
    CHECK(got.verbose == want.verbose);
}

protocol::DecodedSubmit submit_round_trip(const protocol::SubmitRequest& q)
{
    std::string frame = value_of(protocol::encode_submit(17, q));
    FrameReader r = parsed(frame, content_fd());
    CHECK(r.type() == MessageType::submit_begin);
    CHECK(r.request_id() == 17);
    protocol::DecodedSubmit d = value_of(protocol::decode_submit(r));
    check_same(d.request, q);
    REQUIRE(d.content.valid());
    CHECK(read_all(d.content) == content);
    return d;
}

// --- deliver ---

protocol::DeliverRequest full_deliver()
{
    protocol::DeliverRequest q;
    q.queue_id = queue_id_a;
    q.return_path = "alice@example.org";
    q.recipient = "bob@example.org";
    q.leaves = { "bob@example.org", "|/usr/bin/procmail -a x", "/home/bob/Mail/archive" };
    q.ident = "alice";
    q.received_host = "192.0.2.7";
    q.content_offset = 412;
    q.content_length = (std::uint64_t { 1 } << 40) + 3;
    return q;
}

void check_same(const protocol::DeliverRequest& got, const protocol::DeliverRequest& want)
{
    CHECK(got.queue_id == want.queue_id);
    CHECK(got.return_path == want.return_path);
    CHECK(got.recipient == want.recipient);
    CHECK(got.leaves == want.leaves);
    CHECK(got.ident == want.ident);
    CHECK(got.received_host == want.received_host);
    CHECK(got.content_offset == want.content_offset);
    CHECK(got.content_length == want.content_length);
}

// --- route_query, route_answer ---

protocol::RouteQuery full_route_query()
{
    protocol::RouteQuery q;
    q.pass = (std::uint64_t { 1 } << 63) + 5;
    q.connection = "isp1";
    q.queue_id = queue_id_a;
    q.sender = "alice@example.org";
    q.recipients = { "bob@example.net", "\"john doe\"@example.com", "carol@[192.0.2.1]" };
    q.content_offset = 412;
    q.header_length = (std::uint64_t { 1 } << 33) + 1;
    return q;
}

void check_same(const protocol::RouteQuery& got, const protocol::RouteQuery& want)
{
    CHECK(got.pass == want.pass);
    CHECK(got.connection == want.connection);
    CHECK(got.queue_id == want.queue_id);
    CHECK(got.sender == want.sender);
    CHECK(got.recipients == want.recipients);
    CHECK(got.content_offset == want.content_offset);
    CHECK(got.header_length == want.header_length);
}

protocol::DecodedRouteQuery route_query_round_trip(const protocol::RouteQuery& q)
{
    std::string frame = value_of(protocol::encode_route_query(21, q));
    FrameReader r = parsed(frame, content_fd());
    CHECK(r.type() == MessageType::route_query);
    CHECK(r.request_id() == 21);
    protocol::DecodedRouteQuery d = value_of(protocol::decode_route_query(r));
    check_same(d.query, q);
    REQUIRE(d.message.valid());
    CHECK(read_all(d.message) == content);
    return d;
}

protocol::RouteChoice choice(std::vector<protocol::RouteCandidate> candidates, std::string reason = "")
{
    protocol::RouteChoice c;
    c.candidates = std::move(candidates);
    c.reason = std::move(reason);
    return c;
}

protocol::RouteAnswer full_route_answer()
{
    protocol::RouteAnswer a;
    a.connection = "isp1";
    a.recipients = {
        choice({ { "/etc/masqmail/lan.route", "smtp.lan.example:25" },
            { "/etc/masqmail/isp1.route", "example.net" } }),
        choice({}, "no online route takes it (online: isp1; see masqmail --explain)"),
        choice({ { "/etc/masqmail/pipe.route", "pipe" } }),
        choice({ { "/etc/masqmail/tunnel.route", "wrapper" } }, "a reason beside candidates travels too"),
    };
    return a;
}

// What differs between two answers, "" when nothing does.
std::string difference(const protocol::RouteAnswer& a, const protocol::RouteAnswer& b)
{
    if (a.connection != b.connection)
        return "connection";
    if (a.recipients.size() != b.recipients.size())
        return "recipient count " + std::to_string(a.recipients.size()) + " vs "
            + std::to_string(b.recipients.size());
    for (std::size_t i = 0; i < a.recipients.size(); ++i) {
        if (a.recipients[i].candidates != b.recipients[i].candidates)
            return "candidates of recipient " + std::to_string(i);
        if (a.recipients[i].reason != b.recipients[i].reason)
            return "reason of recipient " + std::to_string(i);
    }
    return "";
}

protocol::RouteAnswer route_answer_round_trip(const protocol::RouteAnswer& a)
{
    std::string frame = value_of(protocol::encode_route_answer(22, a));
    FrameReader r = parsed(frame);
    CHECK(r.type() == MessageType::route_answer);
    CHECK(r.request_id() == 22);
    return value_of(protocol::decode_route_answer(r));
}

// --- remote_deliver, remote_result ---

protocol::RemoteRequest full_remote()
{
    protocol::RemoteRequest q;
    q.queue_id = queue_id_b;
    q.route = "/etc/masqmail/isp1.route";
    q.next_hop = "smtp.isp1.example:587";
    q.return_path = "alice@example.org";
    q.recipients = { "bob@example.net", "\"john doe\"@example.net", "carol@[192.0.2.1]" };
    q.eight_bit_mime = true;
    q.content_offset = 97;
    q.content_length = (std::uint64_t { 1 } << 40) + 7;
    return q;
}

void check_same(const protocol::RemoteRequest& got, const protocol::RemoteRequest& want)
{
    CHECK(got.queue_id == want.queue_id);
    CHECK(got.route == want.route);
    CHECK(got.next_hop == want.next_hop);
    CHECK(got.return_path == want.return_path);
    CHECK(got.recipients == want.recipients);
    CHECK(got.eight_bit_mime == want.eight_bit_mime);
    CHECK(got.content_offset == want.content_offset);
    CHECK(got.content_length == want.content_length);
}

protocol::DecodedRemote remote_round_trip(const protocol::RemoteRequest& q)
{
    std::string frame = value_of(protocol::encode_remote_deliver(23, q));
    FrameReader r = parsed(frame, content_fd());
    CHECK(r.type() == MessageType::remote_deliver);
    CHECK(r.request_id() == 23);
    protocol::DecodedRemote d = value_of(protocol::decode_remote_deliver(r));
    check_same(d.request, q);
    REQUIRE(d.message.valid());
    CHECK(read_all(d.message) == content);
    return d;
}

protocol::RemoteRecipientResult recipient_result(protocol::LeafOutcome outcome, std::string reason)
{
    protocol::RemoteRecipientResult r;
    r.outcome = outcome;
    r.reason = std::move(reason);
    return r;
}

protocol::RemoteResult full_remote_result()
{
    protocol::RemoteResult result;
    result.server = "smtp.isp1.example[192.0.2.25:587]";
    result.recipients = {
        recipient_result(protocol::LeafOutcome::delivered, "250 2.0.0 Ok: queued as 4XyZ"),
        recipient_result(protocol::LeafOutcome::deferred, "451 4.7.1 greylisted, try later"),
        recipient_result(protocol::LeafOutcome::failed, "550 5.1.1 <carol@[192.0.2.1]>: user unknown"),
    };
    return result;
}

// What differs between two results, "" when nothing does.
std::string difference(const protocol::RemoteResult& a, const protocol::RemoteResult& b)
{
    if (a.server != b.server)
        return "server";
    if (a.recipients.size() != b.recipients.size())
        return "recipient count " + std::to_string(a.recipients.size()) + " vs "
            + std::to_string(b.recipients.size());
    for (std::size_t i = 0; i < a.recipients.size(); ++i)
        if (a.recipients[i].outcome != b.recipients[i].outcome
            || a.recipients[i].reason != b.recipients[i].reason)
            return "recipient " + std::to_string(i);
    return "";
}

protocol::RemoteResult remote_result_round_trip(const protocol::RemoteResult& result)
{
    std::string frame = value_of(protocol::encode_remote_result(24, result));
    FrameReader r = parsed(frame);
    CHECK(r.type() == MessageType::remote_result);
    CHECK(r.request_id() == 24);
    return value_of(protocol::decode_remote_result(r));
}

// --- queue listing ---

protocol::ListedRecipient listed(std::string address, RecipientState state, std::uint32_t attempts,
    std::string last_error, std::int64_t next_try)
{
    protocol::ListedRecipient r;
    r.address = std::move(address);
    r.state = state;
    r.attempts = attempts;
    r.last_error = std::move(last_error);
    r.next_try = next_try;
    return r;
}

protocol::ListedMessage small_message(const std::string& id = queue_id_a)
{
    protocol::ListedMessage m;
    m.id = id;
    m.sender = "alice@example.org";
    m.size = 2048;
    m.body_size = 1500;
    m.received_time = 1'700'000'000;
    m.peer_address = "192.0.2.7";
    m.ident = "alice";
    m.recipients = {
        listed(
            "bob@example.org", RecipientState::pending, 3, "451 4.7.1 greylisted, try later", 1'700'003'600),
        listed("carol@example.net", RecipientState::delivered, 1, "", 0),
        listed("dave@example.com", RecipientState::failed, 5, "550 5.1.1 no such user", 0),
        listed("erin@example.com", RecipientState::dsn_sent, 2, "552 mailbox full", -1),
    };
    return m;
}

// `count` recipients, each with an error text of `error_size` octets.
protocol::ListedMessage big_message(const std::string& id, std::size_t count, std::size_t error_size)
{
    protocol::ListedMessage m = small_message(id);
    m.sender = "";
    m.peer_address = "";
    m.recipients.clear();
    for (std::size_t i = 0; i < count; ++i) {
        std::string error = "451 4.4.1 host mx" + std::to_string(i) + ".example.net not reachable ";
        error.resize(error_size, 'z');
        m.recipients.push_back(
            listed("user" + std::to_string(i) + "@example.org", static_cast<RecipientState>(i % 4),
                static_cast<std::uint32_t>(i), error, 1'700'000'000 + static_cast<std::int64_t>(i)));
    }
    return m;
}

// What differs between two listed messages, "" when nothing does.
std::string difference(const protocol::ListedMessage& a, const protocol::ListedMessage& b)
{
    if (a.id != b.id)
        return "id";
    if (a.sender != b.sender)
        return "sender";
    if (a.size != b.size || a.body_size != b.body_size)
        return "size";
    if (a.received_time != b.received_time)
        return "received_time";
    if (a.peer_address != b.peer_address)
        return "peer_address";
    if (a.ident != b.ident)
        return "ident";
    if (a.recipients.size() != b.recipients.size())
        return "recipient count " + std::to_string(a.recipients.size()) + " vs "
            + std::to_string(b.recipients.size());
    for (std::size_t i = 0; i < a.recipients.size(); ++i) {
        const protocol::ListedRecipient& x = a.recipients[i];
        const protocol::ListedRecipient& y = b.recipients[i];
        if (x.address != y.address || x.state != y.state || x.attempts != y.attempts
            || x.last_error != y.last_error || x.next_try != y.next_try)
            return "recipient " + std::to_string(i);
    }
    return "";
}

bool is_continued(const std::string& frame)
{
    FrameReader r = parsed(frame);
    return value_of(r.get_bool(t_continued));
}

void decode_all(const std::vector<std::string>& frames, std::vector<protocol::ListedMessage>& listing)
{
    for (const std::string& frame : frames) {
        FrameReader r = parsed(frame);
        auto got = protocol::decode_queue_list_entry(r, listing);
        if (!got)
            FAIL(got.error().message());
    }
}

mm::Result<void> decode_entry(const std::string& frame, std::vector<protocol::ListedMessage>& listing)
{
    FrameReader r = parsed(frame);
    return protocol::decode_queue_list_entry(r, listing);
}

} // namespace

// --- status ---

TEST_CASE("status: ok survives a round trip")
{
    std::string frame = value_of(protocol::encode_status(0x1122334455667788u, mm::ok()));
    FrameReader r = parsed(frame);
    CHECK(r.type() == MessageType::status);
    CHECK(r.request_id() == 0x1122334455667788u);
    auto status = value_of(protocol::decode_status(r));
    CHECK(status);
}

TEST_CASE("status: an error carries its kind, text, errno and exit code")
{
    Error sent = Error::from_errno("open /var/spool/masqmail/new", ENOSPC).exit_as(ex::cantcreat);
    std::string frame = value_of(protocol::encode_status(3, sent));
    Error got = status_error(frame);
    check_error(got, sent);
    CHECK(got.sys_errno() == ENOSPC);
    CHECK(got.exit_code() == ex::cantcreat);
    CHECK(got.smtp_code() == 452); // the errno reached the SMTP mapping
}

TEST_CASE("status: every error kind keeps its own exit code when none was set")
{
    for (ErrorKind kind :
        { ErrorKind::temporary, ErrorKind::permanent, ErrorKind::protocol, ErrorKind::internal }) {
        Error sent(kind, "kind " + std::string(mm::error_kind_name(kind)));
        Error got = status_error(value_of(protocol::encode_status(1, sent)));
        check_error(got, sent);
    }
}

TEST_CASE("status: error texts travel printable and bounded")
{
    std::string text = "line one\r\nline two\t\x7f";
    std::string frame = value_of(protocol::encode_status(1, Error::permanent(text)));
    CHECK(status_error(frame).message() == "line one??line two??");

    std::string long_text(mm::limits::error_text + 100, 'e');
    frame = value_of(protocol::encode_status(1, Error::permanent(long_text)));
    CHECK(status_error(frame).message() == std::string(mm::limits::error_text, 'e'));
}

TEST_CASE("status: an exit code past 255 falls back to the kind's")
{
    std::string frame = value_of(protocol::encode_status(1, Error::permanent("x").exit_as(ex::nouser)));
    frame = with_value(frame, t_exit, le(256, 4));
    CHECK(status_error(frame).exit_code() == ex::dataerr);
}

TEST_CASE("status: malformed frames are refused")
{
    std::string ok_frame = value_of(protocol::encode_status(1, mm::ok()));
    std::string error_frame = value_of(protocol::encode_status(1, Error::temporary("busy")));

    SECTION("wrong frame type")
    {
        Error e = refusal(with_type(ok_frame, MessageType::queue_list_end), protocol::decode_status);
        CHECK(e.message().find("expected a status frame") != std::string::npos);
        refusal(with_type(ok_frame, MessageType::new_message), protocol::decode_status);
    }
    SECTION("a missing field")
    {
        refusal(without_field(ok_frame, t_ok), protocol::decode_status);
        refusal(without_field(error_frame, t_kind), protocol::decode_status);
        refusal(without_field(error_frame, t_exit), protocol::decode_status);
        refusal(without_field(error_frame, t_errno), protocol::decode_status);
        refusal(without_field(error_frame, t_text), protocol::decode_status);
    }
    SECTION("an extra field")
    {
        refusal(with_extra_field(ok_frame), protocol::decode_status);
        refusal(with_extra_field(error_frame), protocol::decode_status);
        // ok followed by an error's fields
        refusal(with_extra_field(ok_frame, t_kind, le(0, 4)), protocol::decode_status);
    }
    SECTION("a descriptor the frame has no use for")
    {
        std::string frame = with_extra_field(ok_frame, mm::ipc::fd_tag, "");
        refusal(frame, protocol::decode_status, content_fd());
    }
    SECTION("a bad error kind, boolean or text")
    {
        CHECK(status_error(with_value(error_frame, t_kind, le(3, 4))).kind()
            == ErrorKind::internal); // the last kind
        refusal(with_value(error_frame, t_kind, le(4, 4)), protocol::decode_status);
        refusal(with_value(error_frame, t_kind, le(0xffffffffu, 4)), protocol::decode_status);
        refusal(with_value(ok_frame, t_ok, std::string(1, '\2')), protocol::decode_status);
        refusal(with_value(error_frame, t_text, "a\nb"), protocol::decode_status);
    }
}

// --- submit ---

TEST_CASE("submit: every field survives a round trip with the descriptor")
{
    submit_round_trip(full_submit());
}

TEST_CASE("submit: absent optional fields stay absent, the null sender stays <>")
{
    protocol::SubmitRequest q; // sendmail -t: no sender, no name, no recipients
    q.extract_recipients = true;
    protocol::DecodedSubmit d = submit_round_trip(q);
    CHECK_FALSE(d.request.sender.has_value());
    CHECK_FALSE(d.request.full_name.has_value());
    CHECK(d.request.recipients.empty());

    q = full_submit();
    q.sender = "<>";
    q.full_name.reset();
    d = submit_round_trip(q);
    CHECK(d.request.sender == std::optional<std::string>("<>"));
    CHECK_FALSE(d.request.full_name.has_value());

    q.sender = ""; // present and empty is not absent
    q.full_name = "";
    d = submit_round_trip(q);
    CHECK(d.request.sender == std::optional<std::string>(""));
    CHECK(d.request.full_name == std::optional<std::string>(""));
}

TEST_CASE("submit: the frame announces the descriptor it needs")
{
    std::string frame = value_of(protocol::encode_submit(1, full_submit()));
    CHECK_FALSE(FrameReader::parse(frame)); // sent without the content
    CHECK(split(frame).fields.back().first == mm::ipc::fd_tag);
}

TEST_CASE("submit: malformed frames are refused")
{
    std::string frame = value_of(protocol::encode_submit(1, full_submit()));

    SECTION("wrong frame type")
    {
        refusal(with_type(frame, MessageType::deliver), protocol::decode_submit, content_fd());
    }
    SECTION("a missing field")
    {
        refusal(without_field(frame, t_extract), protocol::decode_submit, content_fd());
        // and the descriptor itself
        std::string no_fd = without_field(frame, mm::ipc::fd_tag);
        refusal(no_fd, protocol::decode_submit);
    }
    SECTION("an extra field")
    {
        refusal(with_extra_field(frame), protocol::decode_submit, content_fd());
        refusal(
            with_extra_field(frame, t_recipient, "late@example.org"), protocol::decode_submit, content_fd());
    }
    SECTION("a recipient with a control octet")
    {
        refusal(with_value(frame, t_recipient, "bob@example.org\r\nRCPT TO:<x>"), protocol::decode_submit,
            content_fd());
        protocol::SubmitRequest q = full_submit();
        q.recipients.push_back("eve@example.org\n");
        CHECK_FALSE(protocol::encode_submit(1, q));
    }
}

TEST_CASE("submit: at most limits::recipients recipients")
{
    protocol::SubmitRequest q;
    for (std::size_t i = 0; i < mm::limits::recipients; ++i)
        q.recipients.push_back("r" + std::to_string(i) + "@example.org");
    protocol::DecodedSubmit d = submit_round_trip(q);
    CHECK(d.request.recipients.size() == mm::limits::recipients);

    q.recipients.push_back("one-more@example.org");
    std::string frame = value_of(protocol::encode_submit(1, q));
    Error e = refusal(frame, protocol::decode_submit, content_fd(), ErrorKind::permanent);
    CHECK(e.message() == "too many recipients");
}

// --- submit_result ---

TEST_CASE("submit_result: the queue id or the error survives a round trip")
{
    std::string frame = value_of(protocol::encode_submit_result(5, queue_id_a));
    FrameReader r = parsed(frame);
    CHECK(r.type() == MessageType::submit_result);
    CHECK(r.request_id() == 5);
    auto id = value_of(protocol::decode_submit_result(r));
    REQUIRE(id);
    CHECK(*id == queue_id_a);

    Error sent = Error::permanent("no valid recipients").exit_as(ex::nouser);
    frame = value_of(protocol::encode_submit_result(6, sent));
    auto refused = value_of(decoded(frame, protocol::decode_submit_result));
    REQUIRE_FALSE(refused);
    check_error(refused.error(), sent);
    CHECK(refused.error().exit_code() == ex::nouser);
}

TEST_CASE("submit_result: malformed frames are refused")
{
    std::string ok_frame = value_of(protocol::encode_submit_result(1, queue_id_a));
    std::string error_frame = value_of(protocol::encode_submit_result(1, Error::temporary("disk full")));

    refusal(with_type(ok_frame, MessageType::status), protocol::decode_submit_result);
    refusal(without_field(ok_frame, t_queue_id), protocol::decode_submit_result);
    refusal(without_field(error_frame, t_text), protocol::decode_submit_result);
    refusal(with_extra_field(ok_frame), protocol::decode_submit_result);
    refusal(with_extra_field(error_frame, t_queue_id, queue_id_a), protocol::decode_submit_result);
    refusal(with_value(error_frame, t_kind, le(4, 4)), protocol::decode_submit_result);
}

// --- deliver ---

TEST_CASE("deliver: every field survives a round trip with the descriptor")
{
    protocol::DeliverRequest q = full_deliver();
    std::string frame = value_of(protocol::encode_deliver(9, q));
    CHECK_FALSE(FrameReader::parse(frame)); // the message file must come with it
    FrameReader r = parsed(frame, content_fd());
    CHECK(r.type() == MessageType::deliver);
    CHECK(r.request_id() == 9);
    protocol::DecodedDeliver d = value_of(protocol::decode_deliver(r));
    check_same(d.request, q);
    REQUIRE(d.message.valid());
    CHECK(read_all(d.message) == content);
}

TEST_CASE("deliver: the null sender, no leaves and a local submission")
{
    protocol::DeliverRequest q = full_deliver();
    q.return_path = "";
    q.leaves.clear();
    q.received_host = "";
    q.content_offset = 0;
    std::string frame = value_of(protocol::encode_deliver(9, q));
    protocol::DecodedDeliver d = value_of(decoded(frame, protocol::decode_deliver, content_fd()));
    check_same(d.request, q);
    CHECK(d.request.return_path.empty());
}

TEST_CASE("deliver: malformed frames are refused")
{
    std::string frame = value_of(protocol::encode_deliver(9, full_deliver()));

    refusal(with_type(frame, MessageType::submit_begin), protocol::decode_deliver, content_fd());
    refusal(without_field(frame, t_ident), protocol::decode_deliver, content_fd());
    refusal(without_field(frame, mm::ipc::fd_tag), protocol::decode_deliver);
    refusal(with_extra_field(frame), protocol::decode_deliver, content_fd());
    refusal(with_extra_field(frame, t_leaf, "late@example.org"), protocol::decode_deliver, content_fd());
    refusal(with_value(frame, t_leaf, "|rm -rf /\n"), protocol::decode_deliver, content_fd());
}

TEST_CASE("deliver: the frame's field limit bounds the leaves before the decoder's does")
{
    // decode_deliver stops at limits::alias_fanout leaves, but a frame holds
    // at most limits::ipc_fields fields: 8 of them are not leaves.
    static_assert(mm::limits::alias_fanout > mm::limits::ipc_fields);
    protocol::DeliverRequest q = full_deliver();
    q.leaves.clear();
    for (std::size_t i = 0; i < mm::limits::ipc_fields - 8; ++i)
        q.leaves.push_back("l" + std::to_string(i));
    std::string frame = value_of(protocol::encode_deliver(9, q));
    protocol::DecodedDeliver d = value_of(decoded(frame, protocol::decode_deliver, content_fd()));
    CHECK(d.request.leaves == q.leaves);

    q.leaves.push_back("one-more");
    CHECK_FALSE(protocol::encode_deliver(9, q));
}

// --- delivery_result ---

TEST_CASE("delivery_result: every outcome survives a round trip")
{
    std::vector<protocol::LeafResult> sent = {
        { "bob@example.org", protocol::LeafOutcome::delivered, "" },
        { "|/usr/bin/procmail", protocol::LeafOutcome::deferred, "mailbox locked, try later" },
        { "/home/bob/archive", protocol::LeafOutcome::failed, "permission denied" },
    };
    std::string frame = value_of(protocol::encode_delivery_result(4, sent));
    FrameReader r = parsed(frame);
    CHECK(r.type() == MessageType::delivery_result);
    CHECK(r.request_id() == 4);
    std::vector<protocol::LeafResult> got = value_of(protocol::decode_delivery_result(r));
    REQUIRE(got.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        CHECK(got[i].key == sent[i].key);
        CHECK(got[i].outcome == sent[i].outcome);
        CHECK(got[i].reason == sent[i].reason);
    }

    frame = value_of(protocol::encode_delivery_result(4, {}));
    CHECK(value_of(decoded(frame, protocol::decode_delivery_result)).empty());
}

TEST_CASE("delivery_result: reasons travel printable and bounded")
{
    std::vector<protocol::LeafResult> sent = {
        { "|cmd", protocol::LeafOutcome::failed, "exit 1:\nstderr\tline" + std::string(600, 'x') },
    };
    std::string frame = value_of(protocol::encode_delivery_result(4, sent));
    std::vector<protocol::LeafResult> got = value_of(decoded(frame, protocol::decode_delivery_result));
    REQUIRE(got.size() == 1);
    CHECK(got[0].reason.size() == mm::limits::error_text);
    CHECK(got[0].reason.substr(0, 19) == "exit 1:?stderr?line");
}

TEST_CASE("delivery_result: malformed frames are refused")
{
    std::vector<protocol::LeafResult> sent
        = { { "bob@example.org", protocol::LeafOutcome::deferred, "later" } };
    std::string frame = value_of(protocol::encode_delivery_result(4, sent));

    refusal(with_type(frame, MessageType::status), protocol::decode_delivery_result);
    refusal(without_field(frame, t_reason), protocol::decode_delivery_result);
    refusal(without_field(frame, t_outcome), protocol::decode_delivery_result);
    refusal(with_extra_field(frame), protocol::decode_delivery_result);
    refusal(with_extra_field(frame, t_leaf, "half@example.org"), protocol::decode_delivery_result);

    // LeafOutcome: failed (2) is the last value
    std::string failed = with_value(frame, t_outcome, le(2, 4));
    CHECK(value_of(decoded(failed, protocol::decode_delivery_result))[0].outcome
        == protocol::LeafOutcome::failed);
    Error e = refusal(with_value(frame, t_outcome, le(3, 4)), protocol::decode_delivery_result);
    CHECK(e.message() == "bad leaf outcome");
    refusal(with_value(frame, t_outcome, le(0xffffffffu, 4)), protocol::decode_delivery_result);
}

// --- route_query ---

TEST_CASE("route_query: every field survives a round trip with the descriptor")
{
    route_query_round_trip(full_route_query());
}

TEST_CASE("route_query: no connection stays absent, an empty one present; the null sender")
{
    protocol::RouteQuery q = full_route_query(); // no -qo: route-selector runs online_query
    q.connection.reset();
    q.sender = "";
    q.pass = 0;
    q.content_offset = 0;
    q.header_length = 0;
    protocol::DecodedRouteQuery d = route_query_round_trip(q);
    CHECK_FALSE(d.query.connection.has_value());
    CHECK(d.query.sender.empty());

    q.connection = ""; // present and empty is not absent
    d = route_query_round_trip(q);
    CHECK(d.query.connection == std::optional<std::string>(""));

    q.recipients.clear(); // the decoder leaves "nothing to route" to route-selector
    d = route_query_round_trip(q);
    CHECK(d.query.recipients.empty());
}

TEST_CASE("route_query: the frame announces the descriptor it needs")
{
    std::string frame = value_of(protocol::encode_route_query(21, full_route_query()));
    CHECK_FALSE(FrameReader::parse(frame)); // the message file must come with it
    CHECK(split(frame).fields.back().first == mm::ipc::fd_tag);
    refusal(without_field(frame, mm::ipc::fd_tag), protocol::decode_route_query);
}

TEST_CASE("route_query: malformed frames are refused")
{
    std::string frame = value_of(protocol::encode_route_query(21, full_route_query()));
    auto refused
        = [](const std::string& bad) { return refusal(bad, protocol::decode_route_query, content_fd()); };

    SECTION("wrong frame type")
    {
        Error e = refused(with_type(frame, MessageType::deliver));
        CHECK(e.message().find("expected a route_query frame") != std::string::npos);
        refused(with_type(frame, MessageType::route_answer));
        // and the other way round: a route query is nobody else's frame
        refusal(frame, protocol::decode_deliver, content_fd());
        refusal(frame, protocol::decode_remote_deliver, content_fd());
    }
    SECTION("a missing field")
    {
        for (std::uint16_t tag : { t_pass, t_queue_id, t_sender, t_offset, t_header_length }) {
            INFO("without tag " << tag);
            refused(without_field(frame, tag));
        }
    }
    SECTION("an extra or misplaced field")
    {
        refused(with_extra_field(frame));
        refused(with_extra_field(frame, t_recipient, "late@example.org"));
        refused(with_field_before(frame, t_offset, t_connection, "isp2")); // after the recipients
        refused(with_field_before(frame, t_queue_id, t_unknown, "x"));
        refused(with_field_before(frame, t_pass, t_pass, le(1, 8))); // a second pass
    }
    SECTION("a bad value")
    {
        refused(with_value(frame, t_pass, le(1, 4))); // a u64 of four octets
        refused(with_value(frame, t_header_length, le(1, 9)));
        refused(with_value(frame, t_connection, "isp\n1"));
        refused(with_value(frame, t_recipient, "bob@example.net\r\nRCPT TO:<x>"));
        refused(with_value(frame, t_sender, std::string("a\0b", 3)));
        protocol::RouteQuery q = full_route_query();
        q.connection = "isp\n1";
        CHECK_FALSE(protocol::encode_route_query(21, q));
    }
}

TEST_CASE("route_query: at most limits::recipients recipients")
{
    protocol::RouteQuery q = full_route_query();
    q.recipients.clear();
    for (std::size_t i = 0; i < mm::limits::recipients; ++i)
        q.recipients.push_back("r" + std::to_string(i) + "@example.net");
    route_query_round_trip(q);

    q.recipients.push_back("one-more@example.net");
    std::string frame = value_of(protocol::encode_route_query(21, q));
    Error e = refusal(frame, protocol::decode_route_query, content_fd());
    CHECK(e.message() == "too many recipients");
}

// --- route_answer ---

TEST_CASE("route_answer: every field survives a round trip, candidates in their order")
{
    protocol::RouteAnswer a = full_route_answer();
    CHECK(difference(route_answer_round_trip(a), a).empty());
}

TEST_CASE("route_answer: offline, no recipients, and a recipient without candidates or reason")
{
    protocol::RouteAnswer a;
    protocol::RouteAnswer got = route_answer_round_trip(a);
    CHECK_FALSE(got.connection.has_value());
    CHECK(got.recipients.empty());
    CHECK(value_of(protocol::encode_route_answer(22, a)).size() == mm::ipc::header_size);

    a.recipients = { choice({}, "no route is online (no online_query is set)"), choice({}) };
    got = route_answer_round_trip(a);
    CHECK(difference(got, a).empty());
    CHECK_FALSE(got.connection.has_value());

    a.connection = ""; // present and empty is not absent
    got = route_answer_round_trip(a);
    CHECK(got.connection == std::optional<std::string>(""));
}

TEST_CASE("route_answer: reasons travel printable and bounded; routes and hops must be text")
{
    protocol::RouteAnswer a = full_route_answer();
    a.recipients[1].reason = "exit 1:\nstderr\tline\x7f" + std::string(600, 'x');
    protocol::RouteAnswer got = route_answer_round_trip(a);
    REQUIRE(got.recipients.size() == a.recipients.size());
    CHECK(got.recipients[1].reason.size() == mm::limits::error_text);
    CHECK(got.recipients[1].reason.substr(0, 20) == "exit 1:?stderr?line?");

    a = full_route_answer();
    a.recipients[0].candidates[1].route = "/etc/masqmail/a\nb.route";
    CHECK_FALSE(protocol::encode_route_answer(22, a));
    a = full_route_answer();
    a.recipients[0].candidates[0].next_hop = "host\r:25";
    CHECK_FALSE(protocol::encode_route_answer(22, a));
    a = full_route_answer();
    a.connection = "isp\t1";
    CHECK_FALSE(protocol::encode_route_answer(22, a));
}

TEST_CASE("route_answer: malformed frames are refused")
{
    std::string frame = value_of(protocol::encode_route_answer(22, full_route_answer()));
    auto refused = [](const std::string& bad) { return refusal(bad, protocol::decode_route_answer); };

    refused(with_type(frame, MessageType::route_query));
    refused(with_type(frame, MessageType::status));
    refusal(frame, protocol::decode_status);
    refused(without_field(frame, t_next_hop)); // a route without its hop
    refused(without_field(frame, t_route)); // a hop without its route
    refused(without_field(frame, t_reason)); // candidates before any reason
    refused(with_extra_field(frame));
    refused(with_extra_field(frame, t_next_hop, "late.example"));
    refused(with_extra_field(frame, t_connection, "isp2")); // the connection comes first
    refused(with_field_before(frame, t_reason, t_connection, "isp2")); // twice
    refused(with_field_before(frame, t_next_hop, t_route, "/etc/masqmail/x.route"));
    refused(with_value(frame, t_route, "/etc/masqmail/a\nb.route"));
    refused(with_value(frame, t_reason, "a\nb"));
    // a descriptor the frame has no use for
    refusal(with_extra_field(frame, mm::ipc::fd_tag, ""), protocol::decode_route_answer, content_fd());
}

TEST_CASE("route_answer: at most limits::recipients choices; candidates as many as a frame holds")
{
    protocol::RouteAnswer a;
    a.connection = "isp1";
    for (std::size_t i = 0; i < mm::limits::recipients; ++i)
        a.recipients.push_back(choice({}, "offline"));
    CHECK(route_answer_round_trip(a).recipients.size() == mm::limits::recipients);
    a.recipients.push_back(choice({}, "offline"));
    std::string frame = value_of(protocol::encode_route_answer(22, a));
    Error e = refusal(frame, protocol::decode_route_answer);
    CHECK(e.message() == "too many route choices");

    // One recipient: its reason and a route and a hop per candidate, in
    // limits::ipc_fields fields; the frame's limit stops the encoder first.
    protocol::RouteAnswer many;
    many.recipients.push_back(choice({}));
    for (std::size_t i = 0; i < (mm::limits::ipc_fields - 1) / 2; ++i)
        many.recipients[0].candidates.push_back({ "r" + std::to_string(i), "h" });
    CHECK(difference(route_answer_round_trip(many), many).empty());
    many.recipients[0].candidates.push_back({ "one-more", "h" });
    CHECK_FALSE(protocol::encode_route_answer(22, many));
}

// --- remote_deliver ---

TEST_CASE("remote_deliver: every field survives a round trip with the descriptor")
{
    remote_round_trip(full_remote());
}

TEST_CASE("remote_deliver: the null sender, one recipient, no 8BITMIME")
{
    protocol::RemoteRequest q = full_remote();
    q.return_path = "";
    q.recipients = { "bob@example.net" };
    q.eight_bit_mime = false;
    q.next_hop = "example.net";
    q.content_offset = 0;
    protocol::DecodedRemote d = remote_round_trip(q);
    CHECK(d.request.return_path.empty());
    CHECK_FALSE(d.request.eight_bit_mime);
}

TEST_CASE("remote_deliver: the frame announces the descriptor it needs")
{
    std::string frame = value_of(protocol::encode_remote_deliver(23, full_remote()));
    CHECK_FALSE(FrameReader::parse(frame)); // the message file must come with it
    CHECK(split(frame).fields.back().first == mm::ipc::fd_tag);
    refusal(without_field(frame, mm::ipc::fd_tag), protocol::decode_remote_deliver);
}

TEST_CASE("remote_deliver: a delivery without recipients is refused")
{
    protocol::RemoteRequest q = full_remote();
    q.recipients.clear();
    auto encoded = protocol::encode_remote_deliver(23, q);
    REQUIRE_FALSE(encoded);
    CHECK(encoded.error().message() == "a remote delivery without recipients");
    // A frame made without the encoder's check is refused by the decoder too.
    q = full_remote();
    q.recipients.resize(1);
    std::string frame = without_field(value_of(protocol::encode_remote_deliver(23, q)), t_recipient);
    Error e = refusal(frame, protocol::decode_remote_deliver, content_fd());
    CHECK(e.message() == "a remote delivery without recipients");
}

TEST_CASE("remote_deliver: malformed frames are refused")
{
    std::string frame = value_of(protocol::encode_remote_deliver(23, full_remote()));
    auto refused
        = [](const std::string& bad) { return refusal(bad, protocol::decode_remote_deliver, content_fd()); };

    SECTION("wrong frame type")
    {
        refused(with_type(frame, MessageType::deliver));
        refused(with_type(frame, MessageType::route_query));
        refusal(frame, protocol::decode_deliver, content_fd());
        refusal(frame, protocol::decode_route_query, content_fd());
    }
    SECTION("a missing field")
    {
        for (std::uint16_t tag :
            { t_queue_id, t_route, t_next_hop, t_return_path, t_eight_bit, t_offset, t_length }) {
            INFO("without tag " << tag);
            refused(without_field(frame, tag));
        }
    }
    SECTION("an extra or misplaced field")
    {
        refused(with_extra_field(frame));
        refused(with_extra_field(frame, t_recipient, "late@example.net"));
        refused(with_field_before(frame, t_route, t_next_hop, "other.example")); // hop before route
        refused(with_field_before(frame, t_offset, t_recipient, "late@example.net")); // after the flag
    }
    SECTION("a bad value")
    {
        refused(with_value(frame, t_eight_bit, std::string(1, '\2')));
        refused(with_value(frame, t_eight_bit, le(1, 4)));
        refused(with_value(frame, t_length, le(1, 4)));
        refused(with_value(frame, t_recipient, "bob@example.net\r\nRCPT TO:<x>"));
        refused(with_value(frame, t_route, "/etc/masqmail/\x7f.route"));
        protocol::RemoteRequest q = full_remote();
        q.next_hop = "host\n:25";
        CHECK_FALSE(protocol::encode_remote_deliver(23, q));
    }
}

TEST_CASE("remote_deliver: at most limits::recipients recipients")
{
    protocol::RemoteRequest q = full_remote();
    q.recipients.clear();
    for (std::size_t i = 0; i < mm::limits::recipients; ++i)
        q.recipients.push_back("r" + std::to_string(i) + "@example.net");
    remote_round_trip(q);

    q.recipients.push_back("one-more@example.net");
    std::string frame = value_of(protocol::encode_remote_deliver(23, q));
    Error e = refusal(frame, protocol::decode_remote_deliver, content_fd());
    CHECK(e.message() == "too many recipients");
}

// --- remote_result ---

TEST_CASE("remote_result: every outcome and the server survive a round trip")
{
    protocol::RemoteResult result = full_remote_result();
    CHECK(difference(remote_result_round_trip(result), result).empty());

    protocol::RemoteResult none; // no server reached, nothing answered
    protocol::RemoteResult got = remote_result_round_trip(none);
    CHECK(got.server.empty());
    CHECK(got.recipients.empty());
}

TEST_CASE("remote_result: reasons and the server travel printable and bounded")
{
    protocol::RemoteResult result = full_remote_result();
    result.recipients[1].reason = "421 closing\r\n" + std::string(1000, 'q');
    result.server = "evil\n[192.0.2.1:25]" + std::string(1000, 's');
    protocol::RemoteResult got = remote_result_round_trip(result);
    REQUIRE(got.recipients.size() == 3);
    CHECK(got.recipients[1].reason.size() == mm::limits::error_text);
    CHECK(got.recipients[1].reason.substr(0, 14) == "421 closing??q");
    CHECK(got.server.size() == mm::limits::error_text);
    CHECK(got.server.substr(0, 20) == "evil?[192.0.2.1:25]s");
}

TEST_CASE("remote_result: malformed frames are refused")
{
    std::string frame = value_of(protocol::encode_remote_result(24, full_remote_result()));
    auto refused = [](const std::string& bad) { return refusal(bad, protocol::decode_remote_result); };

    refused(with_type(frame, MessageType::delivery_result));
    refusal(frame, protocol::decode_delivery_result);
    refused(without_field(frame, t_server));
    refused(without_field(frame, t_outcome)); // the first recipient's
    refused(without_field(frame, t_reason));
    refused(with_extra_field(frame));
    refused(with_extra_field(frame, t_outcome, le(0, 4))); // half a recipient
    refused(with_extra_field(frame, t_server, "second.example"));
    refused(with_value(frame, t_server, "a\nb"));

    // LeafOutcome: failed (2) is the last value
    protocol::RemoteResult failed
        = value_of(decoded(with_value(frame, t_outcome, le(2, 4)), protocol::decode_remote_result));
    CHECK(failed.recipients[0].outcome == protocol::LeafOutcome::failed);
    Error e = refused(with_value(frame, t_outcome, le(3, 4)));
    CHECK(e.message() == "bad recipient outcome");
    refused(with_value(frame, t_outcome, le(0xffffffffu, 4)));
    refused(with_value(frame, t_outcome, le(0, 8)));
}

TEST_CASE("remote_result: at most limits::recipients results")
{
    protocol::RemoteResult result;
    result.server = "smtp.isp1.example[192.0.2.25:587]";
    for (std::size_t i = 0; i < mm::limits::recipients; ++i)
        result.recipients.push_back(recipient_result(static_cast<protocol::LeafOutcome>(i % 3), ""));
    CHECK(difference(remote_result_round_trip(result), result).empty());

    result.recipients.push_back(recipient_result(protocol::LeafOutcome::deferred, ""));
    std::string frame = value_of(protocol::encode_remote_result(24, result));
    Error e = refusal(frame, protocol::decode_remote_result);
    CHECK(e.message() == "too many recipient results");
}

// --- qmgr control ---

TEST_CASE("run_queue and queue_list: a frame of their type and no field")
{
    for (auto [encode, type] : { std::pair { &protocol::encode_run_queue, MessageType::run_queue },
             std::pair { &protocol::encode_queue_list, MessageType::queue_list } }) {
        std::string frame = value_of(encode(77));
        CHECK(frame.size() == mm::ipc::header_size);
        FrameReader r = parsed(frame);
        CHECK(r.type() == type);
        CHECK(r.request_id() == 77);
        CHECK(r.finish());
    }
}

TEST_CASE("run_route: the route name survives a round trip")
{
    std::string frame = value_of(protocol::encode_run_route(8, "fast-smtp"));
    FrameReader r = parsed(frame);
    CHECK(r.type() == MessageType::run_route);
    CHECK(value_of(protocol::decode_run_route(r)) == "fast-smtp");

    refusal(with_type(frame, MessageType::new_message), protocol::decode_run_route);
    refusal(without_field(frame, t_route), protocol::decode_run_route);
    refusal(with_extra_field(frame), protocol::decode_run_route);
    refusal(with_extra_field(frame, t_route, "second"), protocol::decode_run_route);
    refusal(with_value(frame, t_route, std::string("a\0b", 3)), protocol::decode_run_route);
    CHECK_FALSE(protocol::encode_run_route(8, "bad\nroute"));
}

TEST_CASE("remove_message: the queue ids survive a round trip")
{
    std::vector<std::string> ids
        = { queue_id_a, queue_id_b, "../../etc/passwd" }; // checked by qmgr, not here
    std::string frame = value_of(protocol::encode_remove(2, ids));
    FrameReader r = parsed(frame);
    CHECK(r.type() == MessageType::remove_message);
    CHECK(value_of(protocol::decode_remove(r)) == ids);

    frame = value_of(protocol::encode_remove(2, {}));
    CHECK(value_of(decoded(frame, protocol::decode_remove)).empty());

    // As many ids as a frame has fields: decode_remove's own limit is the same.
    std::vector<std::string> many(mm::limits::ipc_fields, "x");
    frame = value_of(protocol::encode_remove(2, many));
    CHECK(value_of(decoded(frame, protocol::decode_remove)).size() == mm::limits::ipc_fields);
    many.push_back("x");
    CHECK_FALSE(protocol::encode_remove(2, many));
}

TEST_CASE("remove_message: malformed frames are refused")
{
    std::string frame = value_of(protocol::encode_remove(2, { queue_id_a, queue_id_b }));
    refusal(with_type(frame, MessageType::new_message), protocol::decode_remove);
    refusal(with_extra_field(frame), protocol::decode_remove);
    refusal(with_value(frame, t_queue_id, "x\x7f"), protocol::decode_remove);
}

TEST_CASE("new_message: the queue id survives a round trip")
{
    std::string frame = value_of(protocol::encode_new_message(11, queue_id_b));
    FrameReader r = parsed(frame);
    CHECK(r.type() == MessageType::new_message);
    CHECK(r.request_id() == 11);
    CHECK(value_of(protocol::decode_new_message(r)) == queue_id_b);

    refusal(with_type(frame, MessageType::run_route), protocol::decode_new_message);
    refusal(without_field(frame, t_queue_id), protocol::decode_new_message);
    refusal(with_extra_field(frame), protocol::decode_new_message);
    refusal(with_extra_field(frame, t_queue_id, queue_id_a), protocol::decode_new_message);
}

// --- queue listing ---

TEST_CASE("queue_list_entry: a small message is one frame and survives a round trip")
{
    protocol::ListedMessage m = small_message();
    std::vector<std::string> frames = value_of(protocol::encode_queue_list_entry(12, m));
    REQUIRE(frames.size() == 1);
    CHECK_FALSE(is_continued(frames[0]));
    FrameReader r = parsed(frames[0]);
    CHECK(r.type() == MessageType::queue_list_entry);
    CHECK(r.request_id() == 12);

    std::vector<protocol::ListedMessage> listing;
    decode_all(frames, listing);
    REQUIRE(listing.size() == 1);
    CHECK(difference(listing[0], m).empty());
    CHECK(listing[0].recipients[3].next_try == -1);
}

TEST_CASE("queue_list_entry: a message without recipients, and the null sender")
{
    protocol::ListedMessage m = small_message();
    m.sender = "";
    m.peer_address = "";
    m.recipients.clear();
    std::vector<std::string> frames = value_of(protocol::encode_queue_list_entry(12, m));
    REQUIRE(frames.size() == 1);
    std::vector<protocol::ListedMessage> listing;
    decode_all(frames, listing);
    REQUIRE(listing.size() == 1);
    CHECK(difference(listing[0], m).empty());
    CHECK(listing[0].sender.empty());
}

TEST_CASE("queue_list_entry: recipients that do not fit one frame are continued, and merge back")
{
    // 1000 recipients with 400-octet errors need several frames by size;
    // 1000 without errors need two by field count (8 message fields, 5 per
    // recipient).
    std::size_t error_size = GENERATE(400, 0);
    INFO("error texts of " << error_size << " octets");
    protocol::ListedMessage m = big_message(queue_id_a, mm::limits::recipients, error_size);
    std::vector<std::string> frames = value_of(protocol::encode_queue_list_entry(12, m));
    CHECK(frames.size() >= (error_size == 0 ? std::size_t { 2 } : std::size_t { 5 }));
    for (std::size_t i = 0; i < frames.size(); ++i) {
        CHECK(frames[i].size() <= mm::limits::ipc_frame);
        CHECK(is_continued(frames[i]) == (i > 0));
    }
    if (error_size == 0) {
        std::vector<protocol::ListedMessage> first;
        decode_all({ frames[0] }, first);
        CHECK(first[0].recipients.size() == (mm::limits::ipc_fields - 8) / 5);
    }

    // Another message before and after: each stays whole and apart.
    std::vector<std::string> before
        = value_of(protocol::encode_queue_list_entry(12, small_message(queue_id_b)));
    std::vector<std::string> after
        = value_of(protocol::encode_queue_list_entry(12, small_message(queue_id_b)));
    std::vector<protocol::ListedMessage> listing;
    decode_all(before, listing);
    decode_all(frames, listing);
    decode_all(after, listing);
    REQUIRE(listing.size() == 3);
    CHECK(difference(listing[0], small_message(queue_id_b)).empty());
    CHECK(difference(listing[1], m).empty());
    CHECK(difference(listing[2], small_message(queue_id_b)).empty());
}

TEST_CASE("queue_list_entry: last errors travel printable and bounded")
{
    protocol::ListedMessage m = small_message();
    m.recipients[0].last_error = "421 closing\r\n" + std::string(1000, 'q');
    std::vector<std::string> frames = value_of(protocol::encode_queue_list_entry(12, m));
    std::vector<protocol::ListedMessage> listing;
    decode_all(frames, listing);
    REQUIRE(listing.size() == 1);
    const std::string& error = listing[0].recipients[0].last_error;
    CHECK(error.size() == mm::limits::error_text);
    CHECK(error.substr(0, 14) == "421 closing??q");
}

TEST_CASE("queue_list_entry: a recipient too large for any frame is an encoding error")
{
    protocol::ListedMessage m = small_message();
    m.recipients[1].address = std::string(mm::limits::ipc_frame, 'a') + "@example.org";
    CHECK_FALSE(protocol::encode_queue_list_entry(12, m));
}

TEST_CASE("queue_list_entry: a continued frame must continue the message before it")
{
    protocol::ListedMessage a = big_message(queue_id_a, 600, 200);
    protocol::ListedMessage b = big_message(queue_id_b, 600, 200);
    std::vector<std::string> frames_a = value_of(protocol::encode_queue_list_entry(12, a));
    std::vector<std::string> frames_b = value_of(protocol::encode_queue_list_entry(12, b));
    REQUIRE(frames_a.size() >= 2);
    REQUIRE(frames_b.size() >= 2);

    SECTION("no message before it")
    {
        std::vector<protocol::ListedMessage> listing;
        auto got = decode_entry(frames_a[1], listing);
        REQUIRE_FALSE(got);
        CHECK(got.error().kind() == ErrorKind::protocol);
        CHECK(listing.empty());
    }
    SECTION("a message with another id before it")
    {
        std::vector<protocol::ListedMessage> listing;
        REQUIRE(decode_entry(frames_a[0], listing));
        std::size_t first_part = listing[0].recipients.size();
        REQUIRE(first_part < a.recipients.size());
        auto got = decode_entry(frames_b[1], listing);
        REQUIRE_FALSE(got);
        CHECK(got.error().kind() == ErrorKind::protocol);
        REQUIRE(listing.size() == 1);
        CHECK(listing[0].id == queue_id_a);
        CHECK(listing[0].recipients.size() == first_part);
        // ... while its own continuation is taken
        CHECK(decode_entry(frames_a[1], listing));
        CHECK(listing[0].recipients.size() > first_part);
    }
}

TEST_CASE("queue_list_entry: a merged message has at most limits::recipients recipients")
{
    protocol::ListedMessage m = big_message(queue_id_a, mm::limits::recipients + 1, 20);
    std::vector<std::string> frames = value_of(protocol::encode_queue_list_entry(12, m));
    REQUIRE(frames.size() >= 2);
    std::vector<protocol::ListedMessage> listing;
    mm::Result<void> got;
    for (const std::string& frame : frames) {
        got = decode_entry(frame, listing);
        if (!got)
            break;
    }
    REQUIRE_FALSE(got);
    CHECK(got.error().kind() == ErrorKind::protocol);
    CHECK(got.error().message() == "too many recipients in a listing");
    REQUIRE(listing.size() == 1);
    CHECK(listing[0].recipients.size() <= mm::limits::recipients);
}

TEST_CASE("queue_list_entry: malformed frames are refused")
{
    std::string frame = value_of(protocol::encode_queue_list_entry(12, small_message()))[0];
    auto refused = [](const std::string& bad) {
        std::vector<protocol::ListedMessage> listing;
        auto got = decode_entry(bad, listing);
        REQUIRE_FALSE(got);
        CHECK(got.error().kind() == ErrorKind::protocol);
        CHECK(listing.empty());
    };

    refused(with_type(frame, MessageType::status));
    refused(without_field(frame, t_continued));
    refused(without_field(frame, t_ident));
    refused(without_field(frame, t_state)); // the first recipient's
    refused(with_extra_field(frame));
    refused(with_extra_field(frame, t_recipient, "half@example.org"));

    // RecipientState: dsn_sent (3) is the last value
    std::vector<protocol::ListedMessage> listing;
    REQUIRE(decode_entry(with_value(frame, t_state, le(3, 4)), listing));
    CHECK(listing[0].recipients[0].state == RecipientState::dsn_sent);
    refused(with_value(frame, t_state, le(4, 4)));
    refused(with_value(frame, t_state, le(0xffffffffu, 4)));
    refused(with_value(frame, t_continued, std::string(1, '\2')));
}

TEST_CASE("queue_list_end: ok, or the error with its kind, text and exit code")
{
    std::string frame = value_of(protocol::encode_queue_list_end(12, mm::ok()));
    FrameReader r = parsed(frame);
    CHECK(r.type() == MessageType::queue_list_end);
    CHECK(r.request_id() == 12);
    CHECK(value_of(protocol::decode_queue_list_end(r)));

    Error sent(ErrorKind::temporary, "too many queue listings at once; try again", EAGAIN);
    sent.exit_as(ex::unavailable);
    frame = value_of(protocol::encode_queue_list_end(12, sent));
    auto status = value_of(decoded(frame, protocol::decode_queue_list_end));
    REQUIRE_FALSE(status);
    check_error(status.error(), sent);
    CHECK(status.error().exit_code() == ex::unavailable);
    CHECK(status.error().sys_errno() == EAGAIN);
}

TEST_CASE("queue_list_end: malformed frames are refused")
{
    std::string frame = value_of(protocol::encode_queue_list_end(12, Error::permanent("not allowed")));
    refusal(with_type(frame, MessageType::status), protocol::decode_queue_list_end);
    refusal(without_field(frame, t_kind), protocol::decode_queue_list_end);
    refusal(with_extra_field(frame), protocol::decode_queue_list_end);
    refusal(with_value(frame, t_kind, le(4, 4)), protocol::decode_queue_list_end);
    // the listing's end is no status, nor the other way round
    refusal(value_of(protocol::encode_status(12, mm::ok())), protocol::decode_queue_list_end);
    refusal(value_of(protocol::encode_queue_list_end(12, mm::ok())), protocol::decode_status);
}
