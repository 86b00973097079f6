// SPDX-License-Identifier: GPL-2.0-or-later
// The queue listing from the spool (mm/queue_listing.hh).
#include "mm/queue_listing.hh"

#include "mm/recipient.hh"

#include <cerrno>

namespace mm {

namespace {

protocol::ListedMessage listed(const StoredMessage& m, const DeliveryState& state, const config::MainConfig& config)
{
    const Envelope& e = m.envelope;
    protocol::ListedMessage out;
    out.id = m.id.str();
    out.sender = e.return_path.str();
    out.size = m.layout.length;
    out.body_size = m.layout.body_length();
    out.received_time = e.received_time;
    out.peer_address = e.peer_address;
    out.ident = e.ident;
    for (std::size_t i = 0; i < e.recipients.size(); ++i) {
        const RecipientProgress& p = state.recipients[i];
        std::string why = p.last_error;
        if (why.empty() && p.state == RecipientState::pending && p.attempts == 0
            && !is_local(e.recipients[i].address, config))
            why = "waiting for a route: no queue run has tried it yet";
        out.recipients.push_back({ e.recipients[i].address.str(), p.state, p.attempts, why, p.next_attempt });
    }
    return out;
}

} // namespace

bool may_list(const ListingViewer& viewer, const Envelope& envelope)
{
    return viewer.privileged
        || (envelope.protocol == ReceivedProtocol::local && envelope.submitter_uid
            && *envelope.submitter_uid == viewer.uid);
}

Result<std::vector<protocol::ListedMessage>> read_queue_listing(
    const Spool& spool, const ListingViewer& viewer, const config::MainConfig& config)
{
    auto listing = spool.list_queue();
    if (!listing)
        return std::move(listing).error();
    std::vector<protocol::ListedMessage> out;
    for (const QueueEntry& entry : listing->messages) {
        bool has_state = entry.has_state;
        auto m = spool.read_envelope(entry.id, entry.area);
        if (!m && entry.area == SpoolArea::incoming && m.error().sys_errno() == ENOENT) {
            // qmgr claimed it (new/ to queue/) since the directory was read.
            m = spool.read_envelope(entry.id, SpoolArea::queue);
            has_state = true; // qmgr may have written one already
        }
        if (!m || !may_list(viewer, m->envelope))
            continue;
        std::size_t n = m->envelope.recipients.size();
        DeliveryState state = DeliveryState::all_pending(n);
        if (has_state) {
            auto st = spool.read_state(entry.id, n); // none yet: all pending
            if (!st)
                continue;
            state = std::move(st).value();
        }
        out.push_back(listed(*m, state, config));
    }
    return out;
}

} // namespace mm
