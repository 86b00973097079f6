// SPDX-License-Identifier: GPL-2.0-or-later
// The supervisor: creates the spool's sockets, starts enqueue, local-deliver
// and qmgr (each becomes its own user), restarts one that dies, reloads on
// SIGHUP and stops everything on SIGTERM. It runs as root in a system install
// (only to create sockets and start the others) and as the instance user in
// a private one; it parses nothing but the configuration.
//   supervisor -C CONFIG [-q SECONDS] [--foreground]   masqmail -bd / -bD
//   supervisor -C CONFIG --once                        runq with no daemon
#include "supervisor.hh"

#include "mm/daemon.hh"

#include <cstdio>

int main(int argc, char** argv)
{
    auto started = mm::daemon::start(argc, argv, "masqmail");
    if (!started) {
        std::fprintf(stderr, "masqmail: %s\n", started.error().message().c_str());
        return started.error().exit_code();
    }
    return mm::supervisor::run(*started);
}
