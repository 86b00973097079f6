// SPDX-License-Identifier: GPL-2.0-or-later
// The enqueue daemon's loop: submissions from sendmail and qmgr, the
// maildrop pickup, and the NEW notification to qmgr after each commit.
// Content and envelope are untrusted; who submits comes from SO_PEERCRED or,
// for maildrop files, from the file's owner.
#pragma once

#include "mm/daemon.hh"
#include "mm/fd.hh"

namespace mm::enqueue {

struct Sockets {
    Fd internal; // private/enqueue
    Fd submit;   // public/submit
    Fd pickup;   // public/pickup
};

// Runs until SIGTERM; returns the exit status.
// queue_uid (qmgr) and smtp_uid (smtp-listener) may use private/enqueue.
int serve(const daemon::Started& started, Sockets sockets, uid_t queue_uid, uid_t smtp_uid);

} // namespace mm::enqueue
