// SPDX-License-Identifier: GPL-2.0-or-later
// The supervisor's work (see main.cc).
#pragma once

#include "mm/daemon.hh"

namespace mm::supervisor {

// Returns the exit status: 0 after a clean stop (or a successful --once run).
int run(const daemon::Started& started);

} // namespace mm::supervisor
