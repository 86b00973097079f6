// SPDX-License-Identifier: GPL-2.0-or-later
// Appends a message to an mbox file (masqmail §4.4, without bugs §10 12, 45):
// dot-lock plus fcntl lock, O_NOFOLLOW, regular single-link file owned by the
// recipient, fsync before success, truncated back on any write error. Runs as
// the recipient; the mailbox directory's contents are treated as hostile.
// Linked by local-deliver.
#pragma once

#include "delivery.hh"

#include "mm/fd.hh"

#include <chrono>
#include <ctime>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace mm::local {

struct MboxOptions {
    uid_t owner = 0; // the recipient: the mailbox must belong to this uid
    bool from_hack = true; // >From quoting (mbox always quotes; off only for tests)
    std::time_t now = 0; // for the From_ line; 0: the current time
    // Both locks are retried for up to lock_wait, after pauses growing from
    // 2 ms to lock_retry; still busy then: deferred.
    std::chrono::milliseconds lock_wait { 10000 };
    std::chrono::milliseconds lock_retry { 100 };
    // A dot-lock whose writer is dead (its pid is in it) is removed at once,
    // anyone else's when older than this.
    std::chrono::seconds stale_lock { 300 };
};

// One message of a batch for one mailbox; both borrowed.
struct MboxItem {
    const MessageSource* message = nullptr;
    const LocalEnvelope* envelope = nullptr;
};

// A delivery killed mid-append leaves its start offset in the dot-lock
// ("PID SIZE INODE"); the next delivery breaks that lock (the pid is gone)
// and cuts the unacknowledged fragment off before appending. Every append
// starts after an empty line, so nothing is ever glued to a fragment that
// could not be cut (another program's, or one left without a dot-lock).
//
// Appends several messages to `mailbox` in `mail_dir` under one lock, one
// after another, and fsyncs once: each is delivered only after that fsync
// (a crash before it loses nothing, the queue still holds them all). A
// message that cannot be written is cut back and fails alone; one status per
// item, in order.
std::vector<DeliveryStatus> deliver_mbox_batch(const Dir& mail_dir, std::string_view mailbox,
    std::span<const MboxItem> items, const MboxOptions& options);

// Appends to `mailbox` in `mail_dir` (masqmail's mail_dir/LOCALPART).
// `mailbox` must pass is_safe_mailbox_name(). The dot-lock mailbox.lock is
// made in mail_dir when its permissions allow; where the recipient may not
// create files there (EACCES, EPERM, EROFS: the classic root:mail 2775
// /var/mail) the fcntl lock alone protects the append, as Postfix's local
// does without setgid mail.
DeliveryStatus deliver_mbox(const Dir& mail_dir, std::string_view mailbox, const MessageSource& message,
    const LocalEnvelope& envelope, const MboxOptions& options);

// The same for a mailbox given by path ("/var/mail/bob", a file alias):
// the directory is opened as written, the last component with O_NOFOLLOW.
DeliveryStatus deliver_mbox_path(const std::string& path, const MessageSource& message,
    const LocalEnvelope& envelope, const MboxOptions& options);

} // namespace mm::local
