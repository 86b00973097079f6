// SPDX-License-Identifier: GPL-2.0-or-later
// Daemon start-up shared by every daemon (mm/daemon.hh).
#include "mm/daemon.hh"
#include "mm/ipc.hh"

#include <malloc.h>

#include "mm/cursor.hh"
#include "mm/log.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mm::daemon {

Result<Options> parse_args(int argc, char** argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "-C" && i + 1 < argc)
            o.config_path = argv[++i];
        else if (a == "--once")
            o.once = true;
        else if (a == "--connection" && i + 1 < argc && ipc::is_text(argv[i + 1]) && argv[i + 1][0] != '\0')
            o.connection = argv[++i];
        else if (a == "--foreground")
            o.foreground = true;
        else if (a == "-q" && i + 1 < argc) {
            auto n = parse_decimal<std::uint64_t>(argv[++i]);
            if (!n || *n > 366ull * 86400)
                return Error::permanent("bad queue interval").exit_as(ex::usage);
            o.queue_interval = static_cast<std::int64_t>(*n);
        }
        else
            return Error::permanent("usage: " + std::string(argv[0]) + " -C CONFIG [--once [--connection NAME]] [-q SECONDS] [--foreground]").exit_as(ex::usage);
    }
    if (o.connection && !o.once)
        return Error::permanent("--connection needs --once").exit_as(ex::usage);
    if (o.config_path.empty() || o.config_path.front() != '/')
        return Error::permanent("-C needs an absolute configuration path").exit_as(ex::usage);
    return o;
}

Result<Started> start(int argc, char** argv, const char* name)
{
    // Messages pass through buffers of up to a few MiB, one after another:
    // keep such blocks in the heap instead of an mmap and munmap (page faults
    // and TLB flushes) for every message; at most 8 MiB stays unreturned.
    ::mallopt(M_MMAP_THRESHOLD, 4 << 20);
    ::mallopt(M_TRIM_THRESHOLD, 8 << 20);
    auto options = parse_args(argc, argv);
    if (!options)
        return std::move(options).error();
    Started s;
    s.options = std::move(options).value();
    config::Diagnostics diag;
    auto cfg = config::read_main_config(s.options.config_path, diag);
    if (!cfg || diag.has_errors()) {
        diag.print(stderr);
        return Error::permanent("bad configuration " + s.options.config_path).exit_as(ex::config);
    }
    s.config = std::move(*cfg);
    s.instance_uid = ::getuid();
    s.private_instance = s.config.run_as_user || s.instance_uid != 0;
    log::set_ident(name);
    if (!log::configure({s.config.log_dir, s.config.use_syslog, s.config.debug_level}))
        log::use_syslog();
    return s;
}

Result<uid_t> peer_uid(const Started& s, const char* name)
{
    if (s.private_instance)
        return s.instance_uid;
    auto id = priv::lookup_user(name);
    if (!id)
        return std::move(id).error();
    return id->uid;
}

Result<void> become(const Started& s, const char* name, std::initializer_list<priv::Capability> keep)
{
    if (s.private_instance) {
        auto self = priv::lookup_uid(s.instance_uid);
        if (!self)
            return std::move(self).error();
        return priv::become_daemon_user(*self, {});
    }
    auto id = priv::lookup_user(name);
    if (!id)
        return std::move(id).error().with_context(std::string("daemon user ") + name);
    return priv::become_daemon_user(*id, keep);
}

Result<Fd> inherited_listener(int index)
{
    int fd = first_listen_fd + index;
    int accepting = 0;
    socklen_t len = sizeof accepting;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting)
        return Error::internal("descriptor " + std::to_string(fd) + " is not a listening socket");
    int domain = 0;
    len = sizeof domain;
    if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX)
        return Error::internal("descriptor " + std::to_string(fd) + " is not a Unix socket");
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
        return Error::from_errno("fcntl", errno);
    return Fd(fd);
}

void common_signals()
{
    struct sigaction sa{};
    sa.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &sa, nullptr);
}

} // namespace mm::daemon
