// SPDX-License-Identifier: GPL-2.0-or-later
// The spool (doc/spool-format.md): its directories, the commit protocol for
// new messages (MessageWriter, used by enqueue), the hand-off to and the
// bookkeeping of qmgr (claim, state files, removal), hostile-safe reading
// with quarantine into corrupt/, and the listing for mailq. Every file is
// treated as hostile when read. Linked by enqueue and qmgr.
// Implemented in spool.cc, spool_writer.cc and spool_reader.cc.
#pragma once

#include "mm/fd.hh"
#include "mm/queue_id.hh"
#include "mm/result.hh"
#include "mm/spool_format.hh"
#include "mm/spool_record.hh"
#include "mm/state_file.hh"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <sys/types.h>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

// The directories of a spool that hold messages (anchors §5b).
enum class SpoolArea : std::uint8_t {
    tmp, // enqueue's work in progress; never read
    incoming, // new/: committed by enqueue, not yet claimed by qmgr
    queue, // claimed by qmgr: ID (message) and ID.st (state)
    hold, // put aside by the administrator
    corrupt, // quarantined files; never deleted automatically
    maildrop, // user submissions (postdrop), picked up by enqueue
};
inline constexpr std::size_t spool_area_count = 6;
// The directory name: "tmp", "new", "queue", "hold", "corrupt", "maildrop".
const char* spool_area_name(SpoolArea area);

// "ID.st": the name of a message's state file in queue/ or hold/.
std::string state_file_name(const QueueId& id);

struct QueueEntry {
    QueueId id;
    SpoolArea area = SpoolArea::queue; // incoming or queue
    bool has_state = false; // queue/ID.st exists
    std::uint64_t file_size = 0;
};

struct QueueListing {
    std::vector<QueueEntry> messages; // sorted by id, i.e. by time of arrival
    std::vector<QueueId> orphan_states; // queue/ID.st without queue/ID: remove_message(id) them
    std::size_t skipped_names = 0; // temporary files, symlinks, foreign names
};

// A message opened for delivery: its checksum verified, `fd` read-only at
// offset 0; the content is message.layout.length bytes at message.layout.offset.
struct OpenMessage {
    StoredMessage message;
    Fd fd;
};

class Spool;

// One message being written to tmp/ by enqueue. Content arrives in chunks
// (SMTP DATA is streamed); commit() makes it durable in new/. Until then a
// failure, abort() or the destructor removes the temporary file, so nothing
// unacknowledged is ever visible to qmgr. The Spool must outlive it.
class MessageWriter {
public:
    MessageWriter(MessageWriter&& other) noexcept;
    MessageWriter& operator=(MessageWriter&& other) noexcept;
    MessageWriter(const MessageWriter&) = delete;
    MessageWriter& operator=(const MessageWriter&) = delete;
    ~MessageWriter() { abort(); }

    const QueueId& id() const { return id_; }
    std::uint64_t content_size() const { return content_size_; }

    // Appends canonical content (LF line ends, no dot-stuffing). More than the
    // maximum given to begin_message() is a permanent error; a failed write a
    // temporary one (ENOSPC kept in sys_errno for 452). Either ends the writer.
    Result<void> add_content(std::string_view chunk);
    // Where a committed message goes: new/, which qmgr claims at once, or
    // queue/ for -odq and do_queue, where only a queue run finds it.
    enum class Destination : std::uint8_t { deliver_now, next_queue_run };
    // END record, fsync, close, rename into new/ or queue/ (never over an
    // existing name), fsync that directory. Only after ok() may the message
    // be acknowledged.
    Result<void> commit(Destination destination = Destination::deliver_now);
    // commit() in steps, for a batch (enqueue): seal() writes the END record,
    // fsyncs and closes the file; publish() renames it into place. The batch
    // may be acknowledged once the destination directory has been fsynced
    // after its last publish() (fsync_destination()).
    Result<void> seal();
    Result<void> publish(Destination destination);
    Result<void> fsync_destination(Destination destination) const;
    // Removes the temporary file unless published. Idempotent.
    void abort();

private:
    friend class Spool;
    enum class Stage : std::uint8_t { open, sealed, committed, ended };
    MessageWriter(const Dir& tmp, const Dir& incoming, const Dir& queue, QueueId id, Fd fd,
        std::uint64_t max_content);
    Result<void> write_buffer();
    Error fail(const Error& error);

    const Dir* tmp_;
    const Dir* incoming_;
    const Dir* queue_;
    QueueId id_;
    Fd fd_;
    Stage stage_ = Stage::open;
    std::uint64_t max_content_;
    std::uint64_t content_size_ = 0;
    std::string buffer_;
    spool_record::Crc32c crc_;
    spool_format::HeaderBoundary boundary_;
};

class Spool {
public:
    // Opens spool_dir and its directories. With create_missing, creates the
    // missing ones (spool_dir itself, not its parents) with the modes of
    // doc/spool-format.md, also private/ and public/ for the sockets.
    static Result<Spool> open(const std::string& spool_dir, bool create_missing);

    // A system install's spool, prepared by the supervisor as root before
    // anything opens it: creates what is missing (spool_dir, not its parents)
    // and gives every directory the owner and mode of doc/architecture.md
    // ("Spool"), mending one that differs, as systemd-tmpfiles would.
    struct Owners {
        uid_t queue_uid;  // masqmail: tmp, new, queue, hold, corrupt, public
        gid_t queue_gid;
        gid_t drop_gid;   // masqmail-drop: the group of maildrop/
    };
    static Result<void> prepare_system(const std::string& spool_dir, const Owners& owners);

    const std::string& path() const;
    const Dir& area(SpoolArea area) const;

    // --- enqueue ---
    // Starts a message with a fresh id in tmp/. The envelope is checked and
    // written at once; content is limited to max_content bytes (and
    // limits::message_size_hard).
    Result<MessageWriter> begin_message(const Envelope& envelope, std::uint64_t max_content) const;
    // The same with an id the caller generated (its Message-ID: header names
    // it before the envelope is written). An id in use fails with EEXIST.
    Result<MessageWriter> begin_message(
        const QueueId& id, const Envelope& envelope, std::uint64_t max_content) const;
    // Removes leftovers in tmp/ (never acknowledged) at least min_age old;
    // returns how many were removed.
    Result<std::size_t> clean_tmp(std::chrono::seconds min_age = std::chrono::seconds(0)) const;

    // --- qmgr ---
    // Removes state files a killed qmgr left half-written (queue/*.tmp: the
    // rename that would have published them never happened). Only the one
    // qmgr of the instance calls this, when it starts; returns how many.
    Result<std::size_t> clean_state_leftovers() const;
    // Moves new/ID to queue/ID, without an fsync: if a crash undoes the
    // move, the message is claimed again from new/.
    Result<void> claim_for_delivery(const QueueId& id) const;
    // The envelope and layout, read cheaply (head and END record only). A
    // missing file is a temporary error with sys_errno() ENOENT; a malformed
    // one is a permanent error and is moved to corrupt/ first.
    Result<StoredMessage> read_envelope(const QueueId& id, SpoolArea where) const;
    // Like read_envelope(), and verifies the checksum of the whole file.
    Result<OpenMessage> open_for_delivery(const QueueId& id, SpoolArea where) const;
    // queue/ID.st; all pending when absent. A malformed file, or one for
    // another id or recipient count, moves the message and it to corrupt/.
    Result<DeliveryState> read_state(const QueueId& id, std::size_t recipient_count) const;
    // Replaces queue/ID.st atomically and durably.
    Result<void> write_state(const QueueId& id, const DeliveryState& state) const;
    // When every recipient is final: unlink queue/ID, then queue/ID.st,
    // without an fsync (a removal undone by a crash is at worst a duplicate).
    // Also removes an orphan state file.
    Result<void> remove_message(const QueueId& id) const;
    // Moves message and state between queue/ and hold/ (administrator).
    Result<void> hold_message(const QueueId& id) const;
    Result<void> release_message(const QueueId& id) const;
    // Moves ID (and ID.st) from `from` to corrupt/ and logs `reason`. Never
    // deletes: a name already taken in corrupt/ gets a ".1" ... ".9" suffix.
    Result<void> quarantine(const QueueId& id, SpoolArea from, std::string_view reason) const;
    // The messages in new/ and queue/ (bounded, names validated, only regular files).
    Result<QueueListing> list_queue() const;

private:
    struct Areas;
    explicit Spool(std::unique_ptr<Areas> areas);
    Result<void> move_message(const QueueId& id, SpoolArea from, SpoolArea to) const;
    Result<StoredMessage> quarantine_on_corruption(
        const QueueId& id, SpoolArea where, Result<StoredMessage> r) const;

    // On the heap so that a MessageWriter's pointers survive moving the Spool.
    std::unique_ptr<Areas> areas_;

public:
    Spool(Spool&&) noexcept;
    Spool& operator=(Spool&&) noexcept;
    ~Spool();
};

} // namespace mm
