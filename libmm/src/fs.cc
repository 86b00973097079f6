// SPDX-License-Identifier: GPL-2.0-or-later
// File helpers over directory descriptors. Linked by every process; names
// reaching these functions may come from hostile listings and are checked.
#include "mm/fs.hh"

#include "mm/limits.hh"

#include <cerrno>
#include <cstdio>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mm {

namespace {

Error bad_name(const Dir& dir, std::string_view name)
{
    std::string shown;
    for (char c : name.substr(0, 64))
        shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    return Error::internal("unsafe file name '" + shown + "' in " + dir.path());
}

} // namespace

bool is_safe_name(std::string_view name)
{
    if (name.empty() || name.size() > limits::file_name || name == "." || name == "..")
        return false;
    for (char c : name)
        if (c == '/' || c == '\0')
            return false;
    return true;
}

Result<Dir> open_dir(const std::string& path)
{
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return Error::from_errno("open directory " + path, errno);
    return Dir(Fd(fd), path);
}

Result<Dir> open_dir_at(const Dir& dir, std::string_view name)
{
    if (!is_safe_name(name))
        return bad_name(dir, name);
    std::string n(name);
    int fd = ::openat(dir.get(), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return Error::from_errno("open directory " + dir.describe(name), errno);
    return Dir(Fd(fd), dir.describe(name));
}

Result<void> make_dir_at(const Dir& dir, std::string_view name, mode_t mode)
{
    if (!is_safe_name(name))
        return bad_name(dir, name);
    std::string n(name);
    if (::mkdirat(dir.get(), n.c_str(), mode) == 0)
        return ok();
    int err = errno;
    struct stat st{};
    if (err == EEXIST && ::fstatat(dir.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
        return ok();
    return Error::from_errno("mkdir " + dir.describe(name), err);
}

Result<Fd> open_at(const Dir& dir, std::string_view name, int flags, mode_t mode)
{
    if (!is_safe_name(name))
        return bad_name(dir, name);
    std::string n(name);
    int fd = ::openat(dir.get(), n.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return Error::from_errno("open " + dir.describe(name), errno);
    return Fd(fd);
}

Result<Fd> create_at(const Dir& dir, std::string_view name, mode_t mode)
{
    return open_at(dir, name, O_WRONLY | O_CREAT | O_EXCL, mode);
}

Result<void> write_all(const Fd& fd, std::string_view data)
{
    while (!data.empty()) {
        ssize_t n = ::write(fd.get(), data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return Error::from_errno("write", errno);
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return ok();
}

Result<std::string> read_all(const Fd& fd, std::size_t max_bytes)
{
    std::string out;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return Error::from_errno("read", errno);
        }
        if (n == 0)
            return out;
        if (static_cast<std::size_t>(n) > max_bytes - out.size())
            return Error::permanent("input larger than " + std::to_string(max_bytes) + " bytes");
        out.append(buf, static_cast<std::size_t>(n));
    }
}

Result<std::string> read_range(const Fd& fd, std::uint64_t offset, std::size_t length)
{
    std::string out(length, '\0');
    std::size_t done = 0;
    while (done < length) {
        ssize_t n = ::pread(fd.get(), out.data() + done, length - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return Error::from_errno("read", errno);
        if (n == 0)
            break;
        done += static_cast<std::size_t>(n);
    }
    out.resize(done);
    return out;
}

Result<std::string> read_file_at(const Dir& dir, std::string_view name, std::size_t max_bytes)
{
    auto fd = open_at(dir, name, O_RDONLY | O_NONBLOCK);
    if (!fd)
        return std::move(fd).error();
    struct stat st{};
    if (::fstat(fd->get(), &st) != 0)
        return Error::from_errno("stat " + dir.describe(name), errno);
    if (!S_ISREG(st.st_mode))
        return Error::permanent(dir.describe(name) + ": not a regular file");
    auto data = read_all(*fd, max_bytes);
    if (!data)
        return std::move(data).error().with_context(dir.describe(name));
    return data;
}

Result<void> fsync_file(const Fd& fd)
{
    if (::fsync(fd.get()) != 0)
        return Error::from_errno("fsync", errno);
    return ok();
}

Result<void> fsync_dir(const Dir& dir)
{
    if (::fsync(dir.get()) != 0)
        return Error::from_errno("fsync directory " + dir.path(), errno);
    return ok();
}

Result<void> rename_at(const Dir& from, std::string_view from_name, const Dir& to, std::string_view to_name)
{
    if (!is_safe_name(from_name))
        return bad_name(from, from_name);
    if (!is_safe_name(to_name))
        return bad_name(to, to_name);
    std::string a(from_name), b(to_name);
    if (::renameat(from.get(), a.c_str(), to.get(), b.c_str()) != 0)
        return Error::from_errno("rename " + from.describe(from_name) + " to " + to.describe(to_name), errno);
    return ok();
}

Result<void> rename_noreplace_at(const Dir& from, std::string_view from_name, const Dir& to,
    std::string_view to_name)
{
    if (!is_safe_name(from_name))
        return bad_name(from, from_name);
    if (!is_safe_name(to_name))
        return bad_name(to, to_name);
    std::string a(from_name), b(to_name);
    if (::renameat2(from.get(), a.c_str(), to.get(), b.c_str(), RENAME_NOREPLACE) == 0)
        return ok();
    int err = errno;
    if (err != EINVAL && err != ENOSYS)
        return Error::from_errno("rename " + from.describe(from_name) + " to " + to.describe(to_name), err);
    // File systems without RENAME_NOREPLACE: link() never replaces a target.
    if (::linkat(from.get(), a.c_str(), to.get(), b.c_str(), 0) != 0)
        return Error::from_errno("link " + from.describe(from_name) + " to " + to.describe(to_name), errno);
    return unlink_at(from, from_name);
}

Result<void> unlink_at(const Dir& dir, std::string_view name, bool missing_ok)
{
    if (!is_safe_name(name))
        return bad_name(dir, name);
    std::string n(name);
    if (::unlinkat(dir.get(), n.c_str(), 0) != 0 && !(missing_ok && errno == ENOENT))
        return Error::from_errno("unlink " + dir.describe(name), errno);
    return ok();
}

Result<std::vector<std::string>> list_dir(const Dir& dir, std::size_t max_entries)
{
    int fd = ::openat(dir.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return Error::from_errno("open directory " + dir.path(), errno);
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
        int err = errno;
        ::close(fd);
        return Error::from_errno("fdopendir " + dir.path(), err);
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
        std::string_view n(e->d_name);
        if (n == "." || n == "..")
            continue;
        if (names.size() >= max_entries) {
            ::closedir(d);
            return Error::temporary("more than " + std::to_string(max_entries) + " entries in " + dir.path());
        }
        names.emplace_back(n);
    }
    int err = errno;
    ::closedir(d);
    if (err != 0)
        return Error::from_errno("readdir " + dir.path(), err);
    return names;
}

Result<void> replace_file_at(const Dir& dir, std::string_view name, std::string_view data, mode_t mode)
{
    if (!is_safe_name(name) || name.size() > limits::file_name - 24)
        return bad_name(dir, name);
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, ".%ld.tmp", static_cast<long>(::getpid()));
    std::string tmp = std::string(name) + suffix;
    auto fd = create_at(dir, tmp, mode);
    if (!fd && fd.error().sys_errno() == EEXIST) {
        // Left by a process with our pid that crashed: never acknowledged, safe to drop.
        if (auto r = unlink_at(dir, tmp, true); !r)
            return r;
        fd = create_at(dir, tmp, mode);
    }
    if (!fd)
        return std::move(fd).error();
    auto fail = [&](Error e) -> Result<void> {
        (void)unlink_at(dir, tmp, true);
        return e;
    };
    if (auto r = write_all(*fd, data); !r)
        return fail(std::move(r).error().with_context(dir.describe(tmp)));
    if (auto r = fsync_file(*fd); !r)
        return fail(std::move(r).error().with_context(dir.describe(tmp)));
    if (auto r = fd->close(); !r)
        return fail(std::move(r).error().with_context(dir.describe(tmp)));
    if (auto r = rename_at(dir, tmp, dir, name); !r)
        return fail(std::move(r).error());
    return fsync_dir(dir);
}

} // namespace mm
