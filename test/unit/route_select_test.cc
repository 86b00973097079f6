// SPDX-License-Identifier: GPL-2.0-or-later
// Route choice (masqmail §3.1, §3.2) and online detection.
#include "catch.hh"
#include "config_fixture.hh"
#include "mm/route_select.hh"

#include <fstream>

using namespace mm::config;
using mm::test::TempDir;

namespace {

void write(const std::string& path, const std::string& text)
{
    std::ofstream(path) << text;
}

mm::Address address(const std::string& text)
{
    auto a = mm::parse_address(text, { .qualify_domain = "laptop.example", .allow_null = true });
    REQUIRE(a);
    return *a;
}

RouteConfig route(const std::string& text, const std::string& name = "r.route")
{
    Diagnostics diag;
    auto r = parse_route_config(text, name, diag);
    INFO(mm::test::diagnostic_lines(diag));
    REQUIRE(r);
    return *r;
}

mm::MessageFacts facts(const std::string& sender, std::optional<std::string> from = std::nullopt)
{
    mm::MessageFacts m { address(sender), std::nullopt, false };
    if (from)
        m.from_header = address(*from);
    return m;
}

// "route-file: recipient indices" for each offer.
std::vector<std::string> describe(const std::vector<mm::RouteOffer>& offers)
{
    std::vector<std::string> out;
    for (const auto& o : offers) {
        std::string s = o.route->file + ":";
        for (std::size_t i : o.recipients)
            s += " " + std::to_string(i);
        out.push_back(s);
    }
    return out;
}

} // namespace

TEST_CASE("plan: permanent routes first, then the online connection's; unknown names and bad files")
{
    TempDir t;
    write(t.file("lan.route"), "allowed_recipients = \"*@lan.example\"\n");
    write(t.file("isp1.route"), "mail_host = \"smtp.isp1.example:587\"\n");
    write(t.file("isp1b.route"), "mail_host = \"backup.isp1.example\"\n");
    write(t.file("bad.route"), "tls = sometimes\n");
    Diagnostics diag;
    std::string conf = "host_name = laptop.example\npermanent_routes = \"" + t.file("lan.route") + ";" + t.file("bad.route") + "\"\n"
        + "query_routes.isp1 = \"" + t.file("isp1.route") + ";" + t.file("isp1b.route") + "\"\n";
    auto main = parse_main_config(conf, "masqmail.conf", diag);
    INFO(mm::test::diagnostic_lines(diag));
    REQUIRE(main);

    auto offline = mm::plan_routes(*main, std::nullopt, diag);
    REQUIRE(offline.routes.size() == 1);
    CHECK(offline.routes[0].file == t.file("lan.route"));
    CHECK(offline.unreadable == std::vector<std::string> { t.file("bad.route") });
    CHECK_THAT(mm::test::diagnostic_lines(diag), Catch::Contains("bad.route:1"));

    auto online = mm::plan_routes(*main, std::string("isp1"), diag);
    REQUIRE(online.routes.size() == 3);
    CHECK(online.routes[1].file == t.file("isp1.route"));
    CHECK(online.routes[2].file == t.file("isp1b.route"));
    CHECK_FALSE(online.unknown_connection);

    auto unknown = mm::plan_routes(*main, std::string("isp2"), diag);
    CHECK(unknown.unknown_connection);
    CHECK(unknown.routes.size() == 1);
}

TEST_CASE("offers: recipient filters, sender and From filters, the null sender, last_route")
{
    std::vector<RouteConfig> routes = {
        route("allowed_recipients = \"*@lan.example\"\nlast_route = true\n", "lan"),
        route("denied_recipients = \"secret@*\"\n", "isp"),
        route("allowed_senders = \"<>;postmaster@*\"\n", "bounces"),
        route("allowed_from_hdrs = \"*@laptop.example\"\n", "from"),
    };
    std::vector<mm::Address> rcpts
        = { address("a@lan.example"), address("b@example.org"), address("secret@example.org") };

    // lan takes 0 (and keeps it from the others); isp takes 1; bounces none;
    // from needs a From: that matches, and with none it takes what is left.
    CHECK(describe(mm::offer_routes(routes, facts("joe"), rcpts, false))
        == std::vector<std::string> { "lan: 0", "isp: 1", "from: 1 2" });
    CHECK(describe(mm::offer_routes(routes, facts("<>"), rcpts, false))
        == std::vector<std::string> { "lan: 0", "isp: 1", "bounces: 1 2", "from: 1 2" });
    CHECK(describe(mm::offer_routes(routes, facts("joe", "joe@elsewhere.example"), rcpts, false))
        == std::vector<std::string> { "lan: 0", "isp: 1" });
    mm::MessageFacts broken = facts("joe");
    broken.from_header_unparsable = true;
    CHECK(describe(mm::offer_routes(routes, broken, rcpts, false))
        == std::vector<std::string> { "lan: 0", "isp: 1" });

    CHECK(mm::route_refusal(routes[2], facts("joe"), rcpts[1], false).find("sender") != std::string::npos);
    CHECK(mm::route_refusal(routes[1], facts("joe"), rcpts[2], false).find("recipient") != std::string::npos);
    CHECK(mm::route_refusal(routes[1], facts("joe"), rcpts[1], false).empty());
}

TEST_CASE("offers: local parts match case-sensitively unless caseless, domains never")
{
    std::vector<RouteConfig> routes = { route("allowed_recipients = \"Bob@Example.ORG\"\n", "r") };
    std::vector<mm::Address> rcpts = { address("bob@example.org"), address("Bob@example.org") };
    CHECK(describe(mm::offer_routes(routes, facts("joe"), rcpts, false)) == std::vector<std::string> { "r: 1" });
    CHECK(describe(mm::offer_routes(routes, facts("joe"), rcpts, true)) == std::vector<std::string> { "r: 0 1" });
}

TEST_CASE("online_query: the first line trimmed; nothing, failure or timeout is offline")
{
    using namespace std::chrono_literals;
    std::string why;
    CHECK(mm::query_online({ "", { "/bin/echo", "  isp1  " } }, 5s, &why) == "isp1");
    CHECK(mm::query_online({ "", { "/usr/bin/printf", "isp2\\nsecond line\\n" } }, 5s, &why) == "isp2");
    CHECK_FALSE(mm::query_online({ "", { "/bin/true" } }, 5s, &why));
    CHECK_THAT(why, Catch::Contains("nothing"));
    CHECK_FALSE(mm::query_online({ "", { "/bin/false" } }, 5s, &why));
    CHECK_THAT(why, Catch::Contains("exit 1"));
    CHECK_FALSE(mm::query_online({ "", { "/bin/sleep", "10" } }, 200ms, &why));
    CHECK_THAT(why, Catch::Contains("did not answer"));
    CHECK_FALSE(mm::query_online({ "", { "/nonexistent/prog" } }, 5s, &why));
    CHECK_FALSE(mm::query_online({ "", { "echo", "x" } }, 5s, &why));
    // No shell: metacharacters are plain arguments.
    CHECK(mm::query_online({ "", { "/bin/echo", "a;b", "$(id)" } }, 5s, &why) == "a;b $(id)");
}

TEST_CASE("plan: masqmail 0.3's local_net_route takes only the recipients of local_nets")
{
    TempDir t;
    write(t.file("lan.route"), "mail_host = server.home.arpa\n");
    write(t.file("own.route"), "allowed_recipients = \"*@printer.home.arpa\"\n");
    Diagnostics diag;
    std::string conf = "host_name = dialup.home.arpa\nlocal_nets = \"*.home.arpa;home.arpa\"\n"
                       "local_net_route = \""
        + t.file("lan.route") + ";" + t.file("own.route") + "\"\n";
    auto main = parse_main_config(conf, "masqmail.conf", diag);
    INFO(mm::test::diagnostic_lines(diag));
    REQUIRE(main);
    auto plan = mm::plan_routes(*main, std::nullopt, diag);
    REQUIRE(plan.routes.size() == 2);
    std::vector<mm::Address> rcpts { address("alice@server.home.arpa"), address("friend@example.org"),
        address("bob@home.arpa") };
    CHECK(describe(mm::offer_routes(plan.routes, facts("joe"), rcpts, false))
        == std::vector<std::string> { t.file("lan.route") + ": 0 2" });
    // A route file with an allowed_recipients of its own keeps it.
    REQUIRE(plan.routes[1].allowed_recipients.size() == 1);
    CHECK(plan.routes[1].allowed_recipients[0].domain_glob == "printer.home.arpa");

    // Without local_nets, local_net_route is a plain permanent route.
    auto all = parse_main_config(
        "host_name = dialup.home.arpa\nlocal_net_route = \"" + t.file("lan.route") + "\"\n", "masqmail.conf",
        diag);
    REQUIRE(all);
    auto open = mm::plan_routes(*all, std::nullopt, diag);
    CHECK(describe(mm::offer_routes(open.routes, facts("joe"), rcpts, false))
        == std::vector<std::string> { t.file("lan.route") + ": 0 1 2" });
}
