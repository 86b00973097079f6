// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for the configuration readers. The first byte chooses the
// reader (0 masqmail.conf, 1 route file, 2 plain alias file, 3 glob alias
// file, modulo 4); the rest is the file's text. Checks that a reader returns
// a value exactly when it reported no error, and that lookups work on it.
#include "mm/alias.hh"
#include "mm/config.hh"
#include "mm/route.hh"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

using namespace mm::config;

void require(bool condition, const char* what)
{
    if (!condition) {
        std::fprintf(stderr, "config_fuzz: %s\n", what);
        std::abort();
    }
}

void check_alias(std::string_view text, AliasFileKind kind)
{
    Diagnostics diag;
    std::optional<AliasTable> table = parse_alias_table(text, "fuzz-aliases", kind, "fuzz.example", diag);
    require(table.has_value() == !diag.has_errors(), "alias table without error report");
    if (!table)
        return;
    for (const char* recipient : { "postmaster@fuzz.example", "root@fuzz.example", "a@b.example" }) {
        mm::Result<mm::Address> address = mm::parse_address(recipient, {});
        if (address)
            (void)table->find(*address, false), (void)table->find(*address, true);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return 0;
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    Diagnostics diag;
    switch (data[0] % 4) {
    case 0: {
        std::optional<MainConfig> config = parse_main_config(text, "fuzz.conf", diag);
        require(config.has_value() == !diag.has_errors(), "main config without error report");
        break;
    }
    case 1: {
        std::optional<RouteConfig> route = parse_route_config(text, "fuzz.route", diag);
        require(route.has_value() == !diag.has_errors(), "route without error report");
        break;
    }
    case 2:
        check_alias(text, AliasFileKind::plain);
        break;
    default:
        check_alias(text, AliasFileKind::glob);
        break;
    }
    for (const Diagnostic& d : diag.entries())
        (void)d.text();
    return 0;
}
