// SPDX-License-Identifier: GPL-2.0-or-later
// The commit protocol for new messages (anchors §5c): tmp/ID created with
// O_EXCL, envelope and streamed content, END record, fsync, close, rename
// into new/ without replacing, fsync new/. Envelope fields come from enqueue,
// which got them from untrusted peers: encode_head() checks them all.
// Linked by enqueue.
#include "mm/fs.hh"
#include "mm/limits.hh"
#include "mm/spool.hh"

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>

namespace mm {

namespace {

constexpr std::size_t write_buffer_size = std::size_t{64} * 1024;
constexpr int id_attempts = 4;

} // namespace

MessageWriter::MessageWriter(
    const Dir& tmp, const Dir& incoming, const Dir& queue, QueueId id, Fd fd, std::uint64_t max_content)
    : tmp_(&tmp)
    , incoming_(&incoming)
    , queue_(&queue)
    , id_(std::move(id))
    , fd_(std::move(fd))
    , max_content_(max_content)
{
}

MessageWriter::MessageWriter(MessageWriter&& other) noexcept
    : tmp_(other.tmp_)
    , incoming_(other.incoming_)
    , queue_(other.queue_)
    , id_(std::move(other.id_))
    , fd_(std::move(other.fd_))
    , stage_(std::exchange(other.stage_, Stage::ended))
    , max_content_(other.max_content_)
    , content_size_(other.content_size_)
    , buffer_(std::move(other.buffer_))
    , crc_(other.crc_)
    , boundary_(other.boundary_)
{
}

MessageWriter& MessageWriter::operator=(MessageWriter&& other) noexcept
{
    if (this != &other) {
        abort();
        tmp_ = other.tmp_;
        incoming_ = other.incoming_;
        queue_ = other.queue_;
        id_ = std::move(other.id_);
        fd_ = std::move(other.fd_);
        stage_ = std::exchange(other.stage_, Stage::ended);
        max_content_ = other.max_content_;
        content_size_ = other.content_size_;
        buffer_ = std::move(other.buffer_);
        crc_ = other.crc_;
        boundary_ = other.boundary_;
    }
    return *this;
}

void MessageWriter::abort()
{
    if (stage_ != Stage::open && stage_ != Stage::sealed)
        return;
    stage_ = Stage::ended;
    fd_.reset();
    (void)unlink_at(*tmp_, id_.str(), true);
}

Error MessageWriter::fail(const Error& error)
{
    abort();
    return error.with_context(id_.str());
}

Result<void> MessageWriter::write_buffer()
{
    auto r = write_all(fd_, buffer_);
    buffer_.clear();
    return r;
}

Result<void> MessageWriter::add_content(std::string_view chunk)
{
    if (stage_ != Stage::open)
        return Error::internal(id_.str() + ": message writer used after commit or failure");
    if (chunk.size() > max_content_ - content_size_)
        return fail(Error::permanent("message larger than " + std::to_string(max_content_) + " bytes"));
    crc_.update(chunk);
    boundary_.feed(chunk);
    content_size_ += chunk.size();
    if (buffer_.size() + chunk.size() < write_buffer_size) {
        buffer_ += chunk;
        return ok();
    }
    if (auto r = write_buffer(); !r)
        return fail(std::move(r).error());
    if (chunk.size() < write_buffer_size) {
        buffer_ = chunk;
        return ok();
    }
    if (auto r = write_all(fd_, chunk); !r)
        return fail(std::move(r).error());
    return ok();
}

Result<void> MessageWriter::seal()
{
    if (stage_ != Stage::open)
        return Error::internal(id_.str() + ": message writer used after commit or failure");
    buffer_ += spool_format::encode_end(content_size_, boundary_.header_length(), crc_);
    if (auto r = write_buffer(); !r)
        return fail(std::move(r).error());
    if (auto r = fsync_file(fd_); !r)
        return fail(std::move(r).error());
    if (auto r = fd_.close(); !r)
        return fail(std::move(r).error());
    stage_ = Stage::sealed;
    return ok();
}

Result<void> MessageWriter::publish(Destination destination)
{
    if (stage_ != Stage::sealed)
        return Error::internal(id_.str() + ": message published before it was sealed");
    // rename_noreplace: an id collision fails instead of replacing a message.
    const Dir& target = destination == Destination::deliver_now ? *incoming_ : *queue_;
    if (auto r = rename_noreplace_at(*tmp_, id_.str(), target, id_.str()); !r)
        return fail(std::move(r).error());
    stage_ = Stage::committed;
    return ok();
}

Result<void> MessageWriter::fsync_destination(Destination destination) const
{
    // Past the rename the message is in the spool; if this fsync fails it is
    // not acknowledged and may be delivered twice, never lost.
    const Dir& target = destination == Destination::deliver_now ? *incoming_ : *queue_;
    if (auto r = fsync_dir(target); !r)
        return std::move(r).error().with_context(id_.str());
    return ok();
}

Result<void> MessageWriter::commit(Destination destination)
{
    if (auto r = seal(); !r)
        return r;
    if (auto r = publish(destination); !r)
        return r;
    return fsync_destination(destination);
}

Result<MessageWriter> Spool::begin_message(const Envelope& envelope, std::uint64_t max_content) const
{
    for (int attempt = 0; attempt < id_attempts; ++attempt) {
        auto id = QueueId::generate();
        if (!id)
            return std::move(id).error();
        auto writer = begin_message(*id, envelope, max_content);
        if (writer || writer.error().sys_errno() != EEXIST)
            return writer;
    }
    return Error::temporary("no free queue id in tmp/ after " + std::to_string(id_attempts) + " attempts");
}

Result<MessageWriter> Spool::begin_message(
    const QueueId& id, const Envelope& envelope, std::uint64_t max_content) const
{
    max_content = std::min<std::uint64_t>(max_content, limits::message_size_hard);
    auto head = spool_format::encode_head(id, envelope);
    if (!head)
        return std::move(head).error();
    auto fd = create_at(area(SpoolArea::tmp), id.str(), 0600);
    if (!fd)
        return std::move(fd).error();
    MessageWriter writer(area(SpoolArea::tmp), area(SpoolArea::incoming), area(SpoolArea::queue), id,
        std::move(fd).value(), max_content);
    writer.crc_.update(*head);
    writer.buffer_ = std::move(head).value();
    if (auto r = writer.write_buffer(); !r)
        return writer.fail(std::move(r).error());
    return writer;
}

Result<std::size_t> Spool::clean_tmp(std::chrono::seconds min_age) const
{
    const Dir& tmp = area(SpoolArea::tmp);
    auto names = list_dir(tmp, limits::queue_entries_scanned);
    if (!names)
        return std::move(names).error();
    std::time_t now = std::time(nullptr);
    std::size_t removed = 0;
    for (const std::string& name : *names) {
        struct stat st { };
        if (::fstatat(tmp.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
            continue;
        if (now - st.st_mtime < min_age.count())
            continue;
        if (auto r = unlink_at(tmp, name, true); !r)
            return std::move(r).error();
        ++removed;
    }
    return removed;
}

Result<std::size_t> Spool::clean_state_leftovers() const
{
    const Dir& queue = area(SpoolArea::queue);
    auto names = list_dir(queue, limits::queue_entries_scanned);
    if (!names)
        return std::move(names).error();
    std::size_t removed = 0;
    for (const std::string& name : *names) {
        if (!std::string_view(name).ends_with(".tmp"))
            continue;
        if (auto r = unlink_at(queue, name, true); !r)
            return std::move(r).error();
        ++removed;
    }
    return removed;
}

} // namespace mm
