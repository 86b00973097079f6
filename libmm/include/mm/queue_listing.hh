// SPDX-License-Identifier: GPL-2.0-or-later
// What mailq shows, read from the spool: by the front end when its caller
// can read the spool (root, the owner of a private instance), and by qmgr
// for everyone else (queue_list frames, mm/protocol.hh). The spool files are
// read through the hostile-safe spool reader. Linked by qmgr and the front end.
#pragma once

#include "mm/config.hh"
#include "mm/protocol.hh"
#include "mm/result.hh"
#include "mm/spool.hh"

#include <sys/types.h>
#include <vector>

namespace mm {

// Who may see a message: a privileged caller (root, mail, the instance's
// owner) every message; anyone else only the mail they submitted locally.
struct ListingViewer {
    bool privileged = false;
    uid_t uid = 0;
};
bool may_list(const ListingViewer& viewer, const Envelope& envelope);

// The messages of new/ and queue/ the viewer may see, by id (arrival).
// Messages gone meanwhile (delivered) or damaged (moved to corrupt/ by the
// reader, which logs it) are left out. A remote recipient never attempted
// (qmgr records nothing for it) is listed with the reason it waits.
Result<std::vector<protocol::ListedMessage>> read_queue_listing(
    const Spool& spool, const ListingViewer& viewer, const config::MainConfig& config);

} // namespace mm
