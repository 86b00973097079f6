// SPDX-License-Identifier: GPL-2.0-or-later
// Locating the daemons. Linked by the front end and the supervisor; trusts
// only /proc/self/exe and paths compiled in at build time.
#include "mm/paths.hh"

#include "mm_build_config.h"

#include <climits>
#include <unistd.h>

namespace mm::paths {

namespace {

std::string self_exe()
{
    char buf[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return {};
    return std::string(buf, static_cast<std::size_t>(n));
}

std::string dirname_of(const std::string& path)
{
    auto slash = path.rfind('/');
    if (slash == std::string::npos)
        return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

bool under_build_root(const std::string& exe)
{
    std::string root = MM_BUILD_ROOT;
    if (!root.empty() && root.back() != '/')
        root += '/';
    return exe.compare(0, root.size(), root) == 0;
}

} // namespace

std::string default_config() { return std::string(MM_SYSCONFDIR) + "/masqmail.conf"; }

std::string daemon_path_for(const std::string& exe, std::string_view name)
{
    // Build tree: daemons/NAME/NAME (postdrop: wrappers/postdrop/postdrop), as meson lays them out.
    if (under_build_root(exe))
        return std::string(MM_BUILD_ROOT) + (name == "postdrop" ? "/wrappers/" : "/daemons/") + std::string(name) +
               "/" + std::string(name);
    return dirname_of(exe) + "/" + MM_LIBEXEC_FROM_SBIN + "/" + std::string(name);
}

std::string sibling_daemon_path_for(const std::string& exe, std::string_view name)
{
    if (under_build_root(exe))
        return daemon_path_for(exe, name);
    return dirname_of(exe) + "/" + std::string(name);
}

std::string sibling_daemon_path(std::string_view name) { return sibling_daemon_path_for(self_exe(), name); }

std::string daemon_dir()
{
    std::string exe = self_exe();
    if (under_build_root(exe))
        return std::string(MM_BUILD_ROOT) + "/daemons";
    return dirname_of(exe) + "/" + MM_LIBEXEC_FROM_SBIN;
}

std::string daemon_path(std::string_view name) { return daemon_path_for(self_exe(), name); }

} // namespace mm::paths
