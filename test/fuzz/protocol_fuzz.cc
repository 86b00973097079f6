// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for the decoders of mm/protocol.hh. The input is cut into
// frames by their length fields (so queue_list_entry frames can continue
// one another), each parsed as ipc_fuzz does, with a descriptor if it
// announces one. Its type's decoder runs and every other decoder must refuse
// it; what a decoder accepts must encode and decode back to an equal value.
#include "mm/ipc.hh"
#include "mm/limits.hh"
#include "mm/protocol.hh"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

namespace protocol = mm::protocol;
using mm::ipc::FrameReader;
using mm::ipc::MessageType;

// Enough frames to reach every continuation path; the rest is ignored.
constexpr std::size_t max_frames = 32;

[[noreturn]] void fail(const char* what)
{
    (void)std::fprintf(stderr, "protocol_fuzz: %s\n", what);
    std::abort();
}

mm::Fd null_fd()
{
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail("cannot open /dev/null");
    return mm::Fd(fd);
}

// The frame as a server reads it: without a descriptor, or with one when
// that is what it announces.
mm::Result<FrameReader> parse(std::string_view frame)
{
    mm::Result<FrameReader> r = FrameReader::parse(frame);
    if (!r)
        r = FrameReader::parse(frame, null_fd());
    return r;
}

std::string encoded(mm::Result<std::string> frame)
{
    if (!frame)
        fail("a decoded value does not encode");
    return std::move(frame).value();
}

// A frame an encoder made: it must parse, with the same request id. The
// reader keeps views into `frame`, which must outlive it.
FrameReader reparse(const std::string& frame, std::uint64_t request_id)
{
    mm::Result<FrameReader> r = parse(frame);
    if (!r)
        fail("an encoded frame does not parse");
    if (r->request_id() != request_id)
        fail("the request id changed");
    return std::move(r).value();
}
FrameReader reparse(std::string&& frame, std::uint64_t request_id) = delete;

// Encoders keep error texts printable and at most limits::error_text
// octets; a decoded text is already printable, so only the bound applies.
std::string bounded(std::string_view text)
{
    return std::string(text.substr(0, mm::limits::error_text));
}

// A decoded enum must hold one of its values: a cast of a number the
// decoder did not check would round-trip unnoticed.
bool is_outcome(protocol::LeafOutcome outcome)
{
    switch (outcome) {
    case protocol::LeafOutcome::delivered:
    case protocol::LeafOutcome::deferred:
    case protocol::LeafOutcome::failed:
        return true;
    }
    return false;
}

bool is_state(mm::RecipientState state)
{
    switch (state) {
    case mm::RecipientState::pending:
    case mm::RecipientState::delivered:
    case mm::RecipientState::failed:
    case mm::RecipientState::dsn_sent:
        return true;
    }
    return false;
}

bool is_kind(mm::ErrorKind kind)
{
    switch (kind) {
    case mm::ErrorKind::temporary:
    case mm::ErrorKind::permanent:
    case mm::ErrorKind::protocol:
    case mm::ErrorKind::internal:
        return true;
    }
    return false;
}

bool same_error(const mm::Error& again, const mm::Error& first)
{
    if (!is_kind(first.kind()))
        fail("an error of no known kind was decoded");
    return again.kind() == first.kind() && again.message() == bounded(first.message())
        && again.sys_errno() == first.sys_errno() && again.exit_code() == first.exit_code();
}

template <class T> T accepted(mm::Result<T> r)
{
    if (!r)
        fail("a re-encoded frame is refused");
    return std::move(r).value();
}

// --- one round trip per decoder ---

using Status = mm::Result<void>;
using StatusDecoder = mm::Result<Status> (*)(FrameReader&);
using StatusEncoder = mm::Result<std::string> (*)(std::uint64_t, const Status&);

void round_trip_status(FrameReader& r, StatusDecoder decode, StatusEncoder encode)
{
    mm::Result<Status> first = decode(r);
    if (!first)
        return;
    std::string frame = encoded(encode(r.request_id(), *first));
    FrameReader again_r = reparse(frame, r.request_id());
    Status again = accepted(decode(again_r));
    if (again.has_value() != first->has_value() || (!again && !same_error(again.error(), first->error())))
        fail("status changed in a round trip");
}

void round_trip_submit_result(FrameReader& r)
{
    auto first = protocol::decode_submit_result(r);
    if (!first)
        return;
    std::string frame = encoded(protocol::encode_submit_result(r.request_id(), *first));
    FrameReader again_r = reparse(frame, r.request_id());
    mm::Result<std::string> again = accepted(protocol::decode_submit_result(again_r));
    bool same = again.has_value() == first->has_value()
        && (again ? *again == **first : same_error(again.error(), first->error()));
    if (!same)
        fail("submit_result changed in a round trip");
}

// The frames of these types have one spelling: the encoding of what was
// decoded must be the very bytes that were read.
void check_same_bytes(const std::string& again, std::string_view frame)
{
    if (again != frame)
        fail("an accepted frame is not the encoding of what it holds");
}

void round_trip_submit(FrameReader& r, std::string_view frame)
{
    auto first = protocol::decode_submit(r);
    if (!first)
        return;
    if (!first->content.valid())
        fail("submit without its descriptor");
    std::string again_frame = encoded(protocol::encode_submit(r.request_id(), first->request));
    check_same_bytes(again_frame, frame);
    FrameReader again_r = reparse(again_frame, r.request_id());
    protocol::DecodedSubmit again = accepted(protocol::decode_submit(again_r));
    const protocol::SubmitRequest& a = again.request;
    const protocol::SubmitRequest& b = first->request;
    if (a.sender != b.sender || a.recipients != b.recipients || a.extract_recipients != b.extract_recipients
        || a.full_name != b.full_name || a.queue_only != b.queue_only || a.verbose != b.verbose)
        fail("submit changed in a round trip");
}

void round_trip_deliver(FrameReader& r, std::string_view frame)
{
    auto first = protocol::decode_deliver(r);
    if (!first)
        return;
    if (!first->message.valid())
        fail("deliver without its descriptor");
    std::string again_frame = encoded(protocol::encode_deliver(r.request_id(), first->request));
    check_same_bytes(again_frame, frame);
    FrameReader again_r = reparse(again_frame, r.request_id());
    protocol::DecodedDeliver again = accepted(protocol::decode_deliver(again_r));
    const protocol::DeliverRequest& a = again.request;
    const protocol::DeliverRequest& b = first->request;
    if (a.queue_id != b.queue_id || a.return_path != b.return_path || a.recipient != b.recipient
        || a.leaves != b.leaves || a.ident != b.ident || a.received_host != b.received_host
        || a.content_offset != b.content_offset || a.content_length != b.content_length)
        fail("deliver changed in a round trip");
}

void round_trip_delivery_result(FrameReader& r)
{
    auto first = protocol::decode_delivery_result(r);
    if (!first)
        return;
    std::string frame = encoded(protocol::encode_delivery_result(r.request_id(), *first));
    FrameReader again_r = reparse(frame, r.request_id());
    for (const protocol::LeafResult& leaf : *first)
        if (!is_outcome(leaf.outcome))
            fail("a leaf outcome of no known value was decoded");
    std::vector<protocol::LeafResult> again = accepted(protocol::decode_delivery_result(again_r));
    if (again.size() != first->size())
        fail("delivery_result changed its length in a round trip");
    for (std::size_t i = 0; i < again.size(); ++i)
        if (again[i].key != (*first)[i].key || again[i].outcome != (*first)[i].outcome
            || again[i].reason != bounded((*first)[i].reason))
            fail("delivery_result changed in a round trip");
}

void round_trip_route_query(FrameReader& r, std::string_view frame)
{
    auto first = protocol::decode_route_query(r);
    if (!first)
        return;
    if (!first->message.valid())
        fail("route_query without its descriptor");
    std::string again_frame = encoded(protocol::encode_route_query(r.request_id(), first->query));
    check_same_bytes(again_frame, frame);
    FrameReader again_r = reparse(again_frame, r.request_id());
    protocol::DecodedRouteQuery again = accepted(protocol::decode_route_query(again_r));
    const protocol::RouteQuery& a = again.query;
    const protocol::RouteQuery& b = first->query;
    if (a.pass != b.pass || a.connection != b.connection || a.queue_id != b.queue_id || a.sender != b.sender
        || a.recipients != b.recipients || a.content_offset != b.content_offset
        || a.header_length != b.header_length)
        fail("route_query changed in a round trip");
}

void round_trip_route_answer(FrameReader& r)
{
    auto first = protocol::decode_route_answer(r);
    if (!first)
        return;
    std::string frame = encoded(protocol::encode_route_answer(r.request_id(), *first));
    FrameReader again_r = reparse(frame, r.request_id());
    protocol::RouteAnswer again = accepted(protocol::decode_route_answer(again_r));
    if (again.connection != first->connection || again.recipients.size() != first->recipients.size())
        fail("route_answer changed in a round trip");
    for (std::size_t i = 0; i < again.recipients.size(); ++i)
        if (again.recipients[i].candidates != first->recipients[i].candidates
            || again.recipients[i].reason != bounded(first->recipients[i].reason))
            fail("route_answer changed in a round trip");
}

void round_trip_remote_deliver(FrameReader& r, std::string_view frame)
{
    auto first = protocol::decode_remote_deliver(r);
    if (!first)
        return;
    if (!first->message.valid())
        fail("remote_deliver without its descriptor");
    if (first->request.recipients.empty())
        fail("remote_deliver without recipients");
    std::string again_frame = encoded(protocol::encode_remote_deliver(r.request_id(), first->request));
    check_same_bytes(again_frame, frame);
    FrameReader again_r = reparse(again_frame, r.request_id());
    protocol::DecodedRemote again = accepted(protocol::decode_remote_deliver(again_r));
    const protocol::RemoteRequest& a = again.request;
    const protocol::RemoteRequest& b = first->request;
    if (a.queue_id != b.queue_id || a.route != b.route || a.next_hop != b.next_hop
        || a.return_path != b.return_path || a.recipients != b.recipients
        || a.eight_bit_mime != b.eight_bit_mime || a.content_offset != b.content_offset
        || a.content_length != b.content_length)
        fail("remote_deliver changed in a round trip");
}

void round_trip_remote_result(FrameReader& r)
{
    auto first = protocol::decode_remote_result(r);
    if (!first)
        return;
    for (const protocol::RemoteRecipientResult& rcpt : first->recipients)
        if (!is_outcome(rcpt.outcome))
            fail("a recipient outcome of no known value was decoded");
    std::string frame = encoded(protocol::encode_remote_result(r.request_id(), *first));
    FrameReader again_r = reparse(frame, r.request_id());
    protocol::RemoteResult again = accepted(protocol::decode_remote_result(again_r));
    if (again.server != bounded(first->server) || again.recipients.size() != first->recipients.size())
        fail("remote_result changed in a round trip");
    for (std::size_t i = 0; i < again.recipients.size(); ++i)
        if (again.recipients[i].outcome != first->recipients[i].outcome
            || again.recipients[i].reason != bounded(first->recipients[i].reason))
            fail("remote_result changed in a round trip");
}

// run_route, remove_message, new_message: a value, one spelling.
template <class Decode, class Encode>
void round_trip_value(FrameReader& r, std::string_view frame, Decode decode, Encode encode)
{
    auto first = decode(r);
    if (!first)
        return;
    std::string again_frame = encoded(encode(r.request_id(), *first));
    check_same_bytes(again_frame, frame);
    FrameReader again_r = reparse(again_frame, r.request_id());
    if (accepted(decode(again_r)) != *first)
        fail("a value changed in a round trip");
}

// run_queue, queue_list: no field, so nothing but the header.
void check_empty_request(
    FrameReader& r, std::string_view frame, mm::Result<std::string> (*encode)(std::uint64_t))
{
    if (r.finish())
        check_same_bytes(encoded(encode(r.request_id())), frame);
}

// --- the queue listing, across the frames of the input ---

struct Listing {
    std::vector<protocol::ListedMessage> messages;
    std::vector<std::size_t> parts; // frames each message came in
};

void decode_listing_frame(FrameReader& r, Listing& listing)
{
    std::size_t before = listing.messages.size();
    std::size_t recipients = before == 0 ? 0 : listing.messages.back().recipients.size();
    if (!protocol::decode_queue_list_entry(r, listing.messages)) {
        if (listing.messages.size() != before
            || (before != 0 && listing.messages.back().recipients.size() != recipients))
            fail("a refused listing frame changed the listing");
        return;
    }
    for (const protocol::ListedRecipient& rcpt : listing.messages.back().recipients)
        if (!is_state(rcpt.state))
            fail("a recipient state of no known value was decoded");
    if (listing.messages.size() == before + 1)
        listing.parts.push_back(1);
    else if (listing.messages.size() == before && before != 0)
        ++listing.parts.back();
    else
        fail("a listing frame added more than one message");
}

bool same_listed(const protocol::ListedMessage& a, const protocol::ListedMessage& b)
{
    if (a.id != b.id || a.sender != b.sender || a.size != b.size || a.body_size != b.body_size
        || a.received_time != b.received_time || a.peer_address != b.peer_address || a.ident != b.ident
        || a.recipients.size() != b.recipients.size())
        return false;
    for (std::size_t i = 0; i < a.recipients.size(); ++i) {
        const protocol::ListedRecipient& x = a.recipients[i];
        const protocol::ListedRecipient& y = b.recipients[i];
        if (x.address != y.address || x.state != y.state || x.attempts != y.attempts
            || x.last_error != bounded(y.last_error) || x.next_try != y.next_try)
            return false;
    }
    return true;
}

// Each message of the listing, encoded again, decodes alone to an equal one.
// A message that came in one frame always fits again; one merged from
// continued frames may not, since the decoder keeps the first frame's fields
// and a continuation may have carried shorter ones.
void check_listing(const Listing& listing)
{
    for (std::size_t i = 0; i < listing.messages.size(); ++i) {
        auto frames = protocol::encode_queue_list_entry(7, listing.messages[i]);
        if (!frames) {
            if (listing.parts[i] == 1 || frames.error().kind() != mm::ErrorKind::internal)
                fail("a listed message does not encode");
            continue;
        }
        std::vector<protocol::ListedMessage> again;
        for (const std::string& frame : *frames) {
            FrameReader r = reparse(frame, 7);
            if (!protocol::decode_queue_list_entry(r, again))
                fail("a re-encoded listing frame is refused");
        }
        if (again.size() != 1 || !same_listed(again[0], listing.messages[i]))
            fail("a listed message changed in a round trip");
    }
}

// --- dispatch ---

// Whether the decoder of `type` accepts a frame; every decoder of protocol.hh.
bool decoder_accepts(MessageType type, FrameReader& r)
{
    std::vector<protocol::ListedMessage> scratch;
    switch (type) {
    case MessageType::status:
        return protocol::decode_status(r).has_value();
    case MessageType::submit_begin:
        return protocol::decode_submit(r).has_value();
    case MessageType::submit_result:
        return protocol::decode_submit_result(r).has_value();
    case MessageType::deliver:
        return protocol::decode_deliver(r).has_value();
    case MessageType::delivery_result:
        return protocol::decode_delivery_result(r).has_value();
    case MessageType::route_query:
        return protocol::decode_route_query(r).has_value();
    case MessageType::route_answer:
        return protocol::decode_route_answer(r).has_value();
    case MessageType::remote_deliver:
        return protocol::decode_remote_deliver(r).has_value();
    case MessageType::remote_result:
        return protocol::decode_remote_result(r).has_value();
    case MessageType::run_route:
        return protocol::decode_run_route(r).has_value();
    case MessageType::remove_message:
        return protocol::decode_remove(r).has_value();
    case MessageType::new_message:
        return protocol::decode_new_message(r).has_value();
    case MessageType::queue_list_entry:
        return protocol::decode_queue_list_entry(r, scratch).has_value();
    case MessageType::queue_list_end:
        return protocol::decode_queue_list_end(r).has_value();
    default:
        return false;
    }
}

constexpr MessageType decoded_types[] = {
    MessageType::status,
    MessageType::submit_begin,
    MessageType::submit_result,
    MessageType::deliver,
    MessageType::delivery_result,
    MessageType::route_query,
    MessageType::route_answer,
    MessageType::remote_deliver,
    MessageType::remote_result,
    MessageType::run_route,
    MessageType::remove_message,
    MessageType::new_message,
    MessageType::queue_list_entry,
    MessageType::queue_list_end,
};

void check_other_decoders_refuse(std::string_view frame, MessageType type)
{
    for (MessageType other : decoded_types) {
        if (other == type)
            continue;
        mm::Result<FrameReader> r = parse(frame);
        if (!r)
            fail("a frame parses only once");
        if (decoder_accepts(other, *r))
            fail("a decoder accepted a frame of another type");
    }
}

void check_frame(std::string_view frame, Listing& listing)
{
    mm::Result<FrameReader> parsed = parse(frame);
    if (!parsed)
        return;
    FrameReader& r = *parsed;
    check_other_decoders_refuse(frame, r.type());
    switch (r.type()) {
    case MessageType::status:
        return round_trip_status(r, protocol::decode_status, protocol::encode_status);
    case MessageType::queue_list_end:
        return round_trip_status(r, protocol::decode_queue_list_end, protocol::encode_queue_list_end);
    case MessageType::submit_begin:
        return round_trip_submit(r, frame);
    case MessageType::submit_result:
        return round_trip_submit_result(r);
    case MessageType::deliver:
        return round_trip_deliver(r, frame);
    case MessageType::delivery_result:
        return round_trip_delivery_result(r);
    case MessageType::route_query:
        return round_trip_route_query(r, frame);
    case MessageType::route_answer:
        return round_trip_route_answer(r);
    case MessageType::remote_deliver:
        return round_trip_remote_deliver(r, frame);
    case MessageType::remote_result:
        return round_trip_remote_result(r);
    case MessageType::run_route:
        return round_trip_value(r, frame, protocol::decode_run_route, protocol::encode_run_route);
    case MessageType::remove_message:
        return round_trip_value(r, frame, protocol::decode_remove, protocol::encode_remove);
    case MessageType::new_message:
        return round_trip_value(r, frame, protocol::decode_new_message, protocol::encode_new_message);
    case MessageType::run_queue:
        return check_empty_request(r, frame, protocol::encode_run_queue);
    case MessageType::queue_list:
        return check_empty_request(r, frame, protocol::encode_queue_list);
    case MessageType::queue_list_entry:
        return decode_listing_frame(r, listing);
    default:
        return; // no decoder in protocol.hh
    }
}

// The input cut where each header says its frame ends; what is left when a
// length does not fit is one last (malformed) frame.
std::vector<std::string_view> frames_of(std::string_view input)
{
    std::vector<std::string_view> frames;
    while (!input.empty() && frames.size() < max_frames) {
        std::size_t size = input.size();
        if (input.size() >= mm::ipc::header_size) {
            std::size_t payload = 0;
            for (std::size_t i = 0; i < 4; ++i)
                payload |= std::size_t { static_cast<unsigned char>(input[4 + i]) } << (8 * i);
            if (payload <= input.size() - mm::ipc::header_size)
                size = mm::ipc::header_size + payload;
        }
        frames.push_back(input.substr(0, size));
        input.remove_prefix(size);
    }
    return frames;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view input(reinterpret_cast<const char*>(data), size);
    Listing listing;
    for (std::string_view frame : frames_of(input))
        check_frame(frame, listing);
    check_listing(listing);
    return 0;
}
