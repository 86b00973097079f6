// SPDX-License-Identifier: GPL-2.0-or-later
// A test tool, not installed: sends one message from stdin over one route,
// the way a remote-deliver worker will, and prints what happened.
//   route-send MASQMAIL.CONF ROUTE_FILE SENDER RECIPIENT... < message
// Output: "server S", "tls T", "auth A", then one line per recipient:
// "delivered|deferred|failed ENHANCED REPLY". Exit 0 when it ran.
#include "mm/config.hh"
#include "mm/remote_send.hh"

#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

int main(int argc, char** argv)
{
    if (argc < 5) {
        std::fprintf(stderr, "usage: route-send MASQMAIL.CONF ROUTE_FILE SENDER RECIPIENT... < message\n");
        return 64;
    }
    std::signal(SIGPIPE, SIG_IGN);
    mm::config::Diagnostics diag;
    auto main_config = mm::config::read_main_config(argv[1], diag);
    auto route = mm::config::read_route_config(argv[2], diag);
    diag.print(stderr);
    if (!main_config || !route)
        return 78;
    mm::AddressOptions opts { .qualify_domain = main_config->host_name, .allow_null = true };
    auto sender = mm::parse_address(argv[3], opts);
    if (!sender) {
        std::fprintf(stderr, "bad sender\n");
        return 65;
    }
    mm::SendItem item;
    item.queue_id = "test";
    item.return_path = *sender;
    for (int i = 4; i < argc; ++i) {
        auto r = mm::parse_address(argv[i], opts);
        if (!r) {
            std::fprintf(stderr, "bad recipient %s\n", argv[i]);
            return 65;
        }
        item.recipients.push_back(*r);
    }
    item.content.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    mm::SendReport report = mm::send_via_route(*route, *main_config, { item }, std::chrono::seconds(10));
    std::printf("server %s\ntls %s\nauth %s\n", report.server.c_str(), report.tls.c_str(), report.auth.c_str());
    for (const auto& outcome : report.outcomes)
        for (const auto& r : outcome.recipients) {
            const char* kind = r.kind == mm::smtp::RecipientOutcome::Kind::delivered ? "delivered"
                : r.kind == mm::smtp::RecipientOutcome::Kind::failed                 ? "failed"
                                                                                     : "deferred";
            std::printf("%s %s %s\n", kind, r.enhanced.c_str(), r.reply.c_str());
        }
    return 0;
}
