// SPDX-License-Identifier: GPL-2.0-or-later
// Accept mode (sendmail, -bm, rmail): one message from stdin into the queue.
#pragma once

#include "context.hh"

namespace mm::frontend {

// Returns the exit status: 0 only once the message is committed durably.
int submit_from_stdin(const Context& ctx);

} // namespace mm::frontend
