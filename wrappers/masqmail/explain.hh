// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail --explain ADDRESS [-f SENDER]: what would happen to mail for
// ADDRESS now, for debugging aliases and routes. Nothing is sent or queued.
// Runs as the invoking user; the address is untrusted.
#pragma once

#include "context.hh"

namespace mm::frontend {

int explain_address(const Context& ctx);

} // namespace mm::frontend
