// SPDX-License-Identifier: GPL-2.0-or-later
// mbox append under dot-lock and fcntl lock. Runs as the recipient; anything
// in the mailbox directory may be a trap (symlinks, hard links, FIFOs, files
// of other users, stale or planted lock files), so every check is made on the
// open descriptor. Linked by local-deliver.
#include "mbox.hh"

#include "mm/fs.hh"
#include "mm/limits.hh"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace mm::local {

namespace {

using Clock = std::chrono::steady_clock;

// The dot-lock NAME.lock, removed when this goes out of scope.
class DotLock {
public:
    DotLock(const Dir& dir, std::string name) : dir_(dir), name_(std::move(name)) {}
    DotLock(const DotLock&) = delete;
    DotLock& operator=(const DotLock&) = delete;
    ~DotLock()
    {
        if (held_)
            (void)unlink_at(dir_, name_, true);
    }
    // Ok when held or when mail_dir does not let us make one (then held() is false).
    Result<void> take(const MboxOptions& options, Clock::time_point deadline);
    bool held() const { return held_; }

private:
    bool remove_if_stale(const MboxOptions& options);

    const Dir& dir_;
    std::string name_;
    bool held_ = false;
};

bool DotLock::remove_if_stale(const MboxOptions& options)
{
    struct stat st {};
    if (::fstatat(dir_.get(), name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT; // gone meanwhile: try again at once
    if (std::time(nullptr) - st.st_mtime <= options.stale_lock.count())
        return false;
    return unlink_at(dir_, name_, true).has_value();
}

Result<void> DotLock::take(const MboxOptions& options, Clock::time_point deadline)
{
    for (;;) {
        // O_EXCL never follows a symlink: a planted link counts as a lock.
        int fd = ::openat(dir_.get(), name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ::close(fd);
            held_ = true;
            return ok();
        }
        int err = errno;
        if (err == EACCES || err == EPERM || err == EROFS)
            return ok(); // no dot-lock possible here: fcntl alone
        if (err != EEXIST && err != EINTR)
            return Error::from_errno("dot-lock " + dir_.describe(name_), err);
        if (err == EEXIST && remove_if_stale(options))
            continue;
        if (Clock::now() >= deadline)
            return Error::temporary("mailbox is locked: " + dir_.describe(name_) + " exists");
        std::this_thread::sleep_for(options.lock_retry);
    }
}

Result<void> lock_fcntl(const Fd& fd, const MboxOptions& options, Clock::time_point deadline)
{
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
        std::this_thread::sleep_for(options.lock_retry);
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
    const int flags = O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY;
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

// Writes the message and fsyncs; on failure cuts the file back to `size`.
Result<void> append_locked(const Fd& fd, off_t size, const std::string& shown, const MessageSource& message,
    const LocalEnvelope& envelope, const MboxOptions& options)
{
    std::time_t now = options.now != 0 ? options.now : std::time(nullptr);
    MessageRenderer renderer(message, envelope, { true, options.from_hack, true }, now);
    Result<void> written = write_rendered(renderer, fd);
    if (written)
        written = fsync_file(fd);
    if (written)
        return ok();
    std::string why = "append to " + shown + ": " + written.error().message();
    if (::ftruncate(fd.get(), size) != 0 || ::fsync(fd.get()) != 0)
        return Error::temporary(why + "; cutting it back to " + std::to_string(size)
            + " bytes failed: " + std::strerror(errno));
    return Error::temporary(why + " (mailbox cut back to " + std::to_string(size) + " bytes)");
}

Result<void> append_mbox(const Dir& dir, const std::string& name, const MessageSource& message,
    const LocalEnvelope& envelope, const MboxOptions& options)
{
    Clock::time_point deadline = Clock::now() + options.lock_wait;
    DotLock dotlock(dir, name + ".lock");
    if (auto r = dotlock.take(options, deadline); !r)
        return r;
    bool created = false;
    Result<Fd> fd = open_mailbox(dir, name, created);
    if (!fd)
        return std::move(fd).error();
    std::string shown = dir.describe(name);
    if (auto r = check_mailbox(*fd, shown, options.owner); !r)
        return std::move(r).error();
    if (auto r = lock_fcntl(*fd, options, deadline); !r)
        return r;
    // Checked again under the lock: a link may have been added meanwhile,
    // and the size to cut back to is only stable now.
    Result<off_t> size = check_mailbox(*fd, shown, options.owner);
    if (!size)
        return std::move(size).error();
    if (auto r = append_locked(*fd, *size, shown, message, envelope, options); !r)
        return r;
    if (created)
        return fsync_dir(dir);
    return ok();
}

} // namespace

DeliveryStatus deliver_mbox(const Dir& mail_dir, std::string_view mailbox, const MessageSource& message,
    const LocalEnvelope& envelope, const MboxOptions& options)
{
    if (!is_safe_mailbox_name(mailbox) || mailbox.size() + 5 > limits::file_name)
        return DeliveryStatus::fail("not a valid mailbox name: " + std::string(mailbox.substr(0, 64)));
    Result<void> r = append_mbox(mail_dir, std::string(mailbox), message, envelope, options);
    return r ? DeliveryStatus::ok() : DeliveryStatus::from_error(r.error());
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
    Result<void> r = append_mbox(*dir, name, message, envelope, options);
    return r ? DeliveryStatus::ok() : DeliveryStatus::from_error(r.error());
}

} // namespace mm::local
