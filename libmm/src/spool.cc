// SPDX-License-Identifier: GPL-2.0-or-later
// Spool directories, qmgr's bookkeeping (claim, state files, removal, hold),
// quarantine and the queue listing. Names from listings are hostile and pass
// QueueId::parse before any use. Linked by enqueue and qmgr.
#include "mm/spool.hh"

#include "mm/fs.hh"
#include "mm/limits.hh"
#include "mm/log.hh"

#include <algorithm>
#include <array>
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unordered_set>

namespace mm {

namespace {

struct AreaSpec {
    const char* name;
    mode_t mode;
};

// anchors §5b; maildrop is group-writable for postdrop and sticky.
constexpr std::array<AreaSpec, spool_area_count> area_specs = { {
    { "tmp", 0700 },
    { "new", 0700 },
    { "queue", 0700 },
    { "hold", 0700 },
    { "corrupt", 0700 },
    { "maildrop", 01730 },
} };
// doc/architecture.md "Sockets": the sockets' own modes are the fence.
constexpr std::array<AreaSpec, 2> socket_dirs = { { { "private", 0711 }, { "public", 0755 } } };
constexpr mode_t spool_dir_mode = 0755;
constexpr std::string_view state_suffix = ".st";

// Creates `name` with exactly `mode` (umask and mkdir's dropped bits aside)
// when it does not exist; an existing directory is left as the admin made it.
Result<void> ensure_dir(const Dir& parent, const char* name, mode_t mode)
{
    struct stat st { };
    if (::fstatat(parent.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return ok();
    if (errno != ENOENT)
        return Error::from_errno("stat " + parent.describe(name), errno);
    if (auto r = make_dir_at(parent, name, mode); !r)
        return r;
    auto dir = open_dir_at(parent, name);
    if (!dir)
        return std::move(dir).error();
    if (::fchmod(dir->get(), mode) != 0)
        return Error::from_errno("chmod " + parent.describe(name), errno);
    return ok();
}

// ensure_dir() for a system install: the directory also gets `uid`:`gid`
// and exactly `mode` when it exists with others (a symlink is refused).
Result<void> ensure_owned_dir(const Dir& parent, const char* name, mode_t mode, uid_t uid, gid_t gid)
{
    if (auto r = ensure_dir(parent, name, mode); !r)
        return r;
    auto dir = open_dir_at(parent, name);
    if (!dir)
        return std::move(dir).error();
    struct stat st { };
    if (::fstat(dir->get(), &st) != 0)
        return Error::from_errno("stat " + parent.describe(name), errno);
    if (st.st_uid == uid && st.st_gid == gid && (st.st_mode & 07777) == mode)
        return ok();
    log::warning("spool: %s had owner %u:%u mode %04o; now %u:%u mode %04o", parent.describe(name).c_str(),
        static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_gid), static_cast<unsigned>(st.st_mode & 07777),
        static_cast<unsigned>(uid), static_cast<unsigned>(gid), static_cast<unsigned>(mode));
    // chown first: it clears the set-id bits that fchmod then sets.
    if (::fchown(dir->get(), uid, gid) != 0)
        return Error::from_errno("chown " + parent.describe(name), errno);
    if (::fchmod(dir->get(), mode) != 0)
        return Error::from_errno("chmod " + parent.describe(name), errno);
    return ok();
}

Result<Dir> open_spool_root(const std::string& path, bool create_missing)
{
    auto root = open_dir(path);
    if (root || !create_missing || root.error().sys_errno() != ENOENT)
        return root;
    if (::mkdir(path.c_str(), spool_dir_mode) != 0 && errno != EEXIST)
        return Error::from_errno("mkdir " + path, errno);
    auto made = open_dir(path);
    // Under a umask such as systemd's UMask=0077 mkdir leaves out the bits
    // that let the daemons' users enter it.
    if (made && ::fchmod(made->get(), spool_dir_mode) != 0)
        return Error::from_errno("chmod " + path, errno);
    return made;
}

bool is_regular_file_at(const Dir& dir, const std::string& name, std::uint64_t* size)
{
    struct stat st { };
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return false;
    *size = static_cast<std::uint64_t>(st.st_size);
    return true;
}

// Moves `name` into corrupt/ under a free name; a missing file is fine.
Result<void> move_to_corrupt(const Dir& from, const std::string& name, const Dir& corrupt)
{
    for (int n = 0; n < 10; ++n) {
        std::string target = n == 0 ? name : name + "." + std::to_string(n);
        auto r = rename_noreplace_at(from, name, corrupt, target);
        if (r || r.error().sys_errno() == ENOENT)
            return ok();
        if (r.error().sys_errno() != EEXIST)
            return r;
    }
    return Error::temporary(corrupt.describe(name) + " and its numbered variants exist");
}

} // namespace

struct Spool::Areas {
    Dir root;
    std::array<Dir, spool_area_count> dirs;
};

Spool::Spool(std::unique_ptr<Areas> areas)
    : areas_(std::move(areas))
{
}
Spool::Spool(Spool&&) noexcept = default;
Spool& Spool::operator=(Spool&&) noexcept = default;
Spool::~Spool() = default;

const char* spool_area_name(SpoolArea area)
{
    auto i = static_cast<std::size_t>(area);
    return i < area_specs.size() ? area_specs[i].name : "?";
}

std::string state_file_name(const QueueId& id)
{
    return id.str() + std::string(state_suffix);
}

Result<Spool> Spool::open(const std::string& spool_dir, bool create_missing)
{
    auto root = open_spool_root(spool_dir, create_missing);
    if (!root)
        return std::move(root).error();
    auto areas = std::make_unique<Areas>();
    areas->root = std::move(root).value();
    if (create_missing)
        for (const auto& spec : socket_dirs)
            if (auto r = ensure_dir(areas->root, spec.name, spec.mode); !r)
                return std::move(r).error();
    for (std::size_t i = 0; i < area_specs.size(); ++i) {
        if (create_missing)
            if (auto r = ensure_dir(areas->root, area_specs[i].name, area_specs[i].mode); !r)
                return std::move(r).error();
        auto dir = open_dir_at(areas->root, area_specs[i].name);
        if (!dir)
            return std::move(dir).error();
        areas->dirs[i] = std::move(dir).value();
    }
    return Spool(std::move(areas));
}

Result<void> Spool::prepare_system(const std::string& spool_dir, const Owners& owners)
{
    auto root = open_spool_root(spool_dir, true);
    if (!root)
        return std::move(root).error();
    // private/ is root's: no one may list or replace the sockets in it.
    if (auto r = ensure_owned_dir(*root, "private", 0711, 0, 0); !r)
        return r;
    if (auto r = ensure_owned_dir(*root, "public", 0755, owners.queue_uid, owners.queue_gid); !r)
        return r;
    for (const AreaSpec& spec : area_specs) {
        bool drop = std::string_view(spec.name) == "maildrop";
        auto r = ensure_owned_dir(*root, spec.name, spec.mode, owners.queue_uid,
            drop ? owners.drop_gid : owners.queue_gid);
        if (!r)
            return r;
    }
    return ok();
}

const std::string& Spool::path() const
{
    return areas_->root.path();
}

const Dir& Spool::area(SpoolArea a) const
{
    return areas_->dirs[static_cast<std::size_t>(a)];
}

Result<void> Spool::claim_for_delivery(const QueueId& id) const
{
    const Dir& incoming = area(SpoolArea::incoming);
    const Dir& queue = area(SpoolArea::queue);
    auto moved = rename_noreplace_at(incoming, id.str(), queue, id.str());
    if (!moved && moved.error().sys_errno() == EEXIST) {
        // A crash during an earlier claim can leave both names on one file.
        struct stat a {
        }, b {};
        bool same = ::fstatat(incoming.get(), id.c_str(), &a, AT_SYMLINK_NOFOLLOW) == 0
            && ::fstatat(queue.get(), id.c_str(), &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev
            && a.st_ino == b.st_ino;
        if (same)
            moved = unlink_at(incoming, id.str());
        else
            return quarantine(id, SpoolArea::incoming, "a different file of that id is in queue/");
    }
    // Not fsynced: a claim lost in a crash leaves the message in new/ (with
    // its state file, if one was written, still in queue/), and the next
    // start claims it again. The first write_state() fsyncs queue/ anyway.
    return moved;
}

Result<DeliveryState> Spool::read_state(const QueueId& id, std::size_t recipient_count) const
{
    auto data = read_file_at(area(SpoolArea::queue), state_file_name(id), limits::state_file);
    if (!data && data.error().sys_errno() == ENOENT)
        return DeliveryState::all_pending(recipient_count);
    // A symlink (ELOOP) is foreign junk, not trouble that goes away.
    if (!data && data.error().kind() != ErrorKind::permanent && data.error().sys_errno() != ELOOP)
        return std::move(data).error();
    std::string problem;
    if (!data) {
        problem = data.error().message();
    } else if (auto parsed = state_file::parse(*data); !parsed) {
        problem = "state file: " + parsed.error().message();
    } else if (parsed->id != id) {
        problem = "state file is for message " + parsed->id.str();
    } else if (parsed->state.recipients.size() != recipient_count) {
        problem = "state file has " + std::to_string(parsed->state.recipients.size())
            + " recipients, message " + std::to_string(recipient_count);
    } else {
        return std::move(parsed->state);
    }
    if (auto q = quarantine(id, SpoolArea::queue, problem); !q)
        return std::move(q).error();
    return Error::permanent(id.str() + ": corrupt, moved to corrupt/: " + problem);
}

Result<void> Spool::write_state(const QueueId& id, const DeliveryState& state) const
{
    auto data = state_file::encode(id, state);
    if (!data)
        return std::move(data).error();
    return replace_file_at(area(SpoolArea::queue), state_file_name(id), *data, 0600);
}

Result<void> Spool::remove_message(const QueueId& id) const
{
    const Dir& queue = area(SpoolArea::queue);
    if (auto r = unlink_at(queue, id.str(), true); !r)
        return r;
    // Not fsynced. Every recipient is final, so a removal lost in a crash
    // brings the message back: on a file system that keeps the order of
    // metadata changes (ext4, xfs) with its state file, and then nothing is
    // sent again; elsewhere perhaps without it, and then it is delivered a
    // second time. Duplicates after a crash are allowed (DESIGN rule 1),
    // and an fsync here would cost one disk flush per message.
    return unlink_at(queue, state_file_name(id), true);
}

Result<void> Spool::move_message(const QueueId& id, SpoolArea from, SpoolArea to) const
{
    const Dir& a = area(from);
    const Dir& b = area(to);
    if (auto r = rename_noreplace_at(a, state_file_name(id), b, state_file_name(id));
        !r && r.error().sys_errno() != ENOENT)
        return r;
    if (auto r = rename_noreplace_at(a, id.str(), b, id.str()); !r)
        return r;
    if (auto r = fsync_dir(b); !r)
        return r;
    return fsync_dir(a);
}

Result<void> Spool::hold_message(const QueueId& id) const
{
    return move_message(id, SpoolArea::queue, SpoolArea::hold);
}

Result<void> Spool::release_message(const QueueId& id) const
{
    return move_message(id, SpoolArea::hold, SpoolArea::queue);
}

Result<void> Spool::quarantine(const QueueId& id, SpoolArea from, std::string_view reason) const
{
    const Dir& source = area(from);
    const Dir& corrupt = area(SpoolArea::corrupt);
    log::warning("%s: moving %s/%s to corrupt/: %.*s", id.c_str(), spool_area_name(from), id.c_str(),
        static_cast<int>(std::min<std::size_t>(reason.size(), 1024)), reason.data());
    if (auto r = move_to_corrupt(source, id.str(), corrupt); !r)
        return r;
    if (from == SpoolArea::queue || from == SpoolArea::hold)
        if (auto r = move_to_corrupt(source, state_file_name(id), corrupt); !r)
            return r;
    if (auto r = fsync_dir(corrupt); !r)
        return r;
    return fsync_dir(source);
}

Result<QueueListing> Spool::list_queue() const
{
    QueueListing listing;
    std::unordered_set<QueueId> states;
    for (SpoolArea where : { SpoolArea::incoming, SpoolArea::queue }) {
        const Dir& dir = area(where);
        auto names = list_dir(dir, limits::queue_entries_scanned);
        if (!names)
            return std::move(names).error();
        for (const std::string& name : *names) {
            std::uint64_t size = 0;
            if (auto id = QueueId::parse(name); id && is_regular_file_at(dir, name, &size)) {
                listing.messages.push_back({ std::move(id).value(), where, false, size });
                continue;
            }
            std::string_view stem(name);
            if (where == SpoolArea::queue && stem.ends_with(state_suffix)) {
                stem.remove_suffix(state_suffix.size());
                if (auto id = QueueId::parse(stem); id && is_regular_file_at(dir, name, &size)) {
                    states.insert(std::move(id).value());
                    continue;
                }
            }
            ++listing.skipped_names;
        }
    }
    // A message in new/ with a state in queue/ is one whose claim was lost in a crash.
    for (auto& entry : listing.messages) {
        if (states.erase(entry.id) > 0)
            entry.has_state = true;
    }
    listing.orphan_states.assign(states.begin(), states.end());
    std::sort(listing.orphan_states.begin(), listing.orphan_states.end());
    std::sort(listing.messages.begin(), listing.messages.end(),
        [](const QueueEntry& a, const QueueEntry& b) { return a.id < b.id; });
    return listing;
}

} // namespace mm
