// SPDX-License-Identifier: GPL-2.0-or-later
// Identity switches, each in a forked child so the test process keeps its
// own identity. The switches need root: CI runs as root; elsewhere these
// cases only check that an ordinary user is refused.
#include "catch.hh"
#include "mm/priv.hh"

#include <functional>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

using mm::priv::Capability;
using mm::priv::Identity;

namespace {

// Runs `body` in a child; the child's exit status is 0 when body returned true.
bool in_child(const std::function<bool()>& body)
{
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        ::_exit(body() ? 0 : 1);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

Identity test_user(uid_t uid) { return Identity{"mmtest" + std::to_string(uid), uid, uid, {uid}, "/"}; }

constexpr std::uint64_t setid_caps = (std::uint64_t{1} << 6) | (std::uint64_t{1} << 7); // SETGID, SETUID

} // namespace

TEST_CASE("lookup_user finds root and refuses an unknown name")
{
    auto root = mm::priv::lookup_user("root");
    REQUIRE(root);
    CHECK(root->uid == 0);
    CHECK_FALSE(root->groups.empty());
    auto none = mm::priv::lookup_user("no-such-user-mm");
    REQUIRE_FALSE(none);
    CHECK(none.error().kind() == mm::ErrorKind::permanent);
    auto by_uid = mm::priv::lookup_uid(0);
    REQUIRE(by_uid);
    CHECK(by_uid->name == "root");
}

TEST_CASE("current_state reads this process's ids")
{
    auto st = mm::priv::current_state();
    REQUIRE(st);
    CHECK(st->ruid == ::getuid());
    CHECK(st->euid == ::geteuid());
    CHECK(st->rgid == ::getgid());
}

TEST_CASE("mail is never delivered as root")
{
    CHECK(in_child([] {
        auto r = mm::priv::become_recipient(test_user(0));
        return !r && r.error().kind() == mm::ErrorKind::permanent;
    }));
}

TEST_CASE("an ordinary user cannot become another user")
{
    if (::geteuid() == 0) {
        // As root, check it from a child that first became an ordinary user.
        CHECK(in_child([] {
            if (!mm::priv::become_daemon_user(test_user(54321), {}))
                return false;
            return !mm::priv::become_daemon_user(test_user(54322), {}) &&
                   !mm::priv::become_recipient(test_user(54322));
        }));
    } else {
        CHECK(in_child([] { return !mm::priv::become_daemon_user(test_user(::getuid() + 1), {}); }));
    }
}

TEST_CASE("a daemon without capabilities has none left and cannot get root back")
{
    if (::geteuid() != 0) {
        WARN("not root: switching to another user is not exercised");
        CHECK(in_child([] { return bool(mm::priv::become_daemon_user(test_user(::getuid()), {})); }));
        return;
    }
    CHECK(in_child([] {
        if (!mm::priv::become_daemon_user(test_user(54321), {}))
            return false;
        auto st = mm::priv::current_state();
        return st && st->euid == 54321 && st->suid == 54321 && st->egid == 54321 &&
               st->cap_permitted == 0 && st->cap_effective == 0 && st->cap_bounding == 0 &&
               st->no_new_privs && ::setresuid(0, 0, 0) != 0 && ::setgroups(0, nullptr) != 0;
    }));
}

TEST_CASE("local-deliver keeps only CAP_SETUID and CAP_SETGID, and its child keeps nothing")
{
    if (::geteuid() != 0) {
        WARN("not root: the local-deliver switch is not exercised");
        return;
    }
    CHECK(in_child([] {
        if (!mm::priv::become_daemon_user(test_user(54321), {Capability::setuid, Capability::setgid}))
            return false;
        auto daemon = mm::priv::current_state();
        if (!daemon || daemon->cap_permitted != setid_caps || daemon->cap_effective != 0 ||
            daemon->cap_bounding != setid_caps || daemon->euid != 54321)
            return false;
        if (!mm::priv::become_recipient(test_user(54999)))
            return false;
        auto child = mm::priv::current_state();
        return child && child->ruid == 54999 && child->euid == 54999 && child->suid == 54999 &&
               child->rgid == 54999 && child->cap_permitted == 0 && child->cap_effective == 0 &&
               child->no_new_privs && ::setresuid(54321, 54321, 54321) != 0;
    }));
}

TEST_CASE("root switching straight to a recipient keeps no capability")
{
    if (::geteuid() != 0) {
        WARN("not root: not exercised");
        return;
    }
    CHECK(in_child([] {
        if (!mm::priv::become_recipient(test_user(54998)))
            return false;
        auto st = mm::priv::current_state();
        return st && st->euid == 54998 && st->cap_permitted == 0 && st->no_new_privs &&
               ::setresuid(0, 0, 0) != 0;
    }));
}
