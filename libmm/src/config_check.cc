// SPDX-License-Identifier: GPL-2.0-or-later
// PLACEHOLDER until the configuration reader lands (being written now).
#include "mm/config_check.hh"
#include "mm/sysexits.hh"

namespace mm::config {
int check_config(const std::string& path, std::FILE* out)
{
    std::fprintf(out, "%s: configuration reader not built yet\n", path.c_str());
    return ex::software;
}
} // namespace mm::config
