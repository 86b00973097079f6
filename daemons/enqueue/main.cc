// SPDX-License-Identifier: GPL-2.0-or-later
// enqueue: the only writer of new queue entries. Runs as the queue user
// (masqmail) with no capability; in a private instance as its user.
// Sockets, passed by the supervisor:
//   fd 3  private/enqueue  qmgr (bounces and warnings), smtp-listener (SMTP mail)
//   fd 4  public/submit    every local user's sendmail; SO_PEERCRED says who
//   fd 5  public/pickup    a wake-up after postdrop wrote maildrop/
#include "enqueue_server.hh"

#include "mm/daemon.hh"
#include "mm/log.hh"

#include <cstdio>

int main(int argc, char** argv)
{
    using namespace mm;
    auto started = daemon::start(argc, argv, "enqueue");
    if (!started) {
        std::fprintf(stderr, "enqueue: %s\n", started.error().message().c_str());
        return started.error().exit_code();
    }
    daemon::common_signals();
    auto internal = daemon::inherited_listener(0);
    auto submit = daemon::inherited_listener(1);
    auto pickup = daemon::inherited_listener(2);
    auto queue_uid = daemon::peer_uid(*started, daemon::queue_user);
    auto smtp_uid = daemon::peer_uid(*started, daemon::smtp_user);
    Result<void> confined = daemon::become(*started, daemon::queue_user, {});
    for (const Error* e : {internal ? nullptr : &internal.error(), submit ? nullptr : &submit.error(),
             pickup ? nullptr : &pickup.error(), queue_uid ? nullptr : &queue_uid.error(),
             smtp_uid ? nullptr : &smtp_uid.error(),
             confined ? nullptr : &confined.error()}) {
        if (e != nullptr) {
            log::error("enqueue cannot start: %s", e->message().c_str());
            return e->exit_code();
        }
    }
    enqueue::Sockets sockets{std::move(*internal), std::move(*submit), std::move(*pickup)};
    return enqueue::serve(*started, std::move(sockets), *queue_uid, *smtp_uid);
}
