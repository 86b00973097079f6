// SPDX-License-Identifier: GPL-2.0-or-later
// mbox append under dot-lock and fcntl lock. Runs as the recipient; anything
// in the mailbox directory may be a trap (symlinks, hard links, FIFOs, files
// of other users, stale or planted lock files), so every check is made on the
// open descriptor. Linked by local-deliver.
#include "mbox.hh"

#include "mm/fs.hh"
#include "mm/limits.hh"
#include "mm/log.hh"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <fcntl.h>
#include <sys/stat.h>
#include <thread>
#include <vector>
#include <unistd.h>

namespace mm::local {

namespace {

using Clock = std::chrono::steady_clock;

// Sleeps between lock attempts: 2 ms at first, doubling up to lock_retry, so
// that a lock held for one short append costs little and a long one few wake-ups.
class RetryPause {
public:
    explicit RetryPause(std::chrono::milliseconds longest) : longest_(longest) {}
    void sleep()
    {
        std::this_thread::sleep_for(std::min(next_, longest_));
        next_ *= 2;
    }

private:
    std::chrono::milliseconds longest_;
    std::chrono::milliseconds next_ { 2 };
};

// What a dot-lock of ours says: "PID\n" from its creation, then
// "PID SIZE INODE\n" once the writer holds the fcntl lock and knows where
// its append begins. A writer that dies before it has fsynced and removed
// the lock has reported nothing, so whoever breaks that lock may cut the
// mailbox back to SIZE: what lies beyond is the dead writer's fragment.
struct LockRecord {
    pid_t pid = 0;
    std::optional<off_t> size;
    ino_t mailbox_inode = 0;
    // When the lock was broken (the coarse clock file times come from): a
    // mailbox written since then was written by someone alive.
    struct timespec broken {};
    // The mailbox as the break found it (size -1: not seen): the dead
    // writer's fragment may be cut only while it is unchanged since.
    off_t size_at_break = -1;
    struct timespec mtime_at_break {};
    struct timespec ctime_at_break {};
};

std::optional<LockRecord> parse_lock_record(std::string_view text)
{
    LockRecord r;
    unsigned long long pid = 0, size = 0, ino = 0;
    char tail = 0;
    std::string copy(text.substr(0, 80));
    int n = std::sscanf(copy.c_str(), "%llu %llu %llu%c", &pid, &size, &ino, &tail);
    if (n < 1 || pid < 2 || pid > 4194304)
        return std::nullopt;
    r.pid = static_cast<pid_t>(pid);
    if (n >= 3 && (n == 3 || tail == '\n')) {
        r.size = static_cast<off_t>(size);
        r.mailbox_inode = static_cast<ino_t>(ino);
    }
    return r;
}

// True only when `pid` certainly writes no more: it no longer exists, or it
// is a zombie not yet reaped (a dead writer whose parent was killed with it
// may stay one for a while). A live process of another user answers EPERM:
// alive, as is anything /proc does not show us.
bool process_gone(pid_t pid)
{
    if (::kill(pid, 0) != 0)
        return errno == ESRCH;
    std::string path = "/proc/" + std::to_string(pid) + "/stat";
    Fd stat_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!stat_fd.valid())
        return false;
    char text[512];
    ssize_t n = ::read(stat_fd.get(), text, sizeof text);
    if (n <= 0)
        return false;
    std::string_view line(text, static_cast<std::size_t>(n));
    std::size_t paren = line.rfind(')'); // the command name may hold anything
    if (paren == std::string_view::npos || paren + 2 >= line.size())
        return false;
    char state = line[paren + 2];
    if (state == 'Z' || state == 'X')
        return true;
    // Killed and on its way out (a big address space takes a while to tear
    // down): the kernel has set PF_EXITING (0x4) in the flags, field 9.
    std::string_view rest = line.substr(paren + 2);
    for (int field = 3; field < 9; ++field) {
        std::size_t space = rest.find(' ');
        if (space == std::string_view::npos)
            return false;
        rest.remove_prefix(space + 1);
    }
    unsigned long flags = std::strtoul(std::string(rest.substr(0, rest.find(' '))).c_str(), nullptr, 10);
    return (flags & 0x4) != 0;
}

// The dot-lock NAME.lock, removed when released or destroyed (only if it is
// still the file this writer made: a lock broken as stale and taken by
// another writer is not ours to remove).
class DotLock {
public:
    DotLock(const Dir& dir, std::string name) : dir_(dir), name_(std::move(name)) {}
    DotLock(const DotLock&) = delete;
    DotLock& operator=(const DotLock&) = delete;
    ~DotLock() { release(); }
    // Ok when held or when mail_dir does not let us make one (then held() is false).
    Result<void> take(const MboxOptions& options, Clock::time_point deadline);
    bool held() const { return fd_.valid(); }
    // A dead writer's record, found when its lock was broken: where its
    // unfinished append began.
    const std::optional<LockRecord>& dead_writer() const { return dead_writer_; }
    // Notes where this writer's append begins (see LockRecord).
    void record_start(off_t size, ino_t mailbox_inode);
    void release();

private:
    bool remove_if_stale(const MboxOptions& options);

    const Dir& dir_;
    std::string name_;
    Fd fd_;
    std::optional<LockRecord> dead_writer_;
};

void DotLock::record_start(off_t size, ino_t mailbox_inode)
{
    if (!held())
        return;
    char text[96];
    int n = std::snprintf(text, sizeof text, "%ld %lld %llu\n", static_cast<long>(::getpid()),
        static_cast<long long>(size), static_cast<unsigned long long>(mailbox_inode));
    // Best effort: a lock without its record only means no cut-back later.
    if (::pwrite(fd_.get(), text, static_cast<std::size_t>(n), 0) != n)
        return;
}

void DotLock::release()
{
    if (!held())
        return;
    struct stat mine {}, there {};
    if (::fstat(fd_.get(), &mine) == 0
        && ::fstatat(dir_.get(), name_.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0
        && mine.st_dev == there.st_dev && mine.st_ino == there.st_ino)
        (void)unlink_at(dir_, name_, true);
    fd_ = Fd();
}

// A lock is stale when its writer is certainly dead (our own locks and
// liblockfile's hold the pid) or, for anyone else's, when older than
// stale_lock. It is broken by renaming it aside, so that of several writers
// breaking it at once only one gets it, and only that one reads a dead
// writer's record from it.
bool DotLock::remove_if_stale(const MboxOptions& options)
{
    int fd = ::openat(dir_.get(), name_.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return true; // gone meanwhile: try again at once
    Fd lock(fd);
    struct stat st {};
    if (lock.valid() ? ::fstat(lock.get(), &st) != 0
                     : ::fstatat(dir_.get(), name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT;
    std::optional<LockRecord> record;
    if (lock.valid() && S_ISREG(st.st_mode)) {
        char text[96] {};
        ssize_t n = ::pread(lock.get(), text, sizeof text - 1, 0);
        if (n > 0)
            record = parse_lock_record(std::string_view(text, static_cast<std::size_t>(n)));
    }
    bool dead = record && process_gone(record->pid);
    if (!dead && std::time(nullptr) - st.st_mtime <= options.stale_lock.count())
        return false;
    std::string aside = name_ + ".stale." + std::to_string(::getpid());
    if (::renameat(dir_.get(), name_.c_str(), dir_.get(), aside.c_str()) != 0)
        return errno == ENOENT;
    struct stat moved {};
    bool same = ::fstatat(dir_.get(), aside.c_str(), &moved, AT_SYMLINK_NOFOLLOW) == 0
        && moved.st_dev == st.st_dev && moved.st_ino == st.st_ino;
    (void)unlink_at(dir_, aside, true);
    if (same && dead && record->size) {
        dead_writer_ = record;
        ::clock_gettime(CLOCK_REALTIME_COARSE, &dead_writer_->broken);
        std::string mailbox = name_.substr(0, name_.rfind(".lock")); // the lock is MAILBOX.lock
        struct stat box {};
        if (::fstatat(dir_.get(), mailbox.c_str(), &box, AT_SYMLINK_NOFOLLOW) == 0
            && box.st_ino == record->mailbox_inode) {
            dead_writer_->size_at_break = box.st_size;
            dead_writer_->mtime_at_break = box.st_mtim;
            dead_writer_->ctime_at_break = box.st_ctim;
        }
    }
    return true;
}

Result<void> DotLock::take(const MboxOptions& options, Clock::time_point deadline)
{
    RetryPause pause(options.lock_retry);
    for (;;) {
        // O_EXCL never follows a symlink: a planted link counts as a lock.
        int fd = ::openat(dir_.get(), name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            fd_ = Fd(fd);
            // A dead writer's record is carried over in the same write as our
            // pid: should this writer die too before record_start, the next
            // one still cuts the first one's fragment off (the broken lock is
            // gone, and its record with it).
            std::string text = std::to_string(::getpid());
            if (dead_writer_ && dead_writer_->size)
                text += " " + std::to_string(static_cast<long long>(*dead_writer_->size)) + " "
                    + std::to_string(static_cast<unsigned long long>(dead_writer_->mailbox_inode));
            text += "\n";
            (void)!::write(fd, text.data(), text.size());
            return ok();
        }
        int err = errno;
        // A dead writer's record is ours only if our lock follows its break
        // at once: someone else got in between, and may have appended since.
        dead_writer_.reset();
        if (err == EACCES || err == EPERM || err == EROFS)
            return ok(); // no dot-lock possible here: fcntl alone
        if (err != EEXIST && err != EINTR)
            return Error::from_errno("dot-lock " + dir_.describe(name_), err);
        if (err == EEXIST && remove_if_stale(options))
            continue;
        if (Clock::now() >= deadline)
            return Error::temporary("mailbox is locked: " + dir_.describe(name_) + " exists");
        pause.sleep();
    }
}

Result<void> lock_fcntl(const Fd& fd, const MboxOptions& options, Clock::time_point deadline)
{
    RetryPause pause(options.lock_retry);
    for (;;) {
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        if (::fcntl(fd.get(), F_SETLK, &fl) == 0)
            return ok();
        int err = errno;
        if (err == EINTR)
            continue;
        if (err != EACCES && err != EAGAIN)
            return Error::from_errno("fcntl lock", err);
        if (Clock::now() >= deadline)
            return Error::temporary("mailbox is locked by another process (fcntl)");
        pause.sleep();
    }
}

// The open mailbox must be a regular file with one link, owned by the recipient.
Result<off_t> check_mailbox(const Fd& fd, const std::string& shown, uid_t owner)
{
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return Error::from_errno("fstat " + shown, errno);
    if (!S_ISREG(st.st_mode))
        return Error::permanent("mailbox " + shown + " is not a regular file");
    if (st.st_nlink != 1)
        return Error::permanent("mailbox " + shown + " has " + std::to_string(st.st_nlink) + " hard links");
    if (st.st_uid != owner)
        return Error::permanent("mailbox " + shown + " belongs to uid " + std::to_string(st.st_uid)
            + ", not " + std::to_string(owner));
    return st.st_size;
}

// Opens or creates the mailbox without following a symlink and without
// blocking on a FIFO; sets `created` when this call made the file.
Result<Fd> open_mailbox(const Dir& dir, const std::string& name, bool& created)
{
    const int flags = O_RDWR | O_APPEND | O_NONBLOCK | O_NOCTTY; // read: the last bytes
    for (int attempt = 0; attempt < 3; ++attempt) {
        created = false;
        int fd = ::openat(dir.get(), name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            fd = ::openat(dir.get(), name.c_str(), flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            created = fd >= 0;
        }
        if (fd >= 0) {
            Fd owned(fd);
            if (::fcntl(fd, F_SETFL, O_APPEND) != 0)
                return Error::from_errno("fcntl " + dir.describe(name), errno);
            return owned;
        }
        int err = errno;
        if (err == ENOENT || err == EEXIST)
            continue; // raced with a creator or remover
        if (err == ELOOP)
            return Error::permanent("mailbox " + dir.describe(name) + " is a symbolic link");
        if (err == EISDIR || err == ENXIO || err == ENOTDIR)
            return Error::permanent("mailbox " + dir.describe(name) + " is not a regular file");
        return Error::from_errno("open mailbox " + dir.describe(name), err);
    }
    return Error::temporary("open mailbox " + dir.describe(name) + ": it keeps appearing and vanishing");
}

// Cuts the mailbox back to `size` after a failed write or fsync (`why`).
// Sets `cut` to whether that worked; the error says either way.
Error cut_back(const Fd& fd, off_t size, const std::string& why, bool& cut)
{
    cut = ::ftruncate(fd.get(), size) == 0 && ::fsync(fd.get()) == 0;
    if (!cut)
        return Error::temporary(why + "; cutting it back to " + std::to_string(size)
            + " bytes failed: " + std::strerror(errno));
    return Error::temporary(why + " (mailbox cut back to " + std::to_string(size) + " bytes)");
}

// Writes each message in turn (a failed one is cut back and the next one
// tried), then fsyncs once: every message written counts as delivered only
// after that fsync. If it fails, everything appended here is cut back.
std::vector<Result<void>> append_locked(const Fd& fd, off_t size, const std::string& shown,
    std::span<const MboxItem> items, const MboxOptions& options)
{
    std::time_t now = options.now != 0 ? options.now : std::time(nullptr);
    std::vector<Result<void>> results;
    const off_t start = size;
    bool any_written = false;
    for (std::size_t i = 0; i < items.size(); ++i) {
        MessageRenderer renderer(*items[i].message, *items[i].envelope, { true, options.from_hack, true }, now);
        Result<void> written = write_rendered(renderer, fd);
        struct stat st {};
        if (written && ::fstat(fd.get(), &st) != 0)
            written = Error::from_errno("fstat " + shown, errno);
        if (written) {
            size = st.st_size;
            any_written = true;
            results.push_back(ok());
            continue;
        }
        bool cut = false;
        Error error = cut_back(fd, size, "append to " + shown + ": " + written.error().message(), cut);
        results.push_back(error);
        if (!cut) {
            // The mailbox may now end in a partial message: append nothing more.
            while (results.size() < items.size())
                results.push_back(error);
            return results;
        }
    }
    if (!any_written)
        return results;
    if (Result<void> synced = fsync_file(fd); !synced) {
        bool cut = false;
        Error error = cut_back(fd, start, "fsync " + shown + ": " + synced.error().message(), cut);
        for (Result<void>& result : results)
            if (result)
                result = error;
    }
    return results;
}

// A writer killed mid-append (its lock broken above) left a fragment
// after record->size: it was never acknowledged (the queue still holds it),
// so it is cut off before anything else is appended. Returns the size now.
Result<off_t> cut_dead_writers_fragment(
    const Fd& fd, off_t size, const std::optional<LockRecord>& record, const std::string& shown)
{
    struct stat st {};
    if (!record || !record->size || *record->size >= size || ::fstat(fd.get(), &st) != 0
        || st.st_ino != record->mailbox_inode)
        return size;
    // Written since the break: not (only) the dead writer's work. The
    // mailbox as the break saw it tells (file times may be finer than the
    // coarse clock, so a write just before the break can look later); a
    // break that could not see the mailbox goes by the time of the break.
    auto order = [](const timespec& a, const timespec& b) {
        return a.tv_sec != b.tv_sec ? (a.tv_sec < b.tv_sec ? -1 : 1)
            : a.tv_nsec != b.tv_nsec ? (a.tv_nsec < b.tv_nsec ? -1 : 1) : 0;
    };
    if (record->size_at_break >= 0) {
        if (st.st_size != record->size_at_break || order(st.st_mtim, record->mtime_at_break) != 0
            || order(st.st_ctim, record->ctime_at_break) != 0)
            return size;
    } else if (order(st.st_mtim, record->broken) >= 0) {
        return size;
    }
    if (::ftruncate(fd.get(), *record->size) != 0 || ::fsync(fd.get()) != 0)
        return Error::from_errno("cut back " + shown + " after an interrupted delivery", errno);
    log::notice("%s: cut %lld bytes left by an interrupted delivery (process %ld)", shown.c_str(),
        static_cast<long long>(size - *record->size), static_cast<long>(record->pid));
    return *record->size;
}

// A message starts after an empty line (or at the top of the file): a
// mailbox left ending mid-line or mid-message by another program, or by a
// crash nobody could cut back, gets the missing line ends first, so the new
// From_ line is never glued to what came before. Returns the size now.
Result<off_t> start_on_a_fresh_message(const Fd& fd, off_t size, const std::string& shown)
{
    if (size == 0)
        return size;
    char tail[2] = { 0, 0 };
    off_t from = size >= 2 ? size - 2 : 0;
    ssize_t n = ::pread(fd.get(), tail, static_cast<std::size_t>(size - from), from);
    if (n < 0)
        return Error::from_errno("read " + shown, errno);
    std::string_view end(tail, static_cast<std::size_t>(n));
    std::string_view pad = end.ends_with("\n\n") || (size == 1 && end == "\n") ? ""
        : end.ends_with("\n")                                                   ? "\n"
                                                                                : "\n\n";
    if (pad.empty())
        return size;
    if (auto w = write_all(fd, pad); !w)
        return std::move(w).error();
    return size + static_cast<off_t>(pad.size());
}

std::vector<Result<void>> append_mbox(
    const Dir& dir, const std::string& name, std::span<const MboxItem> items, const MboxOptions& options)
{
    auto all = [&](Error error) { return std::vector<Result<void>>(items.size(), Result<void>(std::move(error))); };
    Clock::time_point deadline = Clock::now() + options.lock_wait;
    DotLock dotlock(dir, name + ".lock");
    if (auto r = dotlock.take(options, deadline); !r)
        return all(r.error());
    bool created = false;
    Result<Fd> fd = open_mailbox(dir, name, created);
    if (!fd)
        return all(fd.error());
    std::string shown = dir.describe(name);
    if (auto r = check_mailbox(*fd, shown, options.owner); !r)
        return all(r.error());
    if (auto r = lock_fcntl(*fd, options, deadline); !r)
        return all(r.error());
    // Checked again under the lock: a link may have been added meanwhile,
    // and the size to cut back to is only stable now.
    Result<off_t> size = check_mailbox(*fd, shown, options.owner);
    if (!size)
        return all(size.error());
    if (auto cut = cut_dead_writers_fragment(*fd, *size, dotlock.dead_writer(), shown); !cut)
        return all(cut.error());
    else
        size = *cut;
    struct stat st {};
    if (::fstat(fd->get(), &st) == 0)
        dotlock.record_start(*size, st.st_ino);
    if (auto r = start_on_a_fresh_message(*fd, *size, shown); !r)
        return all(r.error());
    else
        size = *r;
    std::vector<Result<void>> results = append_locked(*fd, *size, shown, items, options);
    // A new mailbox's name is not durable: the messages defer, so they are
    // cut back as after any failed append (the retry would repeat them). The
    // empty file stays: a writer waiting for the lock may have it open.
    if (created)
        if (Result<void> synced = fsync_dir(dir); !synced) {
            bool cut = false;
            Error error = cut_back(*fd, *size, "fsync " + dir.path() + ": " + synced.error().message(), cut);
            for (Result<void>& result : results)
                if (result)
                    result = error;
        }
    // The lock goes before the fcntl lock does: whoever takes the mailbox
    // next never finds this writer's record once it has finished.
    dotlock.release();
    return results;
}

std::vector<DeliveryStatus> statuses(const std::vector<Result<void>>& results)
{
    std::vector<DeliveryStatus> out;
    for (const Result<void>& r : results)
        out.push_back(r ? DeliveryStatus::ok() : DeliveryStatus::from_error(r.error()));
    return out;
}

} // namespace

std::vector<DeliveryStatus> deliver_mbox_batch(const Dir& mail_dir, std::string_view mailbox,
    std::span<const MboxItem> items, const MboxOptions& options)
{
    if (!is_safe_mailbox_name(mailbox) || mailbox.size() + 5 > limits::file_name)
        return std::vector<DeliveryStatus>(
            items.size(), DeliveryStatus::fail("not a valid mailbox name: " + std::string(mailbox.substr(0, 64))));
    return statuses(append_mbox(mail_dir, std::string(mailbox), items, options));
}

DeliveryStatus deliver_mbox(const Dir& mail_dir, std::string_view mailbox, const MessageSource& message,
    const LocalEnvelope& envelope, const MboxOptions& options)
{
    MboxItem item { &message, &envelope };
    return deliver_mbox_batch(mail_dir, mailbox, { &item, 1 }, options).front();
}

DeliveryStatus deliver_mbox_path(const std::string& path, const MessageSource& message,
    const LocalEnvelope& envelope, const MboxOptions& options)
{
    std::size_t slash = path.rfind('/');
    if (path.empty() || path.front() != '/' || slash == std::string::npos)
        return DeliveryStatus::fail("mailbox path must be absolute: " + path);
    std::string name = path.substr(slash + 1);
    if (!is_safe_name(name) || name.size() + 5 > limits::file_name)
        return DeliveryStatus::fail("not a valid mailbox file name: " + path);
    Result<Dir> dir = open_dir(slash == 0 ? std::string("/") : path.substr(0, slash));
    if (!dir)
        return DeliveryStatus::defer(dir.error().message());
    MboxItem item { &message, &envelope };
    return statuses(append_mbox(*dir, name, { &item, 1 }, options)).front();
}

} // namespace mm::local
