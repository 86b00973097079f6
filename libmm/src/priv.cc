// SPDX-License-Identifier: GPL-2.0-or-later
// Identity switches with libcap and verification from /proc/self/status.
// Linked by the daemons; trusts only the password database and the kernel.
#include "mm/priv.hh"

#include "mm/cursor.hh"
#include "mm/fs.hh"

#include <cerrno>
#include <grp.h>
#include <linux/capability.h>
#include <memory>
#include <pwd.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace mm::priv {

namespace {

struct CapFree {
    void operator()(cap_t c) const { cap_free(c); }
};
using CapPtr = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

cap_value_t cap_value(Capability c)
{
    switch (c) {
    case Capability::setuid: return CAP_SETUID;
    case Capability::setgid: return CAP_SETGID;
    case Capability::net_bind_service: return CAP_NET_BIND_SERVICE;
    }
    return CAP_SETUID;
}

Result<Identity> identity_from(const struct passwd& pw)
{
    Identity id{pw.pw_name, pw.pw_uid, pw.pw_gid, {}, pw.pw_dir != nullptr ? pw.pw_dir : ""};
    int n = 32;
    for (int attempt = 0; attempt < 4; ++attempt) {
        id.groups.resize(static_cast<std::size_t>(n));
        int got = n;
        if (::getgrouplist(pw.pw_name, pw.pw_gid, id.groups.data(), &got) >= 0) {
            id.groups.resize(static_cast<std::size_t>(got));
            return id;
        }
        n = got > n ? got : n * 4;
    }
    return Error::temporary(std::string("too many groups for user ") + pw.pw_name);
}

template <class Lookup>
Result<Identity> lookup(Lookup call, const std::string& what)
{
    struct passwd pw{};
    struct passwd* found = nullptr;
    std::vector<char> buf(16384);
    int err = call(&pw, buf.data(), buf.size(), &found);
    if (err != 0)
        return Error::from_errno("look up user " + what, err);
    if (found == nullptr)
        return Error::permanent("no such user: " + what);
    return identity_from(pw);
}

Result<void> set_capabilities(std::initializer_list<Capability> permitted)
{
    CapPtr caps(cap_init());
    if (!caps)
        return Error::from_errno("cap_init", errno);
    std::vector<cap_value_t> values;
    for (Capability c : permitted)
        values.push_back(cap_value(c));
    if (!values.empty() &&
        cap_set_flag(caps.get(), CAP_PERMITTED, static_cast<int>(values.size()), values.data(), CAP_SET) != 0)
        return Error::from_errno("cap_set_flag", errno);
    if (cap_set_proc(caps.get()) != 0)
        return Error::from_errno("cap_set_proc", errno);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return Error::from_errno("clear ambient capabilities", errno);
    return ok();
}

Result<void> drop_bounding_set_except(std::initializer_list<Capability> keep)
{
    for (cap_value_t c = 0; c <= CAP_LAST_CAP; ++c) {
        bool kept = false;
        for (Capability k : keep)
            kept = kept || cap_value(k) == c;
        if (!kept && cap_drop_bound(c) != 0 && errno != EINVAL)
            return Error::from_errno("drop capability from the bounding set", errno);
    }
    return ok();
}

Result<void> switch_ids(const Identity& user)
{
    if (::setgroups(user.groups.size(), user.groups.data()) != 0)
        return Error::from_errno("setgroups", errno);
    if (::setresgid(user.gid, user.gid, user.gid) != 0)
        return Error::from_errno("setresgid", errno);
    if (::setresuid(user.uid, user.uid, user.uid) != 0)
        return Error::from_errno("setresuid", errno);
    return ok();
}

Result<void> set_no_new_privs()
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return Error::from_errno("PR_SET_NO_NEW_PRIVS", errno);
    return ok();
}

Result<void> raise_effective(std::initializer_list<cap_value_t> values)
{
    CapPtr caps(cap_get_proc());
    if (!caps)
        return Error::from_errno("cap_get_proc", errno);
    std::vector<cap_value_t> v(values);
    if (cap_set_flag(caps.get(), CAP_EFFECTIVE, static_cast<int>(v.size()), v.data(), CAP_SET) != 0 ||
        cap_set_proc(caps.get()) != 0)
        return Error::from_errno("raise CAP_SETUID/CAP_SETGID", errno);
    return ok();
}

// The switch must have taken: every id is the target's, and the permitted
// set holds nothing beyond `allowed`.
Result<void> verify(const Identity& user, std::uint64_t allowed_caps)
{
    auto st = current_state();
    if (!st)
        return std::move(st).error();
    bool ids = st->ruid == user.uid && st->euid == user.uid && st->suid == user.uid &&
               st->rgid == user.gid && st->egid == user.gid && st->sgid == user.gid;
    if (!ids)
        return Error::internal("identity switch to " + user.name + " did not take");
    if ((st->cap_permitted & ~allowed_caps) != 0 || st->cap_ambient != 0 || st->cap_inheritable != 0)
        return Error::internal("capabilities left after switching to " + user.name);
    if (user.uid != 0 && allowed_caps == 0 && ::setresuid(0, 0, 0) == 0)
        return Error::internal("could regain root after switching to " + user.name);
    return ok();
}

std::uint64_t mask_of(std::initializer_list<Capability> caps)
{
    std::uint64_t m = 0;
    for (Capability c : caps)
        m |= std::uint64_t{1} << cap_value(c);
    return m;
}

} // namespace

Result<Identity> lookup_user(std::string_view name)
{
    std::string n(name);
    return lookup([&](struct passwd* pw, char* buf, std::size_t len, struct passwd** out) {
        return ::getpwnam_r(n.c_str(), pw, buf, len, out);
    }, n);
}

Result<Identity> lookup_uid(uid_t uid)
{
    return lookup([&](struct passwd* pw, char* buf, std::size_t len, struct passwd** out) {
        return ::getpwuid_r(uid, pw, buf, len, out);
    }, "uid " + std::to_string(uid));
}

Result<gid_t> lookup_group(std::string_view name)
{
    std::string n(name);
    struct group gr { };
    struct group* found = nullptr;
    std::vector<char> buf(16384); // as lookup(): the member list of a system group fits
    if (int err = ::getgrnam_r(n.c_str(), &gr, buf.data(), buf.size(), &found); err != 0)
        return Error::from_errno("look up group " + n, err);
    if (found == nullptr)
        return Error::permanent("no such group: " + n);
    return gr.gr_gid;
}

Result<void> become_daemon_user(const Identity& user, std::initializer_list<Capability> keep)
{
    if (::geteuid() == 0) {
        if (auto r = drop_bounding_set_except(keep); !r)
            return r;
        if (keep.size() != 0 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
            return Error::from_errno("PR_SET_KEEPCAPS", errno);
        if (auto r = switch_ids(user); !r)
            return r;
        (void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    } else if (::getuid() != user.uid) {
        return Error::permanent("must be root to run as " + user.name);
    }
    if (auto r = set_capabilities(keep); !r)
        return r;
    if (keep.size() == 0)
        if (auto r = set_no_new_privs(); !r)
            return r;
    return verify(user, mask_of(keep));
}

Result<void> become_recipient(const Identity& recipient)
{
    if (recipient.uid == 0)
        return Error::permanent("refusing to deliver as root");
    if (::geteuid() != 0)
        if (auto r = raise_effective({CAP_SETUID, CAP_SETGID}); !r)
            return r;
    if (auto r = switch_ids(recipient); !r)
        return r;
    if (auto r = set_capabilities({}); !r)
        return r;
    if (auto r = set_no_new_privs(); !r)
        return r;
    return verify(recipient, 0);
}

Result<ProcessState> current_state()
{
    auto dir = open_dir("/proc/self");
    if (!dir)
        return std::move(dir).error();
    auto text = read_file_at(*dir, "status", 64 * 1024);
    if (!text)
        return std::move(text).error();
    ProcessState st;
    auto hex = [](std::string_view v) {
        std::uint64_t x = 0;
        std::from_chars(v.data(), v.data() + v.size(), x, 16);
        return x;
    };
    auto ids = [](std::string_view v, auto& r, auto& e, auto& s) {
        Cursor c(v);
        auto next = [&c] {
            c.skip_while(is_ascii_space);
            return parse_decimal<unsigned>(c.take_while([](char x) { return is_ascii_digit(x); })).value_or(0);
        };
        r = next();
        e = next();
        s = next();
    };
    Cursor lines(*text);
    while (!lines.at_end()) {
        std::string_view line = lines.take_until('\n');
        lines.consume('\n');
        auto colon = line.find(':');
        if (colon == std::string_view::npos)
            continue;
        std::string_view key = line.substr(0, colon);
        std::string_view value = trim(line.substr(colon + 1));
        if (key == "Uid") ids(value, st.ruid, st.euid, st.suid);
        else if (key == "Gid") ids(value, st.rgid, st.egid, st.sgid);
        else if (key == "CapInh") st.cap_inheritable = hex(value);
        else if (key == "CapPrm") st.cap_permitted = hex(value);
        else if (key == "CapEff") st.cap_effective = hex(value);
        else if (key == "CapBnd") st.cap_bounding = hex(value);
        else if (key == "CapAmb") st.cap_ambient = hex(value);
        else if (key == "NoNewPrivs") st.no_new_privs = value == "1";
    }
    return st;
}

} // namespace mm::priv
