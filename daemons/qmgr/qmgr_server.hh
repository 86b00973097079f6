// SPDX-License-Identifier: GPL-2.0-or-later
// The queue manager's loop (see main.cc). Spool files are re-validated on
// every read; control requests come from any local user and are authorised
// by the peer's uid.
#pragma once

#include "mm/daemon.hh"
#include "mm/fd.hh"

namespace mm::qmgr {

// Runs until SIGTERM, or with --once until one full queue run is done.
int serve(const daemon::Started& started, Fd notices, Fd control, uid_t queue_uid);

} // namespace mm::qmgr
