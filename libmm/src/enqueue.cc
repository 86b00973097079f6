// SPDX-License-Identifier: GPL-2.0-or-later
// prepare_message() parses and fixes the message in memory; accept_message()
// then streams it to the spool writer, which commits it. Linked by enqueue
// and the front end.
#include "mm/enqueue.hh"

#include "mm/header_fixup.hh"
#include "mm/limits.hh"
#include "mm/log.hh"
#include "mm/message.hh"
#include "mm/recipient.hh"

#include <algorithm>
#include <ctime>
#include <set>

namespace mm {

namespace {

// The envelope of a submission before -t: who sent it, how, to whom.
Envelope envelope_of(const Submission& s, std::time_t now)
{
    Envelope env;
    env.return_path = s.sender;
    for (const Address& a : s.recipients)
        env.recipients.push_back({a, ""});
    env.received_time = now;
    env.protocol = s.protocol;
    env.peer_address = s.peer_address;
    env.helo_name = s.helo_name;
    env.ident = s.ident;
    env.submitter_uid = s.uid;
    env.eight_bit_mime = s.eight_bit_mime;
    return env;
}

// The headers describe what the envelope records: one source for both.
FixupOptions fixup_options(const config::MainConfig& config, const Submission& s, const Envelope& env,
    const QueueId& id)
{
    FixupOptions o;
    o.host_name = config.host_name;
    o.queue_id = id.str();
    o.sender = env.return_path;
    o.sender_full_name = s.full_name;
    o.protocol = env.protocol;
    o.peer_address = env.peer_address;
    o.helo_name = env.helo_name;
    o.ident = env.ident;
    o.uid = env.submitter_uid;
    o.extract_recipients = s.extract_recipients;
    o.recipients = s.recipients;
    o.max_received = config.max_received_headers;
    o.now = static_cast<std::time_t>(env.received_time);
    o.save_envelope_to = config.do_save_envelope_to && env.protocol != ReceivedProtocol::local;
    return o;
}

// Appends what -t found, keeps the first of repeated recipients (RCPT TO
// twice, To: and Cc:; user-needs S7: one copy each), and checks the count
// of the whole list.
Result<void> add_header_recipients(const config::MainConfig& config, Envelope& env,
    std::vector<Address> header_recipients)
{
    for (Address& a : header_recipients)
        env.recipients.push_back({std::move(a), ""});
    std::set<std::string> seen;
    std::erase_if(env.recipients, [&](const EnvelopeRecipient& r) {
        return !seen.insert(recipient_key(r.address, config.caseless_matching)).second;
    });
    if (env.recipients.empty())
        return Error::permanent("no recipients").status_as("5.1.3");
    std::size_t max = std::min(config.max_recipients, limits::recipients);
    if (env.recipients.size() > max)
        return Error::permanent("too many recipients (" + std::to_string(env.recipients.size()) +
                                ", at most " + std::to_string(max) + ")");
    return ok();
}

// log_user, masqmail's archive of every message: one more envelope
// recipient (never in a header), unless it is one already.
void add_log_user(const config::MainConfig& config, Envelope& env)
{
    std::vector<Address> given;
    for (const EnvelopeRecipient& r : env.recipients)
        given.push_back(r.address);
    std::vector<Address> all = with_log_user(std::move(given), config);
    if (all.size() > env.recipients.size())
        env.recipients.push_back({all.back(), ""});
}

void log_accepted(const Accepted& a, const Envelope& env)
{
    std::string from = env.return_path.path();
    if (env.protocol == ReceivedProtocol::local)
        log::info("%s <= %s with local", a.id.c_str(), from.c_str());
    else if (env.peer_address.empty()) // masqmail -bs
        log::info("%s <= %s ident=%s with %s", a.id.c_str(), from.c_str(), env.ident.c_str(),
            received_protocol_name(env.protocol));
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

Result<PreparedMessage> prepare_message(const config::MainConfig& config, const Submission& submission,
    std::string_view content, const QueueId& id, std::time_t now)
{
    // The limit applies to the message as it was given (what SIZE announced),
    // not to the headers we add (Received, Date, Message-ID).
    std::uint64_t max = max_message_size(config);
    if (content.size() > max)
        return Error::permanent("message too large (" + std::to_string(content.size()) + " bytes, at most " +
                                std::to_string(max) + ")").status_as("5.3.4");
    auto message = parse_message(content);
    if (!message)
        return std::move(message).error();
    PreparedMessage prepared{envelope_of(submission, now), ""};
    auto fixed = fix_headers(*message, fixup_options(config, submission, prepared.envelope, id));
    if (!fixed)
        return std::move(fixed).error();
    if (auto r = add_header_recipients(config, prepared.envelope, std::move(fixed->header_recipients)); !r)
        return std::move(r).error();
    add_log_user(config, prepared.envelope);
    prepared.content = render(*message);
    // A local submission (sendmail, a bounce) declares no body type: 8-bit
    // bytes make it 8BITMIME, so that it is passed on as such (RFC 6152).
    if (submission.protocol == ReceivedProtocol::local
        && std::any_of(prepared.content.begin(), prepared.content.end(),
            [](char c) { return static_cast<unsigned char>(c) >= 0x80; }))
        prepared.envelope.eight_bit_mime = true;
    return prepared;
}

Result<StagedMessage> stage_message(const Spool& spool, const config::MainConfig& config,
    const Submission& submission, std::string_view content)
{
    auto id = QueueId::generate();
    if (!id)
        return std::move(id).error();
    auto prepared = prepare_message(config, submission, content, *id, std::time(nullptr));
    if (!prepared)
        return std::move(prepared).error();
    auto writer = spool.begin_message(*id, prepared->envelope, prepared->content.size());
    if (!writer)
        return std::move(writer).error();
    if (auto r = writer->add_content(prepared->content); !r)
        return std::move(r).error();
    auto destination = submission.queue_only ? MessageWriter::Destination::next_queue_run
                                             : MessageWriter::Destination::deliver_now;
    Accepted accepted{*id, prepared->envelope.recipients.size(), prepared->content.size()};
    return StagedMessage{std::move(writer).value(), destination, accepted, std::move(prepared->envelope)};
}

std::vector<Result<Accepted>> commit_staged(std::vector<StagedMessage>& batch)
{
    std::vector<Result<Accepted>> results;
    for (StagedMessage& m : batch) {
        Result<void> r = m.writer.seal();
        if (r)
            r = m.writer.publish(m.destination);
        results.push_back(r ? Result<Accepted>(m.accepted) : Result<Accepted>(std::move(r).error()));
    }
    for (auto destination : {MessageWriter::Destination::deliver_now, MessageWriter::Destination::next_queue_run}) {
        std::optional<Result<void>> synced; // one fsync per directory, by the first message that went there
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (batch[i].destination != destination || !results[i])
                continue;
            if (!synced)
                synced = batch[i].writer.fsync_destination(destination);
            if (!*synced)
                results[i] = synced->error();
        }
    }
    for (std::size_t i = 0; i < batch.size(); ++i)
        if (results[i])
            log_accepted(*results[i], batch[i].envelope);
    return results;
}

Result<Accepted> accept_message(const Spool& spool, const config::MainConfig& config,
    const Submission& submission, std::string_view content)
{
    auto staged = stage_message(spool, config, submission, content);
    if (!staged)
        return std::move(staged).error();
    std::vector<StagedMessage> batch;
    batch.push_back(std::move(staged).value());
    return std::move(commit_staged(batch).front());
}

} // namespace mm
