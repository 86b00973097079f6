// SPDX-License-Identifier: GPL-2.0-or-later
// One remote-deliver worker (worker.hh).
#include "worker.hh"

#include "mm/address.hh"
#include "mm/fs.hh"
#include "mm/ipc.hh"
#include "mm/limits.hh"
#include "mm/log.hh"
#include "mm/protocol.hh"
#include "mm/remote_send.hh"
#include "mm/route.hh"

#include <fcntl.h>
#include <unistd.h>

namespace mm::remote {

namespace {

protocol::LeafOutcome leaf_outcome(smtp::RecipientOutcome::Kind kind)
{
    switch (kind) {
    case smtp::RecipientOutcome::Kind::delivered: return protocol::LeafOutcome::delivered;
    case smtp::RecipientOutcome::Kind::failed: return protocol::LeafOutcome::failed;
    case smtp::RecipientOutcome::Kind::deferred: break;
    }
    return protocol::LeafOutcome::deferred;
}

protocol::RemoteResult all(std::size_t n, protocol::LeafOutcome outcome, const std::string& reason)
{
    protocol::RemoteResult r;
    r.recipients.assign(n, { outcome, reason });
    return r;
}

// The request as a SendItem: its addresses parsed again and the content read
// from the passed descriptor.
Result<SendItem> send_item(const protocol::RemoteRequest& q, const Fd& message)
{
    SendItem item;
    item.queue_id = q.queue_id;
    AddressOptions null_ok;
    null_ok.allow_null = true;
    auto rp = parse_path("<" + q.return_path + ">", null_ok);
    if (!rp)
        return Error::permanent("bad return path: " + rp.error().message());
    item.return_path = *rp;
    for (const std::string& text : q.recipients) {
        auto a = parse_path("<" + text + ">", AddressOptions {});
        if (!a)
            return Error::permanent("bad recipient: " + a.error().message());
        item.recipients.push_back(*a);
    }
    if (q.content_length > limits::message_size_hard + limits::rewritten_header_section)
        return Error::permanent("message too large");
    auto content = read_range(message, q.content_offset, static_cast<std::size_t>(q.content_length));
    if (!content)
        return Error::temporary("cannot read the message: " + content.error().message());
    if (content->size() != q.content_length)
        return Error::temporary("the message file is shorter than its envelope says");
    item.content = std::move(content).value();
    item.eight_bit_mime = q.eight_bit_mime;
    return item;
}

void reply(const Fd& sock, std::uint64_t rid, const protocol::RemoteResult& result)
{
    auto frame = protocol::encode_remote_result(rid, result);
    if (!frame || !ipc::send_frame(sock, *frame))
        ::_exit(1); // the parent answers what is left as deferred
}

} // namespace

void run_worker(const config::MainConfig& cfg, const std::string& route_path, const std::string& next_hop, Fd sock)
{
    log::set_ident("remote-deliver");
    ::fcntl(sock.get(), F_SETFL, ::fcntl(sock.get(), F_GETFL) & ~O_NONBLOCK);
    ::fcntl(sock.get(), F_SETFD, FD_CLOEXEC); // not for a wrapper
    config::Diagnostics diag;
    std::optional<config::RouteConfig> route = config::read_route_config(route_path, diag);
    std::string route_error;
    if (!route || diag.has_errors()) {
        route_error = "route " + route_path + " cannot be read";
        for (const config::Diagnostic& d : diag.entries())
            if (d.severity == config::Severity::error) {
                route_error += ": " + d.text();
                break;
            }
        log::error("%s", route_error.c_str());
    }
    std::optional<RouteConnection> connection;
    if (route && route_error.empty())
        connection.emplace(*route, cfg, next_hop);
    for (;;) {
        auto got = ipc::recv_frame(sock);
        if (!got || got->status != ipc::RecvStatus::frame)
            break;
        auto frame = ipc::FrameReader::parse(got->bytes, std::move(got->fd));
        if (!frame)
            break;
        std::uint64_t rid = frame->request_id();
        auto request = protocol::decode_remote_deliver(*frame);
        if (!request)
            break;
        const protocol::RemoteRequest& q = request->request;
        if (!connection) {
            reply(sock, rid, all(q.recipients.size(), protocol::LeafOutcome::deferred, route_error));
            continue;
        }
        auto item = send_item(q, request->message);
        if (!item) {
            reply(sock, rid, all(q.recipients.size(),
                item.error().is_temporary() ? protocol::LeafOutcome::deferred : protocol::LeafOutcome::failed,
                item.error().message()));
            continue;
        }
        smtp::MessageOutcome outcome = connection->send(*item);
        protocol::RemoteResult result;
        result.server = connection->server();
        for (std::size_t i = 0; i < q.recipients.size(); ++i) {
            const smtp::RecipientOutcome* o = i < outcome.recipients.size() ? &outcome.recipients[i] : nullptr;
            protocol::RemoteRecipientResult rr;
            rr.outcome = o ? leaf_outcome(o->kind) : protocol::LeafOutcome::deferred;
            rr.reason = o ? o->reply : "no answer for this recipient";
            result.recipients.push_back(std::move(rr));
            log::info("%s to=<%s> route=%s relay=%s%s%s status=%s (%s)", q.queue_id.c_str(), q.recipients[i].c_str(),
                route_path.c_str(), result.server.c_str(), connection->tls().empty() ? "" : " tls=",
                connection->tls().c_str(),
                rr.outcome == protocol::LeafOutcome::delivered ? "sent"
                    : rr.outcome == protocol::LeafOutcome::failed ? "bounced" : "deferred",
                result.recipients.back().reason.c_str());
        }
        reply(sock, rid, result);
    }
    if (connection)
        connection->close();
    ::_exit(0);
}

} // namespace mm::remote
