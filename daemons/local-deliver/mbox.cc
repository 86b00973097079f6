// SPDX-License-Identifier: GPL-2.0-or-later
// mbox append under dot-lock and fcntl lock. Runs as the recipient; anything
// in the mailbox directory may be a trap (symlinks, hard links, FIFOs, files
// of other users, stale or planted lock files), so every check is made on the
// open descriptor. Linked by local-deliver.
#include "mbox.hh"

#include "mm/fs.hh"
#include "mm/limits.hh"

#include <algorithm>
#include <cerrno>
#include <cstring>
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
    RetryPause pause(options.lock_retry);
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
    std::vector<Result<void>> results = append_locked(*fd, *size, shown, items, options);
    if (created)
        if (Result<void> synced = fsync_dir(dir); !synced)
            for (Result<void>& result : results)
                if (result)
                    result = synced.error();
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
