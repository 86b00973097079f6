// SPDX-License-Identifier: GPL-2.0-or-later
// Starting a configured command (mm/spawn.hh).
#include "mm/spawn.hh"

#include <csignal>
#include <spawn.h>

namespace mm {

int spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env, int in_fd, int out_fd,
    int err_fd, pid_t& pid)
{
    std::vector<char*> args;
    for (const std::string& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (const std::string& e : env)
        envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawnattr_init(&attr);
    ::posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    ::posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    ::posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    ::posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setsigdefault(&attr, &all);
    ::posix_spawnattr_setpgroup(&attr, 0);
    ::posix_spawnattr_setflags(&attr,
        static_cast<short>(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP));
    int err = ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), envp.data());
    ::posix_spawn_file_actions_destroy(&fa);
    ::posix_spawnattr_destroy(&attr);
    return err;
}

} // namespace mm
