// SPDX-License-Identifier: GPL-2.0-or-later
#include "catch.hh"
#include "mm/paths.hh"
#include "mm_build_config.h"

TEST_CASE("a build-tree binary finds the build tree's daemons")
{
    std::string exe = std::string(MM_BUILD_ROOT) + "/wrappers/masqmail/masqmail";
    CHECK(mm::paths::daemon_path_for(exe, "qmgr") == std::string(MM_BUILD_ROOT) + "/daemons/qmgr/qmgr");
}

TEST_CASE("an installed binary finds libexec relative to itself")
{
    std::string p = mm::paths::daemon_path_for("/scratch/root/usr/sbin/masqmail", "qmgr");
    CHECK(p == std::string("/scratch/root/usr/sbin/") + MM_LIBEXEC_FROM_SBIN + "/qmgr");
}

TEST_CASE("an installed daemon finds the other daemons beside itself")
{
    // The supervisor lives in libexec/masqmail, not in sbin.
    CHECK(mm::paths::sibling_daemon_path_for("/scratch/root/usr/libexec/masqmail/supervisor", "qmgr")
        == "/scratch/root/usr/libexec/masqmail/qmgr");
    std::string exe = std::string(MM_BUILD_ROOT) + "/daemons/supervisor/supervisor";
    CHECK(mm::paths::sibling_daemon_path_for(exe, "qmgr") == std::string(MM_BUILD_ROOT) + "/daemons/qmgr/qmgr");
}

TEST_CASE("this test program runs from the build tree")
{
    CHECK(mm::paths::daemon_dir() == std::string(MM_BUILD_ROOT) + "/daemons");
    CHECK(mm::paths::default_config().ends_with("/masqmail/masqmail.conf"));
}
