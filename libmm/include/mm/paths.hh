// SPDX-License-Identifier: GPL-2.0-or-later
// Where the suite's own files are: the default configuration and the
// daemons' private libexec folder, found from the running executable so that
// neither an install prefix nor a build tree needs an environment variable.
#pragma once

#include <string>
#include <string_view>

namespace mm::paths {

// /etc/masqmail/masqmail.conf under the configured prefix.
std::string default_config();
// The folder holding the daemons: the build tree's daemons/ when the running
// binary is a build-tree binary, else PREFIX/libexec/masqmail relative to
// the executable's own folder (so a DESTDIR or scratch-root install works).
std::string daemon_dir();
// The executable of daemon `name` ("qmgr", "smtp-listener", ...).
std::string daemon_path(std::string_view name);
// Resolves the daemon path for an executable at `exe` (for tests).
std::string daemon_path_for(const std::string& exe, std::string_view name);
// For a program that itself lives in the daemons' folder (the supervisor):
// the executable of daemon `name` beside it.
std::string sibling_daemon_path(std::string_view name);
std::string sibling_daemon_path_for(const std::string& exe, std::string_view name);

} // namespace mm::paths
