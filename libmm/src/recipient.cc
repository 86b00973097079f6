// SPDX-License-Identifier: GPL-2.0-or-later
// Recipient locality and mailbox-name safety. Addresses are validated but come
// from untrusted senders; configuration is administrator-owned. Linked by
// qmgr, local-deliver and the front end.
#include "mm/recipient.hh"

#include "mm/cursor.hh"
#include "mm/limits.hh"

#include <fnmatch.h>
#include <string>

namespace mm {

namespace {

bool in_list(const Address& address, const std::vector<Address>& list, bool caseless_local)
{
    for (const Address& entry : list)
        if (same_recipient(address, entry, caseless_local))
            return true;
    return false;
}

} // namespace

bool same_recipient(const Address& a, const Address& b, bool caseless_local)
{
    bool local_equal
        = caseless_local ? equals_nocase(a.local_part(), b.local_part()) : a.local_part() == b.local_part();
    return local_equal && equals_nocase(a.domain(), b.domain());
}

std::string recipient_key(const Address& a, bool caseless_local)
{
    std::string key(a.local_part());
    if (caseless_local)
        for (char& c : key)
            c = ascii_lower(c);
    key += '@';
    for (char c : a.domain())
        key += ascii_lower(c);
    return key;
}

bool is_local_domain(std::string_view domain, const config::MainConfig& cfg)
{
    std::string text(domain);
    for (const std::string& pattern : cfg.local_hosts)
        if (fnmatch(pattern.c_str(), text.c_str(), FNM_CASEFOLD) == 0)
            return true;
    return false;
}

bool is_local(const Address& address, const config::MainConfig& cfg)
{
    if (address.domain().empty())
        return true;
    if (is_local_domain(address.domain(), cfg))
        return !in_list(address, cfg.not_local_addresses, cfg.caseless_matching);
    return in_list(address, cfg.local_addresses, cfg.caseless_matching);
}

bool is_safe_mailbox_name(std::string_view name)
{
    if (name.empty() || name.size() > limits::file_name || name.front() == '.')
        return false;
    for (char c : name) {
        auto byte = static_cast<unsigned char>(c);
        if (c == '/' || byte < 0x20 || byte >= 0x7f)
            return false;
    }
    return true;
}

std::vector<Address> with_log_user(std::vector<Address> recipients, const config::MainConfig& cfg)
{
    if (cfg.log_user && !in_list(*cfg.log_user, recipients, cfg.caseless_matching))
        recipients.push_back(*cfg.log_user);
    return recipients;
}

} // namespace mm
