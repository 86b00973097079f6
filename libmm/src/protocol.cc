// SPDX-License-Identifier: GPL-2.0-or-later
// Encoders and decoders of the local mail path's frames (mm/protocol.hh).
#include "mm/protocol.hh"

#include "mm/limits.hh"

#include <cerrno>
#include <poll.h>

namespace mm::protocol {

namespace {

using ipc::FrameReader;
using ipc::FrameWriter;
using ipc::MessageType;

// Field tags. Per message type; numbers are on the wire: only add.
enum Tag : std::uint16_t {
    t_ok = 1,
    t_kind = 2,
    t_exit = 3,
    t_text = 4,
    t_errno = 5,
    t_sender = 10,
    t_recipient = 11,
    t_extract = 12,
    t_full_name = 13,
    t_queue_only = 14,
    t_verbose = 15,
    t_queue_id = 20,
    t_return_path = 21,
    t_leaf = 22,
    t_ident = 23,
    t_received_host = 24,
    t_offset = 25,
    t_length = 26,
    t_outcome = 27,
    t_reason = 28,
    t_route = 29,
    t_continued = 30,
    t_size = 31,
    t_body_size = 32,
    t_received_time = 33,
    t_peer = 34,
    t_state = 35,
    t_attempts = 36,
    t_last_error = 37,
    t_next_try = 38,
    t_smtp_protocol = 39,
    t_helo = 40,
    t_eight_bit = 41,
    t_status = 42,
    t_pass = 43,
    t_connection = 44,
    t_next_hop = 45,
    t_header_length = 46,
    t_server = 47,
};

// Error texts come from anywhere: keep them text, bounded.
std::string printable(std::string_view text)
{
    std::string out;
    for (char c : text.substr(0, limits::error_text)) {
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? '?' : c;
    }
    return out;
}

void add_error(FrameWriter& w, const Error& e)
{
    w.add_bool(t_ok, false);
    w.add_u32(t_kind, static_cast<std::uint32_t>(e.kind()));
    w.add_u32(t_exit, static_cast<std::uint32_t>(e.exit_code()));
    w.add_u32(t_errno, static_cast<std::uint32_t>(e.sys_errno()));
    w.add_text(t_text, printable(e.message()));
    if (e.status_override() != nullptr)
        w.add_text(t_status, e.status_override());
}

// Reads the fields add_error() wrote (after t_ok = false) into `out`.
Result<void> get_error(FrameReader& r, std::optional<Error>& out)
{
    auto kind = r.get_u32(t_kind);
    if (!kind)
        return std::move(kind).error();
    if (*kind > static_cast<std::uint32_t>(ErrorKind::internal))
        return Error::protocol("bad error kind");
    auto exit = r.get_u32(t_exit);
    if (!exit)
        return std::move(exit).error();
    auto err = r.get_u32(t_errno);
    if (!err)
        return std::move(err).error();
    auto text = r.get_text(t_text);
    if (!text)
        return std::move(text).error();
    Error e(static_cast<ErrorKind>(*kind), std::string(*text), static_cast<int>(*err & 0xffff));
    if (*exit <= 255)
        e.exit_as(static_cast<int>(*exit));
    auto status = r.get_optional_text(t_status);
    if (!status)
        return std::move(status).error();
    if (*status) {
        const char* code = known_status_code(**status);
        if (code == nullptr)
            return Error::protocol("unknown status code");
        e.status_as(code);
    }
    out = std::move(e);
    return {};
}

Result<void> expect(const FrameReader& r, MessageType type)
{
    if (r.type() != type)
        return Error::protocol(std::string("expected a ") + ipc::message_type_name(type) + " frame, got " +
                               ipc::message_type_name(r.type()));
    return {};
}

#define MM_TRY(var, expr)                  \
    auto var = (expr);                     \
    if (!var)                              \
        return std::move(var).error()

} // namespace

Result<std::string> encode_status(std::uint64_t request_id, const Result<void>& status)
{
    FrameWriter w(MessageType::status, request_id);
    if (status)
        w.add_bool(t_ok, true);
    else
        add_error(w, status.error());
    return w.finish();
}

namespace {

Result<Result<void>> decode_status_of(FrameReader& r, MessageType type)
{
    if (auto ok = expect(r, type); !ok)
        return std::move(ok).error();
    MM_TRY(ok, r.get_bool(t_ok));
    Result<void> status;
    if (!*ok) {
        std::optional<Error> e;
        if (auto got = get_error(r, e); !got)
            return std::move(got).error();
        status = std::move(*e);
    }
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return status;
}

} // namespace

Result<Result<void>> decode_status(FrameReader& r)
{
    return decode_status_of(r, MessageType::status);
}

Result<Result<void>> decode_queue_list_end(FrameReader& r)
{
    return decode_status_of(r, MessageType::queue_list_end);
}

Result<std::string> encode_submit(std::uint64_t request_id, const SubmitRequest& q)
{
    FrameWriter w(MessageType::submit_begin, request_id);
    if (q.sender)
        w.add_text(t_sender, *q.sender);
    for (const std::string& r : q.recipients)
        w.add_text(t_recipient, r);
    w.add_bool(t_extract, q.extract_recipients);
    if (q.full_name)
        w.add_text(t_full_name, *q.full_name);
    w.add_bool(t_queue_only, q.queue_only);
    w.add_bool(t_verbose, q.verbose);
    if (q.smtp) {
        w.add_text(t_smtp_protocol, q.smtp->protocol);
        w.add_text(t_peer, q.smtp->peer_address);
        w.add_text(t_helo, q.smtp->helo_name);
        w.add_bool(t_eight_bit, q.smtp->eight_bit_mime);
    }
    w.add_fd();
    return w.finish();
}

Result<DecodedSubmit> decode_submit(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::submit_begin); !ok)
        return std::move(ok).error();
    DecodedSubmit d;
    MM_TRY(sender, r.get_optional_text(t_sender));
    if (*sender)
        d.request.sender = std::string(**sender);
    while (r.next_is(t_recipient)) {
        if (d.request.recipients.size() >= limits::recipients)
            return Error::permanent("too many recipients");
        MM_TRY(rcpt, r.get_text(t_recipient));
        d.request.recipients.emplace_back(*rcpt);
    }
    MM_TRY(extract, r.get_bool(t_extract));
    d.request.extract_recipients = *extract;
    MM_TRY(name, r.get_optional_text(t_full_name));
    if (*name)
        d.request.full_name = std::string(**name);
    MM_TRY(queue_only, r.get_bool(t_queue_only));
    d.request.queue_only = *queue_only;
    MM_TRY(verbose, r.get_bool(t_verbose));
    d.request.verbose = *verbose;
    if (r.next_is(t_smtp_protocol)) {
        SmtpOrigin o;
        MM_TRY(protocol, r.get_text(t_smtp_protocol));
        MM_TRY(peer, r.get_text(t_peer));
        MM_TRY(helo, r.get_text(t_helo));
        MM_TRY(eight_bit, r.get_bool(t_eight_bit));
        o.protocol = std::string(*protocol);
        o.peer_address = std::string(*peer);
        o.helo_name = std::string(*helo);
        o.eight_bit_mime = *eight_bit;
        d.request.smtp = std::move(o);
    }
    MM_TRY(fd, r.get_fd());
    d.content = std::move(fd).value();
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return d;
}

Result<std::string> encode_submit_result(std::uint64_t request_id, const Result<std::string>& queue_id)
{
    FrameWriter w(MessageType::submit_result, request_id);
    if (queue_id) {
        w.add_bool(t_ok, true);
        w.add_text(t_queue_id, *queue_id);
    } else {
        add_error(w, queue_id.error());
    }
    return w.finish();
}

Result<Result<std::string>> decode_submit_result(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::submit_result); !ok)
        return std::move(ok).error();
    MM_TRY(ok, r.get_bool(t_ok));
    Result<std::string> out = Error::internal("unset");
    if (*ok) {
        MM_TRY(id, r.get_text(t_queue_id));
        out = std::string(*id);
    } else {
        std::optional<Error> e;
        if (auto got = get_error(r, e); !got)
            return std::move(got).error();
        out = std::move(*e);
    }
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return out;
}

Result<std::string> encode_deliver(std::uint64_t request_id, const DeliverRequest& q)
{
    FrameWriter w(MessageType::deliver, request_id);
    w.add_text(t_queue_id, q.queue_id);
    w.add_text(t_return_path, q.return_path);
    w.add_text(t_recipient, q.recipient);
    for (const std::string& leaf : q.leaves)
        w.add_text(t_leaf, leaf);
    w.add_text(t_ident, q.ident);
    w.add_text(t_received_host, q.received_host);
    w.add_u64(t_offset, q.content_offset);
    w.add_u64(t_length, q.content_length);
    w.add_fd();
    return w.finish();
}

Result<DecodedDeliver> decode_deliver(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::deliver); !ok)
        return std::move(ok).error();
    DecodedDeliver d;
    MM_TRY(id, r.get_text(t_queue_id));
    d.request.queue_id = *id;
    MM_TRY(rp, r.get_text(t_return_path));
    d.request.return_path = *rp;
    MM_TRY(rcpt, r.get_text(t_recipient));
    d.request.recipient = *rcpt;
    while (r.next_is(t_leaf)) {
        if (d.request.leaves.size() >= limits::alias_fanout)
            return Error::protocol("too many leaves");
        MM_TRY(leaf, r.get_text(t_leaf));
        d.request.leaves.emplace_back(*leaf);
    }
    MM_TRY(ident, r.get_text(t_ident));
    d.request.ident = *ident;
    MM_TRY(host, r.get_text(t_received_host));
    d.request.received_host = *host;
    MM_TRY(offset, r.get_u64(t_offset));
    d.request.content_offset = *offset;
    MM_TRY(length, r.get_u64(t_length));
    d.request.content_length = *length;
    MM_TRY(fd, r.get_fd());
    d.message = std::move(fd).value();
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return d;
}

Result<std::string> encode_delivery_result(std::uint64_t request_id, const std::vector<LeafResult>& leaves)
{
    FrameWriter w(MessageType::delivery_result, request_id);
    for (const LeafResult& leaf : leaves) {
        w.add_text(t_leaf, leaf.key);
        w.add_u32(t_outcome, static_cast<std::uint32_t>(leaf.outcome));
        w.add_text(t_reason, printable(leaf.reason));
    }
    return w.finish();
}

Result<std::vector<LeafResult>> decode_delivery_result(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::delivery_result); !ok)
        return std::move(ok).error();
    std::vector<LeafResult> out;
    while (!r.at_end()) {
        if (out.size() >= limits::alias_fanout)
            return Error::protocol("too many leaf results");
        LeafResult leaf;
        MM_TRY(key, r.get_text(t_leaf));
        leaf.key = *key;
        MM_TRY(outcome, r.get_u32(t_outcome));
        if (*outcome > static_cast<std::uint32_t>(LeafOutcome::failed))
            return Error::protocol("bad leaf outcome");
        leaf.outcome = static_cast<LeafOutcome>(*outcome);
        MM_TRY(reason, r.get_text(t_reason));
        leaf.reason = *reason;
        out.push_back(std::move(leaf));
    }
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return out;
}

Result<std::string> encode_route_query(std::uint64_t request_id, const RouteQuery& q)
{
    FrameWriter w(MessageType::route_query, request_id);
    w.add_u64(t_pass, q.pass);
    if (q.connection)
        w.add_text(t_connection, *q.connection);
    w.add_text(t_queue_id, q.queue_id);
    w.add_text(t_sender, q.sender);
    for (const std::string& r : q.recipients)
        w.add_text(t_recipient, r);
    w.add_u64(t_offset, q.content_offset);
    w.add_u64(t_header_length, q.header_length);
    w.add_fd();
    return w.finish();
}

Result<DecodedRouteQuery> decode_route_query(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::route_query); !ok)
        return std::move(ok).error();
    DecodedRouteQuery d;
    MM_TRY(pass, r.get_u64(t_pass));
    d.query.pass = *pass;
    MM_TRY(connection, r.get_optional_text(t_connection));
    if (*connection)
        d.query.connection = std::string(**connection);
    MM_TRY(id, r.get_text(t_queue_id));
    d.query.queue_id = *id;
    MM_TRY(sender, r.get_text(t_sender));
    d.query.sender = *sender;
    while (r.next_is(t_recipient)) {
        if (d.query.recipients.size() >= limits::recipients)
            return Error::protocol("too many recipients");
        MM_TRY(rcpt, r.get_text(t_recipient));
        d.query.recipients.emplace_back(*rcpt);
    }
    MM_TRY(offset, r.get_u64(t_offset));
    d.query.content_offset = *offset;
    MM_TRY(length, r.get_u64(t_header_length));
    d.query.header_length = *length;
    MM_TRY(fd, r.get_fd());
    d.message = std::move(fd).value();
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return d;
}

Result<std::string> encode_route_answer(std::uint64_t request_id, const RouteAnswer& a)
{
    FrameWriter w(MessageType::route_answer, request_id);
    if (a.connection)
        w.add_text(t_connection, *a.connection);
    for (const RouteChoice& c : a.recipients) {
        w.add_text(t_reason, printable(c.reason)); // starts each recipient
        for (const RouteCandidate& k : c.candidates) {
            w.add_text(t_route, k.route);
            w.add_text(t_next_hop, k.next_hop);
        }
    }
    return w.finish();
}

Result<RouteAnswer> decode_route_answer(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::route_answer); !ok)
        return std::move(ok).error();
    RouteAnswer a;
    MM_TRY(connection, r.get_optional_text(t_connection));
    if (*connection)
        a.connection = std::string(**connection);
    std::size_t candidates = 0;
    while (!r.at_end()) {
        if (a.recipients.size() >= limits::recipients)
            return Error::protocol("too many route choices");
        RouteChoice c;
        MM_TRY(reason, r.get_text(t_reason));
        c.reason = *reason;
        while (r.next_is(t_route)) {
            if (++candidates > limits::ipc_fields)
                return Error::protocol("too many route candidates");
            RouteCandidate k;
            MM_TRY(route, r.get_text(t_route));
            k.route = *route;
            MM_TRY(hop, r.get_text(t_next_hop));
            k.next_hop = *hop;
            c.candidates.push_back(std::move(k));
        }
        a.recipients.push_back(std::move(c));
    }
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return a;
}

Result<std::string> encode_remote_deliver(std::uint64_t request_id, const RemoteRequest& q)
{
    if (q.recipients.empty())
        return Error::protocol("a remote delivery without recipients");
    FrameWriter w(MessageType::remote_deliver, request_id);
    w.add_text(t_queue_id, q.queue_id);
    w.add_text(t_route, q.route);
    w.add_text(t_next_hop, q.next_hop);
    w.add_text(t_return_path, q.return_path);
    for (const std::string& r : q.recipients)
        w.add_text(t_recipient, r);
    w.add_bool(t_eight_bit, q.eight_bit_mime);
    w.add_u64(t_offset, q.content_offset);
    w.add_u64(t_length, q.content_length);
    w.add_fd();
    return w.finish();
}

Result<DecodedRemote> decode_remote_deliver(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::remote_deliver); !ok)
        return std::move(ok).error();
    DecodedRemote d;
    MM_TRY(id, r.get_text(t_queue_id));
    d.request.queue_id = *id;
    MM_TRY(route, r.get_text(t_route));
    d.request.route = *route;
    MM_TRY(hop, r.get_text(t_next_hop));
    d.request.next_hop = *hop;
    MM_TRY(rp, r.get_text(t_return_path));
    d.request.return_path = *rp;
    while (r.next_is(t_recipient)) {
        if (d.request.recipients.size() >= limits::recipients)
            return Error::protocol("too many recipients");
        MM_TRY(rcpt, r.get_text(t_recipient));
        d.request.recipients.emplace_back(*rcpt);
    }
    if (d.request.recipients.empty())
        return Error::protocol("a remote delivery without recipients");
    MM_TRY(eight, r.get_bool(t_eight_bit));
    d.request.eight_bit_mime = *eight;
    MM_TRY(offset, r.get_u64(t_offset));
    d.request.content_offset = *offset;
    MM_TRY(length, r.get_u64(t_length));
    d.request.content_length = *length;
    MM_TRY(fd, r.get_fd());
    d.message = std::move(fd).value();
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return d;
}

Result<std::string> encode_remote_result(std::uint64_t request_id, const RemoteResult& result)
{
    FrameWriter w(MessageType::remote_result, request_id);
    w.add_text(t_server, printable(result.server));
    for (const RemoteRecipientResult& r : result.recipients) {
        w.add_u32(t_outcome, static_cast<std::uint32_t>(r.outcome));
        w.add_text(t_reason, printable(r.reason));
    }
    return w.finish();
}

Result<RemoteResult> decode_remote_result(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::remote_result); !ok)
        return std::move(ok).error();
    RemoteResult out;
    MM_TRY(server, r.get_text(t_server));
    out.server = *server;
    while (!r.at_end()) {
        if (out.recipients.size() >= limits::recipients)
            return Error::protocol("too many recipient results");
        RemoteRecipientResult rr;
        MM_TRY(outcome, r.get_u32(t_outcome));
        if (*outcome > static_cast<std::uint32_t>(LeafOutcome::failed))
            return Error::protocol("bad recipient outcome");
        rr.outcome = static_cast<LeafOutcome>(*outcome);
        MM_TRY(reason, r.get_text(t_reason));
        rr.reason = *reason;
        out.recipients.push_back(std::move(rr));
    }
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return out;
}

Result<std::string> encode_run_queue(std::uint64_t request_id)
{
    FrameWriter w(MessageType::run_queue, request_id);
    return w.finish();
}

Result<std::string> encode_run_route(std::uint64_t request_id, const std::string& route)
{
    FrameWriter w(MessageType::run_route, request_id);
    w.add_text(t_route, route);
    return w.finish();
}

Result<std::string> decode_run_route(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::run_route); !ok)
        return std::move(ok).error();
    MM_TRY(route, r.get_text(t_route));
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return std::string(*route);
}

Result<std::string> encode_remove(std::uint64_t request_id, const std::vector<std::string>& queue_ids)
{
    FrameWriter w(MessageType::remove_message, request_id);
    for (const std::string& id : queue_ids)
        w.add_text(t_queue_id, id);
    return w.finish();
}

Result<std::vector<std::string>> decode_remove(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::remove_message); !ok)
        return std::move(ok).error();
    std::vector<std::string> ids;
    while (!r.at_end()) {
        if (ids.size() >= limits::ipc_fields)
            return Error::protocol("too many ids");
        MM_TRY(id, r.get_text(t_queue_id));
        ids.emplace_back(*id);
    }
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return ids;
}

Result<std::string> encode_new_message(std::uint64_t request_id, const std::string& queue_id)
{
    FrameWriter w(MessageType::new_message, request_id);
    w.add_text(t_queue_id, queue_id);
    return w.finish();
}

Result<std::string> decode_new_message(FrameReader& r)
{
    if (auto ok = expect(r, MessageType::new_message); !ok)
        return std::move(ok).error();
    MM_TRY(id, r.get_text(t_queue_id));
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    return std::string(*id);
}

Result<std::string> encode_queue_list(std::uint64_t request_id)
{
    FrameWriter w(MessageType::queue_list, request_id);
    return w.finish();
}

namespace {

// What one recipient of a listing costs in a frame, at most.
std::size_t listed_size(const ListedRecipient& r)
{
    return 5 * ipc::field_header_size + r.address.size() + 4 + 4 + r.last_error.size() + 8;
}

Result<std::string> encode_listed_part(std::uint64_t request_id, const ListedMessage& m, bool continued,
    std::size_t first, std::size_t end)
{
    FrameWriter w(MessageType::queue_list_entry, request_id);
    w.add_bool(t_continued, continued);
    w.add_text(t_queue_id, m.id);
    w.add_text(t_sender, m.sender);
    w.add_u64(t_size, m.size);
    w.add_u64(t_body_size, m.body_size);
    w.add_u64(t_received_time, static_cast<std::uint64_t>(m.received_time));
    w.add_text(t_peer, m.peer_address);
    w.add_text(t_ident, m.ident);
    for (std::size_t i = first; i < end; ++i) {
        const ListedRecipient& r = m.recipients[i];
        w.add_text(t_recipient, r.address);
        w.add_u32(t_state, static_cast<std::uint32_t>(r.state));
        w.add_u32(t_attempts, r.attempts);
        w.add_text(t_last_error, printable(r.last_error));
        w.add_u64(t_next_try, static_cast<std::uint64_t>(r.next_try));
    }
    return w.finish();
}

} // namespace

Result<std::vector<std::string>> encode_queue_list_entry(std::uint64_t request_id, const ListedMessage& m)
{
    const std::size_t head = ipc::header_size + 8 * ipc::field_header_size + 1 + m.id.size() + m.sender.size()
        + 3 * 8 + m.peer_address.size() + m.ident.size();
    std::vector<std::string> frames;
    std::size_t first = 0;
    do {
        std::size_t end = first;
        std::size_t size = head;
        std::size_t fields = 8;
        while (end < m.recipients.size() && size + listed_size(m.recipients[end]) <= limits::ipc_frame
            && fields + 5 <= limits::ipc_fields) {
            size += listed_size(m.recipients[end]);
            fields += 5;
            ++end;
        }
        if (end == first && first < m.recipients.size())
            return Error::internal(m.id + ": a recipient too large for a listing frame");
        MM_TRY(frame, encode_listed_part(request_id, m, !frames.empty(), first, end));
        frames.push_back(std::move(frame).value());
        first = end;
    } while (first < m.recipients.size());
    return frames;
}

Result<void> decode_queue_list_entry(FrameReader& r, std::vector<ListedMessage>& listing)
{
    if (auto ok = expect(r, MessageType::queue_list_entry); !ok)
        return std::move(ok).error();
    MM_TRY(continued, r.get_bool(t_continued));
    ListedMessage m;
    MM_TRY(id, r.get_text(t_queue_id));
    m.id = *id;
    MM_TRY(sender, r.get_text(t_sender));
    m.sender = *sender;
    MM_TRY(size, r.get_u64(t_size));
    m.size = *size;
    MM_TRY(body_size, r.get_u64(t_body_size));
    m.body_size = *body_size;
    MM_TRY(received, r.get_u64(t_received_time));
    m.received_time = static_cast<std::int64_t>(*received);
    MM_TRY(peer, r.get_text(t_peer));
    m.peer_address = *peer;
    MM_TRY(ident, r.get_text(t_ident));
    m.ident = *ident;
    while (!r.at_end()) {
        ListedRecipient rcpt;
        MM_TRY(address, r.get_text(t_recipient));
        rcpt.address = *address;
        MM_TRY(state, r.get_u32(t_state));
        if (*state > static_cast<std::uint32_t>(RecipientState::dsn_sent))
            return Error::protocol("bad recipient state");
        rcpt.state = static_cast<RecipientState>(*state);
        MM_TRY(attempts, r.get_u32(t_attempts));
        rcpt.attempts = *attempts;
        MM_TRY(last_error, r.get_text(t_last_error));
        rcpt.last_error = *last_error;
        MM_TRY(next_try, r.get_u64(t_next_try));
        rcpt.next_try = static_cast<std::int64_t>(*next_try);
        m.recipients.push_back(std::move(rcpt));
    }
    if (auto end = r.finish(); !end)
        return std::move(end).error();
    if (!*continued) {
        listing.push_back(std::move(m));
        return ok();
    }
    if (listing.empty() || listing.back().id != m.id)
        return Error::protocol("a listing frame continues a message that did not come before it");
    if (listing.back().recipients.size() + m.recipients.size() > limits::recipients)
        return Error::protocol("too many recipients in a listing");
    for (ListedRecipient& rcpt : m.recipients)
        listing.back().recipients.push_back(std::move(rcpt));
    return ok();
}

Result<std::string> encode_queue_list_end(std::uint64_t request_id, const Result<void>& status)
{
    FrameWriter w(MessageType::queue_list_end, request_id);
    if (status)
        w.add_bool(t_ok, true);
    else
        add_error(w, status.error());
    return w.finish();
}

Result<Reply> call(const Fd& sock, const std::string& frame, const Fd* fd, int timeout_ms)
{
    if (auto sent = ipc::send_frame(sock, frame, fd); !sent)
        return std::move(sent).error();
    pollfd p{.fd = sock.get(), .events = POLLIN, .revents = 0};
    int n;
    do
        n = ::poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return Error::from_errno("poll", errno);
    if (n == 0)
        return Error::temporary("no reply from the daemon in time");
    MM_TRY(got, ipc::recv_frame(sock));
    if (got->status != ipc::RecvStatus::frame)
        return Error::temporary("the daemon closed the connection");
    return Reply{std::move(got->bytes), std::move(got->fd)};
}

} // namespace mm::protocol
