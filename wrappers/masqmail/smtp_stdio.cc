// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail -bs (smtp_stdio.hh): the listener's Session driven by blocking
// reads of stdin, for MUAs (pine, alpine), PHP and Symfony's -bs transport,
// and inetd. Runs as the invoking user; every byte of stdin is untrusted.
// stdin that is a TCP socket (inetd) is a network client, with its address,
// relay control and unqualified addresses refused; anything else is a local
// user, who may relay and pipeline a whole session at once.
#include "smtp_stdio.hh"

#include "submit.hh"

#include "mm/fs.hh"
#include "mm/log.hh"
#include "mm/smtp_session.hh"
#include "mm/sysexits.hh"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mm::frontend {

namespace {

// Who is on stdin: an inetd client's address, or a local user.
smtp::Peer stdin_peer()
{
    smtp::Peer peer{.address = "", .may_relay = true, .tls_available = false, .enforce_synchronization = false};
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(STDIN_FILENO, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        return peer;
    char buf[INET6_ADDRSTRLEN] = {};
    bool loopback = false;
    if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
        loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (ss.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
        loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    } else {
        return peer; // a Unix socket or a pipe: local
    }
    // relay_nets is matched by smtp-listener; inetd clients may relay from
    // loopback only (run smtp-listener to serve a LAN).
    peer.address = buf;
    peer.may_relay = loopback;
    peer.enforce_synchronization = true;
    return peer;
}

bool write_all(std::string& out)
{
    std::string_view rest = out;
    while (!rest.empty()) {
        ssize_t n = ::write(STDOUT_FILENO, rest.data(), rest.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    out.clear();
    return true;
}

Result<std::string> read_content(const Fd& fd, std::uint64_t max)
{
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0)
        return Error::from_errno("fstat of the message", errno);
    if (static_cast<std::uint64_t>(st.st_size) > max)
        return Error::permanent("message too large");
    return read_range(fd, 0, static_cast<std::size_t>(st.st_size));
}

// One accepted message, queued as sendmail queues it.
Result<std::string> queue_one(const Context& ctx, smtp::Session& session)
{
    protocol::SubmitRequest request = session.submission();
    request.queue_only = ctx.invocation.queue_only; // masqmail -bs -odq
    if (!ctx.privileged && request.smtp)
        request.smtp->peer_address.clear(); // only privileged callers may vouch for a peer
    Fd content_fd = session.take_content();
    auto content = read_content(content_fd, max_message_size(ctx.config));
    if (!content)
        return std::move(content).error();
    auto submission = check_submission(ctx, request);
    if (!submission)
        return std::move(submission).error();
    auto queued = queue_message(ctx, request, *submission, *content);
    if (queued && *queued == "maildrop")
        return std::string("pickup"); // postdrop: enqueue gives the id when it runs
    return queued;
}

} // namespace

int smtp_on_stdio(const Context& ctx)
{
    smtp::Peer peer = stdin_peer();
    if (!peer.address.empty())
        log::info("connect from host %s (stdin)", peer.address.c_str());
    smtp::Session session(ctx.config, peer);
    std::string in, out;
    smtp::Next next = session.greet(out);
    int timeout_ms = static_cast<int>(std::min<long long>(ctx.config.smtp_timeout.count(), 86400) * 1000);
    while (next != smtp::Next::close) {
        if (next == smtp::Next::submit) {
            auto queued = queue_one(ctx, session);
            if (!queued)
                log::error("message from %s not accepted: %s", ctx.login.c_str(), queued.error().message().c_str());
            session.submitted(queued, out);
            next = session.advance(in, out);
            continue;
        }
        if (!write_all(out))
            return ex::ioerr;
        pollfd p{STDIN_FILENO, POLLIN, 0};
        int ready = ::poll(&p, 1, std::max(timeout_ms, 1000));
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0) {
            session.timed_out(out);
            break;
        }
        char buf[limits::smtp_read_chunk];
        ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ex::ok; // the client went; a message in DATA is not queued
        in.append(buf, static_cast<std::size_t>(n));
        next = session.advance(in, out);
    }
    (void)write_all(out);
    return ex::ok;
}

} // namespace mm::frontend
