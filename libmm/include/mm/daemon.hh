// SPDX-License-Identifier: GPL-2.0-or-later
// What every daemon does first: its command line (-C CONFIG, --once), the
// configuration, the log, the user it becomes, and the listening sockets the
// supervisor passed it. The supervisor is the only caller of the daemons, but
// argv is still checked. Linked by every daemon.
#pragma once

#include "mm/config.hh"
#include "mm/fd.hh"
#include "mm/priv.hh"
#include "mm/result.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace mm::daemon {

// Daemon users of a system install (packaging/sysusers.d/masqmail.conf).
inline constexpr const char* queue_user = "masqmail";       // enqueue, qmgr
inline constexpr const char* local_user = "masqmail-local"; // local-deliver
inline constexpr const char* smtp_user = "masqmail-smtp";
inline constexpr const char* route_user = "masqmail-route";
inline constexpr const char* remote_user = "masqmail-remote";
inline constexpr const char* drop_group = "masqmail-drop"; // postdrop's set-gid group

// The first inherited listening socket: the supervisor passes a daemon's
// sockets as descriptors 3, 4, ... in the order its main documents.
inline constexpr int first_listen_fd = 3;

struct Options {
    std::string config_path;
    bool once = false; // qmgr: one queue run, then exit (runq without a daemon)
    std::int64_t queue_interval = 0; // qmgr: -q SECONDS between queue runs; 0: none
    bool foreground = false; // supervisor: --foreground (masqmail -bD, systemd, runit)
    // supervisor and qmgr with --once: --connection NAME, a remote-only run
    // through NAME's routes (runq -qo NAME without a daemon).
    std::optional<std::string> connection;
};

// "-C PATH [--once [--connection NAME]] [-q SECONDS] [--foreground]"; anything else is a usage error (exit 64).
Result<Options> parse_args(int argc, char** argv);

struct Started {
    Options options;
    config::MainConfig config;
    // A private instance (run_as_user, or not started as root): every process
    // runs as the one instance user and no identity is switched.
    bool private_instance = false;
    uid_t instance_uid = 0; // the private instance's user
};

// Parses argv, reads the configuration (errors on stderr with file:line),
// opens the log under `name`. Errors carry their exit code.
Result<Started> start(int argc, char** argv, const char* name);

// The uid of daemon user `name`, or the instance user in a private instance.
Result<uid_t> peer_uid(const Started& s, const char* name);

// Becomes daemon user `name` keeping `keep` (private instance: only the
// clearing steps of priv::become_daemon_user).
Result<void> become(const Started& s, const char* name, std::initializer_list<priv::Capability> keep);

// The inherited socket at first_listen_fd + index, checked to be a
// listening AF_UNIX socket, made non-blocking and close-on-exec.
Result<Fd> inherited_listener(int index);

// Ignores SIGPIPE; SIGCHLD stays default (deliveries wait for children).
void common_signals();

} // namespace mm::daemon
