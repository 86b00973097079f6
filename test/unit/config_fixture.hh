// SPDX-License-Identifier: GPL-2.0-or-later
// Shared by the config, route and alias reader tests.
#pragma once

#include "mm/config_lexer.hh"

#include <string>

namespace mm::test {

// Every diagnostic in the order it was reported, one "file:line: reason" line each.
inline std::string diagnostic_lines(const config::Diagnostics& diag)
{
    std::string out;
    for (const config::Diagnostic& d : diag.entries())
        out += d.text() + "\n";
    return out;
}

} // namespace mm::test
