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
#include "mm/route_rewrite.hh"

#include "pipe.hh"

#include <cctype>
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

// The server's reply as it came ("550 5.1.1 ..."), or our own error with
// its enhanced status code in front ("5.1.10 example.org accepts no
// mail"), so that a bounce can report the status.
std::string reason_text(const smtp::RecipientOutcome& o)
{
    const std::string& r = o.reply;
    bool reply = r.size() >= 4 && r[0] >= '2' && r[0] <= '5' && std::isdigit(static_cast<unsigned char>(r[1]))
        && std::isdigit(static_cast<unsigned char>(r[2])) && (r[3] == ' ' || r[3] == '-');
    if (reply || o.enhanced.empty())
        return r;
    return o.enhanced + " " + r;
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

// A pipe route (masqmail §3.3): the route's command once per recipient,
// the copy rewritten for the route on its stdin, run as this daemon's user
// with masqmail's variables. Exit 0 delivers; anything else defers, or
// fails with connect_error_fail.
protocol::RemoteResult send_by_pipe(const config::RouteConfig& route, const config::MainConfig& cfg,
    const SendItem& item)
{
    protocol::RemoteResult result;
    result.server = "pipe " + route.pipe->text;
    auto copy = rewrite_for_route(route, cfg, item.content, item.return_path);
    if (!copy) {
        result.recipients.assign(item.recipients.size(),
            { copy.error().is_temporary() ? protocol::LeafOutcome::deferred : protocol::LeafOutcome::failed,
                copy.error().message() });
        return result;
    }
    local::PipeOptions options;
    options.from_line = route.pipe_fromline;
    options.from_hack = route.pipe_fromhack;
    for (const Address& rcpt : item.recipients) {
        local::LocalEnvelope env { item.queue_id, copy->return_path, rcpt, rcpt, "", "", cfg.host_name };
        protocol::RemoteRecipientResult r;
        auto command = local::expand_command(route.pipe->argv, env);
        local::DeliveryStatus status = command
            ? local::run_pipe(*command, local::MessageSource::from_text(copy->message), env, options).status
            : local::DeliveryStatus::fail(command.error().message());
        switch (status.kind) {
        case local::DeliveryStatus::delivered: r.outcome = protocol::LeafOutcome::delivered; break;
        case local::DeliveryStatus::deferred: r.outcome = protocol::LeafOutcome::deferred; break;
        case local::DeliveryStatus::failed:
            r.outcome = route.connect_error_fail ? protocol::LeafOutcome::failed : protocol::LeafOutcome::deferred;
            break;
        }
        r.reason = status.kind == local::DeliveryStatus::delivered ? "piped" : status.reason;
        result.recipients.push_back(std::move(r));
    }
    return result;
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
        protocol::RemoteResult result;
        if (route->pipe) {
            result = send_by_pipe(*route, cfg, *item);
        } else {
            smtp::MessageOutcome outcome = connection->send(*item);
            result.server = connection->server();
            for (std::size_t i = 0; i < q.recipients.size(); ++i) {
                const smtp::RecipientOutcome* o = i < outcome.recipients.size() ? &outcome.recipients[i] : nullptr;
                protocol::RemoteRecipientResult rr;
                rr.outcome = o ? leaf_outcome(o->kind) : protocol::LeafOutcome::deferred;
                rr.reason = o ? reason_text(*o) : "no answer for this recipient";
                result.recipients.push_back(std::move(rr));
            }
        }
        for (std::size_t i = 0; i < result.recipients.size(); ++i) {
            const protocol::RemoteRecipientResult& rr = result.recipients[i];
            log::info("%s to=<%s> route=%s relay=%s%s%s status=%s (%s)", q.queue_id.c_str(), q.recipients[i].c_str(),
                route_path.c_str(), result.server.c_str(), connection->tls().empty() ? "" : " tls=",
                connection->tls().c_str(),
                rr.outcome == protocol::LeafOutcome::delivered ? "sent"
                    : rr.outcome == protocol::LeafOutcome::failed ? "bounced" : "deferred",
                rr.reason.c_str());
        }
        reply(sock, rid, result);
    }
    if (connection)
        connection->close();
    ::_exit(0);
}

} // namespace mm::remote
