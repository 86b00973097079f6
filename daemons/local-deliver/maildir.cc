// SPDX-License-Identifier: GPL-2.0-or-later
// Maildir delivery through directory descriptors only. Runs as the
// recipient; entries in the Maildir may be planted symlinks or files, so
// every directory is opened with O_NOFOLLOW and every file with O_EXCL.
// Linked by local-deliver.
#include "maildir.hh"

#include "mm/fs.hh"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

namespace mm::local {

namespace {

// A wrong kind of entry is a lasting condition; everything else is local trouble.
Error classify(Error error)
{
    int err = error.sys_errno();
    if (err == ELOOP || err == ENOTDIR)
        return Error::permanent(error.message() + " (symbolic link or not a directory)");
    return error;
}

// Opens `name` in `dir` as a directory, creating it (0700) when missing.
Result<Dir> open_or_make_dir(const Dir& dir, std::string_view name)
{
    Result<Dir> d = open_dir_at(dir, name);
    if (d || d.error().sys_errno() != ENOENT)
        return d ? std::move(d) : classify(std::move(d).error());
    std::string n(name);
    if (::mkdirat(dir.get(), n.c_str(), 0700) != 0 && errno != EEXIST)
        return Error::from_errno("mkdir " + dir.describe(name), errno);
    d = open_dir_at(dir, name);
    return d ? std::move(d) : classify(std::move(d).error());
}

struct Maildir {
    Dir top;
    Dir tmp;
    Dir fresh; // new/
};

Result<Maildir> open_maildir(const Dir& parent, std::string_view name, uid_t owner)
{
    Result<Dir> top = open_or_make_dir(parent, name);
    if (!top)
        return std::move(top).error();
    struct stat st {};
    if (::fstat(top->get(), &st) != 0)
        return Error::from_errno("fstat " + top->path(), errno);
    if (st.st_uid != owner)
        return Error::permanent("Maildir " + top->path() + " belongs to uid " + std::to_string(st.st_uid)
            + ", not " + std::to_string(owner));
    Result<Dir> tmp = open_or_make_dir(*top, "tmp");
    if (!tmp)
        return std::move(tmp).error();
    Result<Dir> fresh = open_or_make_dir(*top, "new");
    if (!fresh)
        return std::move(fresh).error();
    Result<Dir> cur = open_or_make_dir(*top, "cur");
    if (!cur)
        return std::move(cur).error();
    return Maildir { std::move(top).value(), std::move(tmp).value(), std::move(fresh).value() };
}

// Writes the message to a new file in tmp/ and fsyncs it; returns its name.
Result<std::string> write_tmp(const Maildir& md, const MaildirOptions& options, const MessageSource& message,
    const LocalEnvelope& envelope)
{
    for (int attempt = 0; attempt < 10; ++attempt) {
        std::string name = maildir_unique_name(options.host_name);
        Result<Fd> fd = create_at(md.tmp, name, 0600);
        if (!fd && fd.error().sys_errno() == EEXIST)
            continue;
        if (!fd)
            return classify(std::move(fd).error());
        MessageRenderer renderer(message, envelope, {}, 0);
        Result<void> written = write_rendered(renderer, *fd);
        if (written)
            written = fsync_file(*fd);
        if (written)
            written = fd->close();
        if (!written) {
            (void)unlink_at(md.tmp, name, true);
            return std::move(written).error().with_context("write " + md.tmp.describe(name));
        }
        return name;
    }
    return Error::temporary("no unique file name in " + md.tmp.path());
}

// Moves tmp/NAME to new/NAME without replacing anything, durably.
Result<void> publish(const Maildir& md, const std::string& name)
{
    if (::linkat(md.tmp.get(), name.c_str(), md.fresh.get(), name.c_str(), 0) == 0) {
        (void)unlink_at(md.tmp, name, true);
    } else if (errno == EPERM || errno == EOPNOTSUPP || errno == EMLINK) {
        // A file system without hard links: rename, refusing to replace.
        if (auto r = rename_noreplace_at(md.tmp, name, md.fresh, name); !r) {
            (void)unlink_at(md.tmp, name, true);
            return r;
        }
    } else {
        Error e = Error::from_errno("link into " + md.fresh.describe(name), errno);
        (void)unlink_at(md.tmp, name, true);
        return e;
    }
    // Not durable means deferred, and the retry delivers it again: take it
    // back out of new/ (unless a reader has moved it on already).
    Result<void> synced = fsync_dir(md.fresh);
    if (!synced)
        (void)unlink_at(md.fresh, name, true);
    return synced;
}

} // namespace

std::string maildir_unique_name(std::string_view host_name)
{
    static unsigned counter = 0;
    struct timeval tv {};
    ::gettimeofday(&tv, nullptr);
    char head[96];
    int n = std::snprintf(head, sizeof head, "%lld.M%06ldP%dQ%u.", static_cast<long long>(tv.tv_sec),
        static_cast<long>(tv.tv_usec), static_cast<int>(::getpid()), ++counter);
    std::string name(head, n > 0 ? static_cast<std::size_t>(n) : 0);
    std::string host;
    for (char c : host_name.substr(0, 128)) {
        if (c == '/')
            host += "\\057";
        else if (c == ':')
            host += "\\072";
        else if (c > 0x20 && c < 0x7f)
            host += c;
    }
    name += host.empty() ? "localhost" : host;
    return name;
}

DeliveryStatus deliver_maildir(const Dir& parent, std::string_view name, const MessageSource& message,
    const LocalEnvelope& envelope, const MaildirOptions& options)
{
    if (!is_safe_mailbox_name(name))
        return DeliveryStatus::fail("not a valid Maildir name: " + std::string(name.substr(0, 64)));
    Result<Maildir> md = open_maildir(parent, name, options.owner);
    if (!md)
        return DeliveryStatus::from_error(md.error());
    Result<std::string> file = write_tmp(*md, options, message, envelope);
    if (!file)
        return DeliveryStatus::from_error(file.error());
    Result<void> r = publish(*md, *file);
    return r ? DeliveryStatus::ok() : DeliveryStatus::from_error(r.error());
}

} // namespace mm::local
