// SPDX-License-Identifier: GPL-2.0-or-later
// The queue tools over the spool. Runs as the invoking user; the spool files
// are read through the hostile-safe spool reader, ids from argv are parsed
// strictly before use.
#include "queue_tools.hh"

#include "mm/alias.hh"
#include "mm/log.hh"
#include "mm/spool.hh"
#include "mm/sysexits.hh"

#include <cstdio>
#include <ctime>

namespace mm::frontend {

namespace {

struct Listed {
    StoredMessage message;
    DeliveryState state;
};

std::string age_text(std::int64_t seconds)
{
    char buf[32];
    double s = static_cast<double>(seconds);
    if (seconds <= 60)
        std::snprintf(buf, sizeof buf, "%.0fs", s);
    else if (seconds <= 3600)
        std::snprintf(buf, sizeof buf, "%.1fm", s / 60);
    else if (seconds <= 86400)
        std::snprintf(buf, sizeof buf, "%.1fh", s / 3600);
    else
        std::snprintf(buf, sizeof buf, "%.1fd", s / 86400);
    return buf;
}

std::string json_string(std::string_view s)
{
    std::string out = "\"";
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u >= 0x7f) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", u);
            out += esc;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

void print_text(const Listed& m, std::int64_t now)
{
    const Envelope& e = m.message.envelope;
    std::printf("%s <= %s size=%llu age=%s", m.message.id.c_str(), e.return_path.path().c_str(),
        static_cast<unsigned long long>(m.message.layout.body_length()),
        age_text(now - e.received_time).c_str());
    if (!e.peer_address.empty())
        std::printf(" host=%s", e.peer_address.c_str());
    if (!e.ident.empty())
        std::printf(" ident=%s", e.ident.c_str());
    std::printf("\n");
    for (std::size_t i = 0; i < e.recipients.size(); ++i) {
        const RecipientProgress& p = m.state.recipients[i];
        const char* mark = p.state == RecipientState::pending ? "==" :
                           p.state == RecipientState::delivered ? "=>" : "!=";
        std::printf("              %s %s", mark, e.recipients[i].address.path().c_str());
        if (!p.last_error.empty())
            std::printf(" (%s)", p.last_error.c_str());
        std::printf("\n");
    }
}

void print_json(const Listed& m, std::int64_t now)
{
    const Envelope& e = m.message.envelope;
    std::string line = "{\"id\":" + json_string(m.message.id.str()) +
                       ",\"sender\":" + json_string(e.return_path.str()) +
                       ",\"size\":" + std::to_string(m.message.layout.length) +
                       ",\"age\":" + std::to_string(now - e.received_time) + ",\"recipients\":[";
    for (std::size_t i = 0; i < e.recipients.size(); ++i) {
        const RecipientProgress& p = m.state.recipients[i];
        line += i == 0 ? "{" : ",{";
        line += "\"address\":" + json_string(e.recipients[i].address.str()) +
                ",\"state\":" + json_string(recipient_state_name(p.state)) +
                ",\"attempts\":" + std::to_string(p.attempts) +
                ",\"last_error\":" + (p.last_error.empty() ? "null" : json_string(p.last_error)) +
                ",\"next_try\":" + (p.next_attempt == 0 ? "null" : std::to_string(p.next_attempt)) +
                ",\"route\":null}";
    }
    std::printf("%s]}\n", line.c_str());
}

// Reads one listed message; a damaged one was moved to corrupt/ by the reader.
Result<Listed> read_listed(const Spool& spool, const QueueEntry& entry)
{
    auto m = spool.read_envelope(entry.id, entry.area);
    if (!m)
        return std::move(m).error();
    std::size_t n = m->envelope.recipients.size();
    DeliveryState state = DeliveryState::all_pending(n);
    if (entry.area == SpoolArea::queue) {
        auto st = spool.read_state(entry.id, n);
        if (!st)
            return std::move(st).error();
        state = std::move(st).value();
    }
    return Listed{std::move(m).value(), std::move(state)};
}

bool may_see(const Context& ctx, const Envelope& e)
{
    return ctx.privileged || (e.submitter_uid && *e.submitter_uid == ctx.uid);
}

} // namespace

int list_queue(const Context& ctx, bool json)
{
    auto spool = Spool::open(ctx.config.spool_dir, ctx.creates_spool);
    if (!spool)
        return report(std::move(spool).error().with_context("cannot read the queue"));
    auto listing = spool->list_queue();
    if (!listing)
        return report(listing.error());
    std::int64_t now = std::time(nullptr);
    std::size_t shown = 0;
    for (const QueueEntry& entry : listing->messages) {
        auto m = read_listed(*spool, entry);
        if (!m) {
            // Gone meanwhile (delivered) or quarantined: the reader logged it.
            continue;
        }
        if (!may_see(ctx, m->message.envelope))
            continue;
        json ? print_json(*m, now) : print_text(*m, now);
        ++shown;
    }
    if (shown == 0 && !json)
        std::printf("mail queue is empty.\n");
    return ex::ok;
}

int remove_one(const Context& ctx, const Spool& spool, std::string_view text)
{
    auto id = QueueId::parse(text);
    if (!id)
        return report(Error::permanent("invalid queue id '" + std::string(text) + "'").exit_as(ex::usage));
    for (SpoolArea area : {SpoolArea::incoming, SpoolArea::queue}) {
        auto m = spool.read_envelope(*id, area);
        if (!m)
            continue;
        const Envelope& e = m->envelope;
        bool own = e.submitter_uid && *e.submitter_uid == ctx.uid && e.protocol == ReceivedProtocol::local;
        if (!ctx.privileged && !own)
            return report(Error::permanent("message " + id->str() + " is not yours").exit_as(ex::noperm));
        if (area == SpoolArea::incoming)
            if (auto r = spool.claim_for_delivery(*id); !r)
                return report(r.error());
        if (auto r = spool.remove_message(*id); !r)
            return report(r.error());
        log::notice("%s removed by %s", id->c_str(), ctx.login.c_str());
        std::printf("message %s deleted\n", id->c_str());
        return ex::ok;
    }
    return report(Error::permanent("no message " + id->str() + " in the queue").exit_as(ex::noinput));
}

int remove_messages(const Context& ctx)
{
    auto spool = Spool::open(ctx.config.spool_dir, ctx.creates_spool);
    if (!spool)
        return report(std::move(spool).error().with_context("cannot open the queue"));
    int status = ex::ok;
    for (const std::string& text : ctx.invocation.message_ids) {
        int r = remove_one(ctx, *spool, text);
        if (status == ex::ok)
            status = r;
    }
    return status;
}

int check_aliases(const Context& ctx)
{
    config::Diagnostics diag;
    if (ctx.config.globalias_file)
        (void)config::read_alias_file(*ctx.config.globalias_file, config::AliasFileKind::glob,
            ctx.config.host_name, diag);
    if (ctx.config.alias_file)
        (void)config::read_alias_file(*ctx.config.alias_file, config::AliasFileKind::plain,
            ctx.config.host_name, diag);
    diag.print(stderr);
    return diag.has_errors() ? ex::config : ex::ok;
}

} // namespace mm::frontend
