// SPDX-License-Identifier: GPL-2.0-or-later
// A test tool, not installed: where direct delivery to a domain would go,
// as remote-deliver resolves it, with the config's dns_server.
//   mx-lookup MASQMAIL.CONF DOMAIN [RESOLVE_LIST [TIMEOUT_MS]]
// RESOLVE_LIST as a route's resolve_list (default "dns_mx;byname"), TIMEOUT_MS
// per query (default 5000). Output: one line per host, "PREFERENCE HOST
// ADDRESS...", exit 0; or "temporary|permanent STATUS MESSAGE" and the
// error's sysexits code (75 or 65); 64 for bad usage, 78 for a bad config.
#include "mm/config.hh"
#include "mm/cursor.hh"
#include "mm/mx_resolve.hh"
#include "mm/route.hh"

#include <cstdio>
#include <string>

int main(int argc, char** argv)
{
    if (argc < 3 || argc > 5) {
        std::fprintf(stderr, "usage: mx-lookup MASQMAIL.CONF DOMAIN [RESOLVE_LIST [TIMEOUT_MS]]\n");
        return 64;
    }
    mm::config::Diagnostics diag;
    auto main_config = mm::config::read_main_config(argv[1], diag);
    std::string list = argc > 3 ? argv[3] : "dns_mx;byname";
    auto route = mm::config::parse_route_config("resolve_list = \"" + list + "\"\n", "argv", diag);
    diag.print(stderr);
    if (!main_config || !route)
        return 78;
    auto timeout = mm::parse_decimal<unsigned>(argc > 4 ? argv[4] : "5000");
    if (!timeout) {
        std::fprintf(stderr, "mx-lookup: bad timeout\n");
        return 64;
    }
    auto found = mm::resolve_mail_exchangers(argv[2], route->resolve_list, main_config->dns_server,
        std::chrono::milliseconds(*timeout));
    if (!found) {
        const mm::Error& e = found.error();
        std::printf("%s %s %s\n", e.kind() == mm::ErrorKind::permanent ? "permanent" : "temporary",
            e.enhanced_code(), e.message().c_str());
        return e.exit_code();
    }
    for (const mm::MailExchanger& mx : *found) {
        std::printf("%u %s", static_cast<unsigned>(mx.preference), mx.host.c_str());
        for (const std::string& a : mx.addresses)
            std::printf(" %s", a.c_str());
        std::printf("\n");
    }
    return 0;
}
