// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail --check-config: reads masqmail.conf, every route file it names and
// the alias files, and reports every problem as "file:line: reason".
// Linked by the front end; reads only administrator-owned files.
#pragma once

#include <cstdio>
#include <string>

namespace mm::config {

// Prints every error and warning to `out`; returns 0 when there is no error
// and 78 (EX_CONFIG) otherwise.
int check_config(const std::string& path, std::FILE* out);

} // namespace mm::config
