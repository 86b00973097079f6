// SPDX-License-Identifier: GPL-2.0-or-later
// The modes that start or talk to the daemons: -bd, -bD, -qINTERVAL (the
// supervisor), -q / runq (a queue run through qmgr, or a one-pass
// supervisor when no daemon runs), and mailrm while the daemons run.
#pragma once

#include "context.hh"

#include <optional>

namespace mm::frontend {

// -bd, -bD, -qINTERVAL: execs the supervisor (privileged callers only).
int start_daemons(const Context& ctx, bool foreground);

// -q, runq: one full queue run, then exit.
int run_queue(const Context& ctx);
// runq -qo NAME, masqmail -qo NAME: a remote-only run through the routes
// of connection NAME (query_routes.NAME), after the permanent routes.
int run_route(const Context& ctx);

// mailrm through qmgr; nothing when no daemon runs (the caller edits the spool).
std::optional<int> remove_via_daemon(const Context& ctx);

} // namespace mm::frontend
