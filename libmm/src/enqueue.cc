// SPDX-License-Identifier: GPL-2.0-or-later
// accept_message(): the message is parsed and fixed in memory, then streamed
// to the spool writer, which commits it. Linked by enqueue and the front end.
#include "mm/enqueue.hh"

#include "mm/header_fixup.hh"
#include "mm/limits.hh"
#include "mm/log.hh"
#include "mm/message.hh"

#include <algorithm>
#include <ctime>

namespace mm {

namespace {

FixupOptions fixup_options(const config::MainConfig& config, const Submission& s, const QueueId& id,
    std::time_t now)
{
    FixupOptions o;
    o.host_name = config.host_name;
    o.queue_id = id.str();
    o.sender = s.sender;
    o.sender_full_name = s.full_name;
    o.protocol = s.protocol;
    o.peer_address = s.peer_address;
    o.helo_name = s.helo_name;
    o.ident = s.ident;
    o.uid = s.uid;
    o.extract_recipients = s.extract_recipients;
    o.recipients = s.recipients;
    o.max_received = config.max_received_headers;
    o.now = now;
    o.save_envelope_to = config.do_save_envelope_to && s.protocol != ReceivedProtocol::local;
    return o;
}

Result<Envelope> build_envelope(const config::MainConfig& config, const Submission& s,
    std::vector<Address> header_recipients, std::time_t now)
{
    Envelope env;
    env.return_path = s.sender;
    for (const Address& a : s.recipients)
        env.recipients.push_back({a, ""});
    for (Address& a : header_recipients)
        env.recipients.push_back({std::move(a), ""});
    if (env.recipients.empty())
        return Error::permanent("no recipients");
    std::size_t max = std::min(config.max_recipients, limits::recipients);
    if (env.recipients.size() > max)
        return Error::permanent("too many recipients (" + std::to_string(env.recipients.size()) +
                                ", at most " + std::to_string(max) + ")");
    env.received_time = now;
    env.protocol = s.protocol;
    env.peer_address = s.peer_address;
    env.helo_name = s.helo_name;
    env.ident = s.ident;
    env.submitter_uid = s.uid;
    env.eight_bit_mime = s.eight_bit_mime;
    return env;
}

void log_accepted(const Accepted& a, const Envelope& env)
{
    std::string from = env.return_path.path();
    if (env.protocol == ReceivedProtocol::local)
        log::info("%s <= %s with local", a.id.c_str(), from.c_str());
    else
        log::info("%s <= %s host=%s with %s", a.id.c_str(), from.c_str(), env.peer_address.c_str(),
            received_protocol_name(env.protocol));
}

} // namespace

std::uint64_t max_message_size(const config::MainConfig& config)
{
    std::uint64_t max = config.max_msg_size > 0 ? config.max_msg_size : limits::message_size_default;
    return std::min(max, limits::message_size_hard);
}

Result<Accepted> accept_message(const Spool& spool, const config::MainConfig& config,
    const Submission& submission, std::string_view content)
{
    auto message = parse_message(content);
    if (!message)
        return std::move(message).error();
    auto id = QueueId::generate();
    if (!id)
        return std::move(id).error();
    std::time_t now = std::time(nullptr);
    auto fixed = fix_headers(*message, fixup_options(config, submission, *id, now));
    if (!fixed)
        return std::move(fixed).error();
    auto envelope = build_envelope(config, submission, std::move(fixed->header_recipients), now);
    if (!envelope)
        return std::move(envelope).error();
    std::string rendered = render(*message);
    std::uint64_t max = max_message_size(config);
    if (rendered.size() > max)
        return Error::permanent("message too large (" + std::to_string(rendered.size()) +
                                " bytes, at most " + std::to_string(max) + ")");
    auto writer = spool.begin_message(*id, *envelope, max);
    if (!writer)
        return std::move(writer).error();
    if (auto r = writer->add_content(rendered); !r)
        return std::move(r).error();
    if (auto r = writer->commit(submission.queue_only ? MessageWriter::Destination::next_queue_run
                                                      : MessageWriter::Destination::deliver_now);
        !r)
        return std::move(r).error();
    Accepted accepted{*id, envelope->recipients.size(), rendered.size()};
    log_accepted(accepted, *envelope);
    return accepted;
}

} // namespace mm
