// SPDX-License-Identifier: GPL-2.0-or-later
// qmgr: owns the queue after commit. Claims new messages, has local-deliver
// deliver local recipients, records each recipient's state durably, retries
// with backoff, sends delay warnings and bounces, and removes a message only
// when every recipient is final. Runs as the queue user (masqmail) with no
// capability; in a private instance as its user.
// Sockets, passed by the supervisor:
//   fd 3  private/qmgr     enqueue's "new message" notices
//   fd 4  public/qmgr-ctl  runq and mailrm from every user, authorised per request
// Clients of: private/local (local-deliver), private/enqueue (bounces).
#include "qmgr_server.hh"

#include "mm/daemon.hh"
#include "mm/log.hh"

#include <cstdio>

int main(int argc, char** argv)
{
    using namespace mm;
    auto started = daemon::start(argc, argv, "qmgr");
    if (!started) {
        std::fprintf(stderr, "qmgr: %s\n", started.error().message().c_str());
        return started.error().exit_code();
    }
    daemon::common_signals();
    auto notices = daemon::inherited_listener(0);
    auto control = daemon::inherited_listener(1);
    auto queue_uid = daemon::peer_uid(*started, daemon::queue_user);
    Result<void> confined = daemon::become(*started, daemon::queue_user, {});
    for (const Error* e : {notices ? nullptr : &notices.error(), control ? nullptr : &control.error(),
             queue_uid ? nullptr : &queue_uid.error(), confined ? nullptr : &confined.error()}) {
        if (e != nullptr) {
            log::error("qmgr cannot start: %s", e->message().c_str());
            return e->exit_code();
        }
    }
    return qmgr::serve(*started, std::move(*notices), std::move(*control), *queue_uid);
}
