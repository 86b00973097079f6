// SPDX-License-Identifier: GPL-2.0-or-later
// The queue tools over the spool. Runs as the invoking user; the spool files
// are read through the hostile-safe spool reader, ids from argv are parsed
// strictly before use.
#include "queue_tools.hh"

#include "mm/alias.hh"
#include "mm/cursor.hh"
#include "mm/fs.hh"
#include "mm/ipc.hh"
#include "mm/log.hh"
#include "mm/queue_listing.hh"
#include "mm/spool.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <sys/file.h>
#include <unistd.h>

namespace mm::frontend {

namespace {

using protocol::ListedMessage;

constexpr int listing_timeout_ms = 30000; // between two frames of qmgr's listing

#define MM_FRONTEND_TRY(var, expr) \
    auto var = (expr);             \
    if (!var)                      \
    return std::move(var).error()

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

void print_text(const ListedMessage& m, std::int64_t now)
{
    std::printf("%s <= <%s> size=%llu age=%s", m.id.c_str(), m.sender.c_str(),
        static_cast<unsigned long long>(m.body_size), age_text(now - m.received_time).c_str());
    if (!m.peer_address.empty())
        std::printf(" host=%s", m.peer_address.c_str());
    if (!m.ident.empty())
        std::printf(" ident=%s", m.ident.c_str());
    std::printf("\n");
    // masqmail §1.7: the recipients still to do; --json has every state and error.
    for (const protocol::ListedRecipient& r : m.recipients)
        if (r.state == RecipientState::pending)
            std::printf("              == <%s>\n", r.address.c_str());
}

void print_json(const ListedMessage& m, std::int64_t now)
{
    std::string line = "{\"id\":" + json_string(m.id) + ",\"sender\":" + json_string(m.sender) +
                       ",\"size\":" + std::to_string(m.size) +
                       ",\"age\":" + std::to_string(now - m.received_time) + ",\"recipients\":[";
    for (std::size_t i = 0; i < m.recipients.size(); ++i) {
        const protocol::ListedRecipient& r = m.recipients[i];
        line += i == 0 ? "{" : ",{";
        line += "\"address\":" + json_string(r.address) +
                ",\"state\":" + json_string(recipient_state_name(r.state)) +
                ",\"attempts\":" + std::to_string(r.attempts) +
                ",\"last_error\":" + (r.last_error.empty() ? "null" : json_string(r.last_error)) +
                ",\"next_try\":" + (r.next_try == 0 ? "null" : std::to_string(r.next_try)) +
                ",\"route\":null}";
    }
    std::printf("%s]}\n", line.c_str());
}

// The listing as qmgr gives it: for users who cannot read the spool.
Result<std::vector<ListedMessage>> list_from_qmgr(const Context& ctx)
{
    auto sock = ipc::connect_seqpacket(ctx.config.spool_dir + "/public/qmgr-ctl");
    if (!sock)
        return Error::temporary("only root and the mail user can read the queue while no daemon runs")
            .exit_as(ex::noperm);
    MM_FRONTEND_TRY(request, protocol::encode_queue_list(1));
    if (auto sent = ipc::send_frame(*sock, *request); !sent)
        return std::move(sent).error().with_context("qmgr");
    std::vector<ListedMessage> listing;
    for (;;) {
        pollfd p{.fd = sock->get(), .events = POLLIN, .revents = 0};
        int n;
        do
            n = ::poll(&p, 1, listing_timeout_ms);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
            return Error::temporary("qmgr: no listing in time");
        MM_FRONTEND_TRY(got, ipc::recv_frame(*sock));
        if (got->status != ipc::RecvStatus::frame)
            return Error::temporary("qmgr closed the connection during the listing");
        MM_FRONTEND_TRY(frame, ipc::FrameReader::parse(got->bytes));
        if (frame->type() == ipc::MessageType::queue_list_entry) {
            if (auto added = protocol::decode_queue_list_entry(*frame, listing); !added)
                return std::move(added).error().with_context("qmgr's listing");
            continue;
        }
        MM_FRONTEND_TRY(status, protocol::decode_queue_list_end(*frame));
        if (!*status)
            return std::move(*status).error();
        return listing;
    }
}

} // namespace

int list_queue(const Context& ctx, bool json)
{
    // -C as an ordinary user counts as the owner of that instance; if the
    // spool says otherwise (not readable), qmgr decides what may be seen.
    Result<std::vector<ListedMessage>> listing = Error::permanent("not privileged").exit_as(ex::noperm);
    if (ctx.privileged) {
        auto spool = Spool::open(ctx.config.spool_dir, ctx.creates_spool);
        listing = spool ? read_queue_listing(*spool, { true, ctx.uid }, ctx.config)
                        : Result<std::vector<ListedMessage>>(std::move(spool).error());
        if (!listing && listing.error().sys_errno() != EACCES && listing.error().sys_errno() != EPERM)
            return report(listing.error().with_context("cannot read the queue"));
    }
    if (!listing)
        listing = list_from_qmgr(ctx);
    if (!listing)
        return report(listing.error().with_context("cannot list the queue"));
    std::int64_t now = std::time(nullptr);
    for (const ListedMessage& m : *listing)
        json ? print_json(m, now) : print_text(m, now);
    if (listing->empty() && !json)
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
    if (!spool) {
        int e = spool.error().sys_errno();
        if (!ctx.privileged && (e == EACCES || e == EPERM))
            return report(Error::permanent("no daemon is running, and only root, mail or the instance's owner "
                                           "may remove messages without it")
                    .exit_as(ex::noperm));
        return report(std::move(spool).error().with_context("cannot open the queue"));
    }
    int status = ex::ok;
    for (const std::string& text : ctx.invocation.message_ids) {
        int r = remove_one(ctx, *spool, text);
        if (status == ex::ok)
            status = r;
    }
    return status;
}

namespace {

// The pid of this instance's running supervisor: only while it holds its
// lock (so a stale pid file never names a stranger), read from masqmail.pid.
std::optional<pid_t> running_supervisor(const Context& ctx)
{
    Fd lock(::open((ctx.config.pid_dir + "/masqmail.lock").c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!lock.valid())
        return std::nullopt;
    if (::flock(lock.get(), LOCK_SH | LOCK_NB) == 0)
        return std::nullopt; // nobody holds it: no daemon runs
    if (errno != EWOULDBLOCK)
        return std::nullopt;
    auto dir = open_dir(ctx.config.pid_dir);
    auto text = dir ? read_file_at(*dir, "masqmail.pid", 32) : Result<std::string>(dir.error());
    if (!text)
        return std::nullopt; // a queue run without daemons holds the lock
    auto pid = parse_decimal<unsigned>(std::string_view(*text).substr(0, text->find('\n')));
    if (!pid || *pid < 2)
        return std::nullopt;
    return static_cast<pid_t>(*pid);
}

} // namespace

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
    if (diag.has_errors())
        return ex::config;
    // The daemons read the alias files when they start: tell running ones
    // (they re-read the configuration and the aliases on SIGHUP).
    if (ctx.privileged)
        if (std::optional<pid_t> pid = running_supervisor(ctx); pid && ::kill(*pid, SIGHUP) == 0)
            log::info("alias files checked; the daemons (pid %ld) re-read them", static_cast<long>(*pid));
    return ex::ok;
}

} // namespace mm::frontend
