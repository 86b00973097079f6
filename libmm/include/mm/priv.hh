// SPDX-License-Identifier: GPL-2.0-or-later
// Changing identity: a daemon started as root becomes its own user keeping
// only the capabilities it lists (DESIGN rule 2), and local-deliver's child
// becomes the recipient holding no capability at all, with no_new_privs.
// Every switch is verified afterwards. Linked by the daemons.
#pragma once

#include "mm/result.hh"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace mm::priv {

struct Identity {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups; // supplementary groups, the primary one included
    std::string home;
};

// From the password and group databases. A missing user is a permanent error.
Result<Identity> lookup_user(std::string_view name);
Result<Identity> lookup_uid(uid_t uid);
// The group database's gid for `name`; a missing group is a permanent error.
Result<gid_t> lookup_group(std::string_view name);

enum class Capability { setuid, setgid, net_bind_service };

// A daemon's switch, run before it reads any input. As root: drop every
// capability not in `keep` from the bounding set, switch groups, gid and uid
// to `user`, keep `keep` in the permitted set only (raised when used), clear
// the ambient set, and set no_new_privs when nothing is kept. As an ordinary
// user that already is `user` (a private instance): only the clearing steps.
Result<void> become_daemon_user(const Identity& user, std::initializer_list<Capability> keep);

// local-deliver's delivery child: switch to the recipient using CAP_SETUID
// and CAP_SETGID (or root), then clear every capability set, set
// no_new_privs and verify that the way back is closed. uid 0 is refused:
// mail is never delivered as root.
Result<void> become_recipient(const Identity& recipient);

// What the kernel says about this process (/proc/self/status), for checks
// after a switch and for tests.
struct ProcessState {
    uid_t ruid = 0, euid = 0, suid = 0;
    gid_t rgid = 0, egid = 0, sgid = 0;
    std::uint64_t cap_inheritable = 0, cap_permitted = 0, cap_effective = 0;
    std::uint64_t cap_bounding = 0, cap_ambient = 0;
    bool no_new_privs = false;
};
Result<ProcessState> current_state();

} // namespace mm::priv
