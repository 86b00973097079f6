// SPDX-License-Identifier: GPL-2.0-or-later
// Maildir delivery (masqmail 0.2's maildir_users, back again): write to tmp/,
// fsync, link into new/, fsync new/. Runs as the recipient; the Maildir and
// its parent may hold hostile entries, so no path component is followed as a
// symlink. Linked by local-deliver.
#pragma once

#include "delivery.hh"

#include "mm/fd.hh"

#include <string>
#include <string_view>
#include <sys/types.h>

namespace mm::local {

struct MaildirOptions {
    uid_t owner = 0; // the Maildir directory must belong to this uid
    std::string host_name; // the last part of each file name (sanitised)
};

// Delivers into the Maildir `name` under `parent` (home + "Maildir" for a
// system user, mail_dir + LOCALPART in a private instance), creating it and
// its tmp/, new/ and cur/ (0700) when missing. A symlink or a non-directory
// where a directory belongs, or a Maildir of another uid, fails; every other
// trouble (disk full, I/O error) defers.
DeliveryStatus deliver_maildir(const Dir& parent, std::string_view name, const MessageSource& message,
    const LocalEnvelope& envelope, const MaildirOptions& options);

// A unique file name "SECONDS.MmicrosPpidQcounter.HOST": '/' and ':' in the
// host become "\057" and "\072" as the Maildir specification asks.
std::string maildir_unique_name(std::string_view host_name);

} // namespace mm::local
