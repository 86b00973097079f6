// SPDX-License-Identifier: GPL-2.0-or-later
// mailq (-bp, --json), mailrm (-Mrm) and newaliases (-bi). mailq reads the
// spool directly for root and the owner of a private instance, and asks
// qmgr (public/qmgr-ctl) for everyone else, who sees only their own mail.
#pragma once

#include "context.hh"

namespace mm::frontend {

int list_queue(const Context& ctx, bool json);
int remove_messages(const Context& ctx);
int check_aliases(const Context& ctx);

} // namespace mm::frontend
