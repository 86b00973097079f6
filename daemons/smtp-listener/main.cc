// SPDX-License-Identifier: GPL-2.0-or-later
// smtp-listener: the SMTP server for the network (listen_addresses). Runs as
// masqmail-smtp with no capability and no access to the spool; in a private
// instance as its user. Started by the supervisor as
// `smtp-listener -C /abs/masqmail.conf` with the TCP sockets it bound (port
// 25 needs root) as descriptors 3, 4, ...; each accepted message goes to
// enqueue over spool_dir/private/enqueue, and 250 follows its commit.
#include "listener.hh"
#include "tls.hh"

#include "mm/daemon.hh"
#include "mm/log.hh"
#include "mm/sysexits.hh"

#include <cstdio>
#include <fcntl.h>
#include <sys/socket.h>
#include <vector>

namespace {

int fail(const char* what, const mm::Error& error)
{
    mm::log::error("smtp-listener: %s: %s", what, error.message().c_str());
    (void)std::fprintf(stderr, "smtp-listener: %s: %s\n", what, error.message().c_str());
    return error.exit_code();
}

// Descriptors 3, 4, ... up to the first that is not a listening TCP socket
// (the supervisor passes them in a row; what follows is our own, the log).
mm::Result<std::vector<mm::Fd>> inherited_tcp_listeners()
{
    std::vector<mm::Fd> socks;
    for (int fd = mm::daemon::first_listen_fd; ::fcntl(fd, F_GETFD) >= 0; ++fd) {
        int listening = 0;
        sockaddr_storage ss {};
        socklen_t len = sizeof listening;
        socklen_t sslen = sizeof ss;
        if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0
            || ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sslen) != 0
            || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
            break;
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        socks.emplace_back(fd);
    }
    if (socks.empty())
        return mm::Error::permanent("no listening socket passed");
    return socks;
}

} // namespace

int main(int argc, char** argv)
{
    namespace daemon = mm::daemon;
    auto started = daemon::start(argc, argv, "smtp-listener");
    if (!started)
        return fail("start", started.error());
    daemon::common_signals();
    auto sockets = inherited_tcp_listeners();
    if (!sockets)
        return fail("sockets", sockets.error());
    // The key file may be readable by root alone: load it before the switch.
    mm::smtp::TlsContext tls;
    const auto& cfg = started->config;
    if (cfg.tls_cert_file && cfg.tls_key_file) {
        auto ctx = mm::smtp::load_server_context(*cfg.tls_cert_file, *cfg.tls_key_file);
        if (!ctx)
            return fail("STARTTLS", mm::Error(ctx.error()).exit_as(mm::ex::config));
        tls = std::move(ctx).value();
    }
    // Become masqmail-smtp keeping no capability (a private instance: its user).
    if (auto became = daemon::become(*started, daemon::smtp_user, {}); !became)
        return fail("privileges", became.error());
    mm::smtp::Listener listener(cfg, std::move(sockets).value(), std::move(tls));
    return listener.run();
}
