// SPDX-License-Identifier: GPL-2.0-or-later
// Reading message files from the spool. Every file is hostile: reads are
// bounded, every structure is checked, and a malformed file is moved to
// corrupt/ (never deleted) with an error that says why. Linked by qmgr.
#include "mm/fs.hh"
#include "mm/limits.hh"
#include "mm/spool.hh"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mm {

namespace {

constexpr std::size_t first_head_read = std::size_t{64} * 1024;
constexpr std::size_t verify_chunk = std::size_t{64} * 1024;

std::uint64_t max_message_file_size()
{
    return spool_format::max_head_size() + limits::message_size_hard + spool_format::end_record_size;
}

struct OpenedFile {
    Fd fd;
    std::uint64_t size = 0;
};

// Problems of the file itself are permanent errors (the caller quarantines);
// trouble reading it is temporary.
Result<OpenedFile> open_message_file(const Dir& dir, const QueueId& id)
{
    auto fd = open_at(dir, id.str(), O_RDONLY | O_NONBLOCK);
    if (!fd && fd.error().sys_errno() == ELOOP)
        return Error::permanent("is a symbolic link");
    if (!fd)
        return std::move(fd).error();
    struct stat st { };
    if (::fstat(fd->get(), &st) != 0)
        return Error::from_errno("stat " + dir.describe(id.str()), errno);
    if (!S_ISREG(st.st_mode))
        return Error::permanent("not a regular file");
    auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > max_message_file_size())
        return Error::permanent("file larger than any message file (" + std::to_string(size) + " bytes)");
    int flags = ::fcntl(fd->get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd->get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
        return Error::from_errno("fcntl " + dir.describe(id.str()), errno);
    return OpenedFile { std::move(fd).value(), size };
}

// Exactly `n` bytes at `offset`; fewer means the file shrank under us.
Result<std::string> read_exact_at(const Fd& fd, std::uint64_t offset, std::size_t n)
{
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::pread(fd.get(), out.data() + got, n - got, static_cast<off_t>(offset + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return Error::from_errno("read", errno);
        if (r == 0)
            return Error::permanent("file shorter than its size");
        got += static_cast<std::size_t>(r);
    }
    return out;
}

Result<spool_format::Head> read_head(const Fd& fd, std::uint64_t size)
{
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, first_head_read));
    auto prefix = read_exact_at(fd, 0, n);
    if (!prefix)
        return std::move(prefix).error();
    bool needs_more = false;
    auto head = spool_format::parse_head(*prefix, &needs_more);
    if (head || !needs_more || n == size)
        return head;
    n = static_cast<std::size_t>(std::min<std::uint64_t>(size, spool_format::max_head_size()));
    prefix = read_exact_at(fd, 0, n);
    if (!prefix)
        return std::move(prefix).error();
    return spool_format::parse_head(*prefix);
}

struct Layout {
    StoredMessage message;
    std::uint32_t crc = 0;
};

Result<Layout> read_layout(const OpenedFile& file, const QueueId& id)
{
    auto head = read_head(file.fd, file.size);
    if (!head)
        return std::move(head).error();
    if (head->id != id)
        return Error::permanent("file holds message " + head->id.str());
    if (file.size < head->content_offset + spool_format::end_record_size)
        return Error::permanent("truncated: no END record");
    auto end_record
        = read_exact_at(file.fd, file.size - spool_format::end_record_size, spool_format::end_record_size);
    if (!end_record)
        return std::move(end_record).error();
    auto end = spool_format::parse_end(*end_record, head->content_offset, file.size);
    if (!end)
        return std::move(end).error();
    return Layout { StoredMessage { std::move(head->id), std::move(head->envelope), end->layout }, end->crc };
}

// Streams the whole file through the checksum and the header boundary.
Result<void> verify_content(const OpenedFile& file, const Layout& layout)
{
    const ContentLayout& content = layout.message.layout;
    spool_record::Crc32c crc;
    spool_format::HeaderBoundary boundary;
    std::uint64_t covered = file.size - spool_format::crc_field_size;
    for (std::uint64_t offset = 0; offset < covered;) {
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(covered - offset, verify_chunk));
        auto chunk = read_exact_at(file.fd, offset, n);
        if (!chunk)
            return std::move(chunk).error();
        crc.update(*chunk);
        std::uint64_t from = std::max(offset, content.offset);
        std::uint64_t to = std::min(offset + n, content.offset + content.length);
        if (from < to)
            boundary.feed(std::string_view(*chunk).substr(from - offset, to - from));
        offset += n;
    }
    if (crc.value() != layout.crc)
        return Error::permanent("checksum mismatch");
    if (boundary.header_length() != content.header_length)
        return Error::permanent("header length in END record does not match the content");
    return ok();
}

} // namespace

Result<StoredMessage> Spool::quarantine_on_corruption(
    const QueueId& id, SpoolArea where, Result<StoredMessage> r) const
{
    if (r || r.error().kind() != ErrorKind::permanent)
        return r;
    std::string problem = r.error().message();
    auto q = quarantine(id, where, problem);
    if (!q)
        return Error::permanent(id.str() + ": corrupt (" + problem + "), not moved: " + q.error().message());
    return Error::permanent(id.str() + ": corrupt, moved to corrupt/: " + problem);
}

Result<StoredMessage> Spool::read_envelope(const QueueId& id, SpoolArea where) const
{
    auto file = open_message_file(area(where), id);
    if (!file)
        return quarantine_on_corruption(id, where, std::move(file).error());
    auto layout = read_layout(*file, id);
    if (!layout)
        return quarantine_on_corruption(id, where, std::move(layout).error());
    return std::move(layout->message);
}

Result<OpenMessage> Spool::open_for_delivery(const QueueId& id, SpoolArea where) const
{
    auto file = open_message_file(area(where), id);
    if (!file)
        return quarantine_on_corruption(id, where, std::move(file).error()).error();
    auto layout = read_layout(*file, id);
    if (!layout)
        return quarantine_on_corruption(id, where, std::move(layout).error()).error();
    if (auto v = verify_content(*file, *layout); !v)
        return quarantine_on_corruption(id, where, std::move(v).error()).error();
    return OpenMessage { std::move(layout->message), std::move(file->fd) };
}

} // namespace mm
