// SPDX-License-Identifier: GPL-2.0-or-later
// Starting a configured command without a shell (DESIGN rule 4): argv as
// split from administrator-owned configuration, an explicit environment.
// Linked by local-deliver (MDA and pipes), route-selector (online_query) and
// remote-deliver (wrapper, auth_secret_command).
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace mm {

// posix_spawn of argv[0] (an absolute path) with stdin, stdout and stderr
// dup'ed from the three descriptors, every other descriptor closed, every
// signal at its default and none blocked, in a process group of its own
// (so a timeout can kill the group). Returns 0 and sets `pid`, or the
// posix_spawn error number.
int spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env, int in_fd, int out_fd,
    int err_fd, pid_t& pid);

} // namespace mm
