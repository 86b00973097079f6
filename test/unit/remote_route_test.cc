// SPDX-License-Identifier: GPL-2.0-or-later
// A route file's meaning for one SMTP connection: session options, TLS
// checks, and credentials from each secret source.
#include "catch.hh"
#include "config_fixture.hh"

#include "mm/remote_route.hh"

#include <fstream>
#include <sys/stat.h>

using namespace mm::config;
using mm::test::TempDir;

namespace {

RouteConfig route(const std::string& text)
{
    Diagnostics diag;
    auto r = parse_route_config(text, "r.route", diag);
    INFO(mm::test::diagnostic_lines(diag));
    REQUIRE(r);
    return *r;
}

MainConfig main_config()
{
    Diagnostics diag;
    auto m = parse_main_config("host_name = laptop.example\n", "masqmail.conf", diag);
    REQUIRE(m);
    return *m;
}

} // namespace

TEST_CASE("client options: HELO name, pipelining, instant HELO, TLS policy per route")
{
    MainConfig main = main_config();
    auto o = mm::client_options(route(""), main, "mx:25");
    CHECK(o.helo_name == "laptop.example");
    CHECK(o.pipelining);
    CHECK(o.tls == mm::smtp::TlsPolicy::opportunistic);
    CHECK_FALSE(o.auth_plaintext);
    o = mm::client_options(route("helo_name = out.example\ndo_pipelining = no\ninstant_helo = yes\ntls = starttls\n"
                                 "auth_plaintext = yes\n"),
        main, "mx:25");
    CHECK(o.helo_name == "out.example");
    CHECK_FALSE(o.pipelining);
    CHECK(o.instant_helo);
    CHECK(o.tls == mm::smtp::TlsPolicy::required);
    CHECK(o.auth_plaintext);
    CHECK(mm::client_options(route("tls = none\n"), main, "x").tls == mm::smtp::TlsPolicy::none);
    RouteConfig smtps = route("mail_host = smtp.example.net:465\n");
    CHECK(mm::implicit_tls(smtps));
    CHECK(mm::client_options(smtps, main, "x").tls == mm::smtp::TlsPolicy::none);
    CHECK_FALSE(mm::implicit_tls(route("mail_host = smtp.example.net:587\n")));
}

TEST_CASE("TLS options: name, CA file, pin, verify = no")
{
    auto t = mm::tls_options(route("tls_ca_file = /etc/ssl/my-ca.pem\n"), "smtp.example.net");
    REQUIRE(t);
    CHECK(t->server_name == "smtp.example.net");
    CHECK(t->verify);
    CHECK(t->ca_file == "/etc/ssl/my-ca.pem");
    CHECK_FALSE(t->fingerprint);
    t = mm::tls_options(route("tls_fingerprint = sha256:" + std::string(64, 'A') + "\ntls_verify = no\n"), "h");
    REQUIRE(t);
    REQUIRE(t->fingerprint);
    CHECK((*t->fingerprint)[0] == 0xaa);
    CHECK_FALSE(t->verify);
}

TEST_CASE("credentials: none, inline, file (owner-only), command")
{
    TempDir dir;
    CHECK_FALSE(*mm::route_credentials(route("")));
    CHECK_FALSE(*mm::route_credentials(route("auth_secret = pw\n")));

    auto c = mm::route_credentials(route("auth_login = joe\nauth_secret = \"s3 cret\"\nauth_name = login\n"));
    REQUIRE(c);
    REQUIRE(*c);
    CHECK((*c)->login == "joe");
    CHECK((*c)->secret == "s3 cret");
    CHECK((*c)->mechanism == mm::smtp::AuthMechanism::login);

    std::string file = dir.file("secret");
    std::ofstream(file) << "from-file\nsecond line\n";
    ::chmod(file.c_str(), 0600);
    c = mm::route_credentials(route("auth_login = joe\nauth_secret_file = " + file + "\n"));
    REQUIRE(c);
    CHECK((*c)->secret == "from-file");
    CHECK_FALSE((*c)->mechanism);

    ::chmod(file.c_str(), 0640);
    c = mm::route_credentials(route("auth_login = joe\nauth_secret_file = " + file + "\n"));
    REQUIRE_FALSE(c);
    CHECK(c.error().is_temporary());
    CHECK_THAT(c.error().message(), Catch::Contains("readable by group or others"));
    CHECK_THAT(c.error().message(), !Catch::Contains("from-file"));

    c = mm::route_credentials(route("auth_login = joe\nauth_secret_file = " + dir.file("missing") + "\n"));
    REQUIRE_FALSE(c);
    CHECK(c.error().is_temporary());

    c = mm::route_credentials(route("auth_login = joe\nauth_name = xoauth2\n"
                                    "auth_secret_command = \"/bin/echo ya29.token\"\n"));
    REQUIRE(c);
    CHECK((*c)->secret == "ya29.token");
    CHECK((*c)->mechanism == mm::smtp::AuthMechanism::xoauth2);

    c = mm::route_credentials(route("auth_login = joe\nauth_secret_command = /bin/false\n"));
    REQUIRE_FALSE(c);
    CHECK(c.error().is_temporary());
    CHECK_THAT(c.error().message(), Catch::Contains("auth_secret_command"));
}
