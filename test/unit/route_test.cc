// SPDX-License-Identifier: GPL-2.0-or-later
// Route files: every option, defaults, legacy route options, bad values.
#include "catch.hh"
#include "config_fixture.hh"
#include "mm/route.hh"

#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace mm::config;
using mm::test::TempDir;

namespace {

struct Parsed {
    std::optional<RouteConfig> route;
    Diagnostics diag;

    std::string messages() const { return mm::test::diagnostic_lines(diag); }
};

Parsed parse(const std::string& text)
{
    Parsed p;
    p.route = parse_route_config(text, "r.route", p.diag);
    return p;
}

mm::Address address(const std::string& text)
{
    auto a = mm::parse_address(text, { .qualify_domain = "local.example" });
    REQUIRE(a);
    return *a;
}

} // namespace

TEST_CASE("route defaults")
{
    Parsed p = parse("");
    REQUIRE(p.route);
    const RouteConfig& r = *p.route;
    CHECK(r.file == "r.route");
    CHECK(
        (r.allowed_senders.empty() && r.denied_recipients.empty() && !r.last_route && !r.connect_error_fail));
    CHECK((!r.mail_host && r.smtp_port == 25));
    CHECK(r.resolve_list == std::vector<ResolveMethod> { ResolveMethod::dns_mx, ResolveMethod::byname });
    CHECK((!r.helo_name && !r.do_correct_helo && !r.instant_helo && r.do_pipelining));
    CHECK((!r.auth_name && !r.auth_login && !r.auth_secret && !r.wrapper && !r.pipe));
    CHECK((r.map_h_from_addresses.empty() && r.map_outgoing_addresses.empty()));
    CHECK((r.tls == TlsMode::opportunistic && r.tls_verify && !r.tls_ca_file && !r.tls_fingerprint));
    CHECK(p.diag.entries().empty());
}

TEST_CASE("every typed route option")
{
    Parsed p = parse("allowed_senders = \"joe@*;<>;*@example.org\"\n"
                     "denied_senders = \"spam*\"\n"
                     "allowed_recipients = \"*@remote.example\"\ndenied_recipients = \"bob@*\"\n"
                     "allowed_from_hdrs = \"*@local.example\"\ndenied_from_hdrs = \"x@y\"\n"
                     "last_route = yes\nconnect_error_fail = true\n"
                     "mail_host = \"smtp.example.org:587\"\nsmtp_port = 2525\n"
                     "resolve_list = \"byname;dns_mx\"\nhelo_name = laptop.example.org\n"
                     "do_correct_helo = yes\ninstant_helo = yes\ndo_pipelining = no\n"
                     "auth_name = CRAM-MD5\nauth_login = joe\nauth_secret = \"s3cr3t pass\"\n"
                     "wrapper = \"/usr/bin/gnutls-cli --crlf -p 465 smtp.example.org\"\n"
                     "pipe_fromline = yes\npipe_fromhack = yes\n"
                     "map_h_from_addresses = \"joe: \\\"Joe B\\\" <joe@example.org>; *: *@example.org\"\n"
                     "map_h_sender_addresses = \"joe: joe@example.org\"\n"
                     "map_h_reply_to_addresses = \"joe: joe@example.org\"\n"
                     "map_h_mail_followup_to_addresses = \"joe: joe@example.org\"\n"
                     "map_return_path_addresses = \"joe: joe@example.org\"\n"
                     "map_outgoing_addresses = \"*: *@example.org\"\n"
                     "tls = starttls\ntls_verify = no\ntls_ca_file = /etc/ssl/ca.pem\n"
                     "tls_fingerprint = \"SHA256:"
        + std::string("AB:") + std::string(62, 'c') + "\"\n");
    INFO(p.messages());
    REQUIRE(p.route);
    const RouteConfig& r = *p.route;
    REQUIRE(r.allowed_senders.size() == 3);
    CHECK((r.allowed_senders[0].local_glob == "joe" && r.allowed_senders[0].domain_glob == "*"));
    CHECK(r.allowed_senders[1].null_sender);
    CHECK((r.allowed_senders[2].local_glob == "*" && r.allowed_senders[2].domain_glob == "example.org"));
    CHECK((r.denied_senders[0].local_glob == "spam*" && r.denied_senders[0].domain_glob == "*"));
    CHECK(r.allowed_recipients[0].domain_glob == "remote.example");
    CHECK((r.denied_recipients.size() == 1 && r.allowed_from_hdrs.size() == 1
        && r.denied_from_hdrs.size() == 1));
    CHECK((r.last_route && r.connect_error_fail));
    CHECK((r.mail_host->host == "smtp.example.org" && r.mail_host->port == 587 && r.smtp_port == 2525));
    CHECK(r.resolve_list == std::vector<ResolveMethod> { ResolveMethod::byname, ResolveMethod::dns_mx });
    CHECK((*r.helo_name == "laptop.example.org" && r.do_correct_helo && r.instant_helo && !r.do_pipelining));
    CHECK((*r.auth_name == AuthMechanism::cram_md5 && *r.auth_login == "joe"
        && *r.auth_secret == "s3cr3t pass"));
    CHECK(r.wrapper->argv.size() == 5);
    CHECK((r.pipe_fromline && r.pipe_fromhack));
    REQUIRE(r.map_h_from_addresses.size() == 2);
    CHECK(r.map_h_from_addresses[0].local_glob == "joe");
    CHECK(r.map_h_from_addresses[0].replacement == "\"Joe B\" <joe@example.org>");
    CHECK(r.map_h_from_addresses[0].address.str() == "joe@example.org");
    CHECK(r.map_h_from_addresses[1].domain_only == "example.org");
    CHECK((r.map_h_sender_addresses.size() == 1 && r.map_h_reply_to_addresses.size() == 1));
    CHECK((r.map_h_mail_followup_to_addresses.size() == 1 && r.map_return_path_addresses.size() == 1));
    CHECK(r.map_outgoing_addresses[0].domain_only == "example.org");
    CHECK((r.tls == TlsMode::starttls && !r.tls_verify && *r.tls_ca_file == "/etc/ssl/ca.pem"));
    CHECK(*r.tls_fingerprint == "ab" + std::string(62, 'c'));
    CHECK(p.diag.entries().empty());
}

TEST_CASE("auth_plaintext and the OAuth2 mechanisms")
{
    Parsed p = parse("auth_name = XOAUTH2\nauth_login = joe@example.com\n"
                     "auth_secret_command = \"/usr/local/bin/token joe\"\nauth_plaintext = yes\n");
    REQUIRE(p.route);
    CHECK(*p.route->auth_name == AuthMechanism::xoauth2);
    CHECK(p.route->auth_plaintext);
    CHECK(p.messages().empty());
    CHECK_FALSE(parse("").route->auth_plaintext);

    p = parse("auth_name = oauthbearer\nauth_login = joe\nauth_secret = token\n");
    REQUIRE(p.route);
    CHECK(*p.route->auth_name == AuthMechanism::oauthbearer);
    CHECK_THAT(p.messages(), Catch::Contains("auth_secret_command"));

    p = parse("tls = none\nauth_plaintext = true\nauth_login = joe\nauth_secret = pw\n");
    REQUIRE(p.route);
    CHECK_THAT(p.messages(), Catch::Contains("clear text"));

    p = parse("auth_name = gssapi\n");
    CHECK_FALSE(p.route);
    CHECK_THAT(p.messages(), Catch::Contains("xoauth2"));
}

TEST_CASE("route TLS default follows the port and the wrapper")
{
    CHECK(parse("mail_host = smtp.example:465\n").route->tls == TlsMode::implicit);
    CHECK(parse("mail_host = smtp.example:587\n").route->tls == TlsMode::opportunistic);
    CHECK(parse("mail_host = smtp.example:465\ntls = none\n").route->tls == TlsMode::none);
    CHECK(
        parse("wrapper = \"/usr/bin/openssl s_client -quiet -connect h:465\"\n").route->tls == TlsMode::none);
    CHECK(parse("tls = IMPLICIT\n").route->tls == TlsMode::implicit);
    CHECK(parse("tls = opportunistic\n").route->tls == TlsMode::opportunistic);
}

TEST_CASE("bad route values give file:line reasons")
{
    struct Case {
        std::string text;
        std::string message;
    };
    std::vector<Case> cases {
        { "resolve_list = \"dns_mx;dns_srv\"",
            "r.route:1: 'resolve_list': unknown resolve method 'dns_srv'" },
        { "auth_name = digest-md5", "r.route:1: 'auth_name': unknown mechanism 'digest-md5'" },
        { "tls = yes", "r.route:1: 'tls': unknown TLS mode 'yes'" },
        { "tls_fingerprint = abc", "r.route:1: 'tls_fingerprint': not a SHA-256 fingerprint" },
        { "smtp_port = 0", "r.route:1: 'smtp_port': not a number from 1 to 65535: '0'" },
        { "mail_host = \"a b\"", "r.route:1: 'mail_host': bad host name" },
        { "map_h_from_addresses = \"joe: joe\"",
            "r.route:1: 'map_h_from_addresses': replacement 'joe' lacks domain" },
        { "map_return_path_addresses = \"joe joe@x.org\"",
            "r.route:1: 'map_return_path_addresses': rewrite entry" },
        { "map_outgoing_addresses = \"*: *@bad..domain\"",
            "r.route:1: 'map_outgoing_addresses': bad domain" },
        { "map_outgoing_addresses = \"*: a@b@c\"",
            "r.route:1: 'map_outgoing_addresses': bad replacement address" },
        { "allowed_senders = \"@example.org\"", "r.route:1: 'allowed_senders': empty local part" },
        { "denied_recipients = \"bob@\"", "r.route:1: 'denied_recipients': empty domain" },
        { "pipe = \"procmail\"", "r.route:1: 'pipe': command must start with an absolute path" },
        { "last_route = 1", "r.route:1: 'last_route': not a boolean: '1'" },
        { "auth_secret = \"a\nb\"", "r.route:1: 'auth_secret': control character in value" },
        { "auth_login = a\nauth_secret = b\nauth_secret_file = /s",
            "r.route: only one of 'auth_secret', 'auth_secret_file' and 'auth_secret_command' may be set" },
    };
    for (const Case& c : cases) {
        Parsed p = parse(c.text + "\n");
        INFO(c.text << "\n" << p.messages());
        CHECK_FALSE(p.route);
        CHECK(p.messages().rfind(c.message, 0) == 0);
    }
}

TEST_CASE("dns_a is read as dns_mx with a warning")
{
    Parsed p = parse("resolve_list = \"dns_a;dns_mx;byname\"\n");
    REQUIRE(p.route);
    CHECK(
        p.route->resolve_list == std::vector<ResolveMethod> { ResolveMethod::dns_mx, ResolveMethod::byname });
    CHECK(p.diag.warning_count() == 1);
}

TEST_CASE("legacy route options are mapped with warnings")
{
    Parsed p = parse(
        "protocol = smtp\ndo_ssl = yes\n"
        "allowed_mail_locals = \"joe;ann\"\nnot_allowed_mail_locals = root\n"
        "allowed_rcpt_domains = \"example.org;*.example.net\"\nnot_allowed_rcpt_domains = bad.example\n"
        "set_h_from_domain = example.org\nset_h_reply_to_domain = example.org\n"
        "set_return_path_domain = bounce.example.org\n"
        "expand_h_sender_domain = yes\nexpand_h_sender_address = no\npop3_login = x\n");
    INFO(p.messages());
    REQUIRE(p.route);
    const RouteConfig& r = *p.route;
    REQUIRE(r.allowed_senders.size() == 2);
    CHECK((r.allowed_senders[1].local_glob == "ann" && r.allowed_senders[1].domain_glob == "*"));
    CHECK(r.denied_senders[0].local_glob == "root");
    REQUIRE(r.allowed_recipients.size() == 2);
    CHECK((
        r.allowed_recipients[1].local_glob == "*" && r.allowed_recipients[1].domain_glob == "*.example.net"));
    CHECK(r.denied_recipients[0].domain_glob == "bad.example");
    REQUIRE(r.map_h_from_addresses.size() == 1);
    CHECK((r.map_h_from_addresses[0].local_glob == "*"
        && r.map_h_from_addresses[0].domain_only == "example.org"));
    CHECK(r.map_h_reply_to_addresses[0].domain_only == "example.org");
    CHECK(r.map_return_path_addresses[0].domain_only == "bounce.example.org");
    CHECK(p.diag.warning_count() == 12);
    CHECK(p.diag.entries()[0].text()
        == "r.route:1: 'protocol' is deprecated and ignored: a route delivers by "
           "SMTP unless 'pipe' is set, which makes it a pipe route");
    CHECK(p.diag.entries()[2].text().starts_with(
        "r.route:3: 'allowed_mail_locals' is deprecated, use 'allowed_senders'"));
    CHECK(p.diag.entries()[4].text().starts_with(
        "r.route:5: 'allowed_rcpt_domains' is deprecated, use 'allowed_recipients'"));
    CHECK(p.diag.entries()[6].text()
        == "r.route:7: 'set_h_from_domain' is deprecated, use 'map_h_from_addresses'; read as "
           "map_h_from_addresses = \"*: *@example.org\"");
    CHECK(p.diag.entries()[9].text().starts_with(
        "r.route:10: 'expand_h_sender_domain' is deprecated and ignored: "));
    CHECK_FALSE(parse("allowed_return_paths = \"@x\"\n").route);
    Parsed paths = parse("allowed_return_paths = \"a@x\"\nnot_allowed_return_paths = \"b@y\"\n");
    REQUIRE(paths.route);
    CHECK((paths.route->allowed_senders[0].domain_glob == "x"
        && paths.route->denied_senders[0].local_glob == "b"));
    CHECK_FALSE(parse("set_h_from_domain = \"not a domain\"\n").route);
}

TEST_CASE("address globs: null sender, last '@', case of local part and domain")
{
    auto glob = [](const char* text) { return *parse_address_glob(text); };
    mm::Address null;
    CHECK(glob("<>").matches(null, false));
    CHECK_FALSE(glob("<>").matches(address("joe@example.org"), false));
    CHECK_FALSE(glob("joe@*").matches(null, false));
    CHECK(glob("*").matches(null, false));
    CHECK(glob("joe@*.ORG").matches(address("joe@example.org"), false));
    CHECK_FALSE(glob("Joe@*").matches(address("joe@example.org"), false));
    CHECK(glob("Joe@*").matches(address("joe@example.org"), true));
    AddressGlob last = glob("\"a@b\"@example.org");
    CHECK((last.local_glob == "\"a@b\"" && last.domain_glob == "example.org"));
}

TEST_CASE("read_route_config: missing file, world-readable secret")
{
    TempDir t;
    Diagnostics diag;
    CHECK_FALSE(read_route_config(t.file("none.route"), diag));
    CHECK(diag.entries()[0].text() == t.file("none.route") + ": cannot read: No such file or directory");
    std::string path = t.file("s.route");
    std::ofstream(path) << "auth_login = joe\nauth_secret = pw\n";
    ::chmod(path.c_str(), 0644);
    Diagnostics warned;
    REQUIRE(read_route_config(path, warned));
    REQUIRE(warned.warning_count() == 1);
    CHECK(
        warned.entries()[0].text() == path + ": holds 'auth_secret' but is readable by everyone (chmod o-r)");
    ::chmod(path.c_str(), 0600);
    Diagnostics quiet;
    REQUIRE(read_route_config(path, quiet));
    CHECK(quiet.entries().empty());
    ::chmod(path.c_str(), 0602);
    Diagnostics writable;
    CHECK_FALSE(read_route_config(path, writable));
    REQUIRE(writable.error_count() == 1);
    CHECK(writable.entries()[0].text() == path + ": is writable by everyone (chmod o-w)");
}
