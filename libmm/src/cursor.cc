// SPDX-License-Identifier: GPL-2.0-or-later
// Cursor helpers. Linked by every process.
#include "mm/cursor.hh"

namespace mm {

bool equals_nocase(std::string_view a, std::string_view b)
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

bool Cursor::consume_nocase(std::string_view s)
{
    if (!equals_nocase(rest().substr(0, s.size()), s))
        return false;
    pos_ += s.size();
    return true;
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && is_ascii_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_ascii_space(s.back()))
        s.remove_suffix(1);
    return s;
}

} // namespace mm
