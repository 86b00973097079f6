// SPDX-License-Identifier: GPL-2.0-or-later
// mailq (-bp, --json), mailrm (-Mrm) and newaliases (-bi), reading the spool
// directly: for root and for the owner of a private instance.
#pragma once

#include "context.hh"

namespace mm::frontend {

int list_queue(const Context& ctx, bool json);
int remove_messages(const Context& ctx);
int check_aliases(const Context& ctx);

} // namespace mm::frontend
