// SPDX-License-Identifier: GPL-2.0-or-later
// Whether a recipient is local (masqmail §2.2: local_hosts, local_addresses,
// not_local_addresses, caseless_matching), safe mailbox names (user-needs A3)
// and log_user. Addresses come from untrusted senders but are already
// validated by mm/address.hh; the configuration is administrator-owned.
// Linked by qmgr (local/remote split), local-deliver and the front end.
#pragma once

#include "mm/address.hh"
#include "mm/config.hh"

#include <string>
#include <string_view>
#include <vector>

namespace mm {

// Equality for recipients: the local part byte-exact, or ASCII
// case-insensitive with caseless_local; the domain always case-insensitive.
bool same_recipient(const Address& a, const Address& b, bool caseless_local);
// A key for sets of recipients: equal exactly when same_recipient() is true.
std::string recipient_key(const Address& a, bool caseless_local);

// A domain matching one of cfg.local_hosts (fnmatch, case-insensitive).
bool is_local_domain(std::string_view domain, const config::MainConfig& cfg);

// masqmail's addr_is_local: an empty domain is always local; a domain in
// local_hosts is local unless the address is in not_local_addresses; else
// the address is local if it is in local_addresses. Local parts compare per
// caseless_matching, domains case-insensitively.
bool is_local(const Address& address, const config::MainConfig& cfg);

// A local part usable as a mailbox name (mail_dir/NAME, a user name): not
// empty, at most limits::file_name bytes, no '/', no leading '.' (so neither
// "." nor ".."), no control or 8-bit byte. Checked on every mailbox leaf (A3)
// and again by local-deliver before it opens anything.
bool is_safe_mailbox_name(std::string_view name);

// The envelope recipients of a message plus cfg.log_user (the BCC archive
// every message also goes to), unless it is one of them already. Callers
// build the recipient list of a new message with this, once, at commit.
std::vector<Address> with_log_user(std::vector<Address> recipients, const config::MainConfig& cfg);

} // namespace mm
