// SPDX-License-Identifier: GPL-2.0-or-later
// Bounces and delay warnings: the RFC 3464 report parsed back part by part,
// never bouncing a bounce, hostile diagnostics and originals, masqmail
// templates, and the warning/expiry schedule of masqmail's t310.
#include "catch.hh"
#include "mm/dsn.hh"
#include "mm/limits.hh"

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

using mm::DsnAction;
using mm::DsnInput;
using mm::DsnKind;
using mm::DsnNotSent;
using mm::DsnRecipient;
using namespace std::chrono_literals;

namespace {

const std::string queue_id = "1700000000.0123456789abcdef";
const std::string original = "From: Alice <alice@example.org>\nTo: bob@example.net\nSubject: hello\n"
                             "Message-ID: <m1@example.org>\n\nHello Bob,\n\nthe body.\n";

mm::Address addr(std::string_view text)
{
    auto a = mm::parse_path(text, mm::AddressOptions { {}, true });
    REQUIRE(a);
    return *a;
}

void use_utc()
{
    setenv("TZ", "UTC", 1);
    tzset();
}

DsnInput failure_input()
{
    use_utc();
    DsnInput in;
    in.kind = DsnKind::failure;
    in.host_name = "mx.example.org";
    in.reporting_mta_version = "masqmail 1.1";
    in.original_queue_id = queue_id;
    in.original_sender = addr("<alice@example.org>");
    in.arrival_time = 1700000000;
    in.now = 1700003600;
    DsnRecipient bob { addr("<bob@example.net>"), "rfc822;Bob@Example.NET", "5.1.1", DsnAction::failed,
        "smtp; 550 5.1.1 <bob@example.net>: no such user", "smtp.example.net", 1700003000, 0 };
    DsnRecipient carol { addr("<carol@example.org>"), "", "5.2.2", DsnAction::failed, "x-local; mailbox full",
        "", 1700003500, 0 };
    in.recipients = { bob, carol };
    in.original_content = original;
    in.include_limit = 1 << 20;
    return in;
}

DsnInput delay_input()
{
    DsnInput in = failure_input();
    in.kind = DsnKind::delay;
    in.recipients.resize(1);
    in.recipients[0].action = DsnAction::delayed;
    in.recipients[0].status = "4.4.1";
    in.recipients[0].diagnostic = "smtp; 451 4.4.1 try later";
    in.recipients[0].will_retry_until = 1700345600;
    return in;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

// Header-style fields, folded lines joined.
Fields parse_fields(std::string_view text)
{
    Fields f;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        std::string line(text.substr(pos, end - pos));
        pos = end == std::string_view::npos ? text.size() : end + 1;
        if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
            REQUIRE(!f.empty());
            f.back().second += line;
            continue;
        }
        std::size_t colon = line.find(':');
        REQUIRE(colon != std::string::npos);
        std::string value = line.substr(colon + 1);
        f.emplace_back(line.substr(0, colon), value.substr(value.find_first_not_of(' ')));
    }
    return f;
}

std::vector<std::string> all(const Fields& f, std::string_view name)
{
    std::vector<std::string> v;
    for (const auto& [n, value] : f)
        if (n == name)
            v.push_back(value);
    return v;
}

std::string one(const Fields& f, std::string_view name)
{
    auto v = all(f, name);
    REQUIRE(v.size() == 1);
    return v[0];
}

struct Part {
    Fields head;
    std::string body;
};

struct Report {
    Fields headers;
    std::string boundary;
    std::vector<Part> parts;
};

// A strict multipart parse: delimiter lines only, closed exactly once at the end.
Report parse_report(const std::string& content)
{
    Report r;
    r.headers = parse_fields(mm::header_section(content));
    std::string ct = one(r.headers, "Content-Type");
    REQUIRE(ct.starts_with("multipart/report; report-type=delivery-status;"));
    std::size_t b = ct.find("boundary=\"");
    REQUIRE(b != std::string::npos);
    r.boundary = ct.substr(b + 10, ct.find('"', b + 10) - b - 10);
    REQUIRE(!r.boundary.empty());
    REQUIRE(r.boundary.size() <= 70);
    std::string_view body = mm::body_section(content);
    std::vector<std::string> texts;
    bool closed = false;
    std::size_t pos = 0;
    while (pos < body.size()) {
        std::size_t end = body.find('\n', pos);
        REQUIRE(end != std::string_view::npos);
        std::string_view line = body.substr(pos, end - pos);
        pos = end + 1;
        REQUIRE(!closed);
        if (line == "--" + r.boundary)
            texts.emplace_back();
        else if (line == "--" + r.boundary + "--")
            closed = true;
        else if (!texts.empty())
            texts.back() += std::string(line) + "\n";
    }
    REQUIRE(closed);
    for (auto& t : texts) {
        REQUIRE(t.ends_with("\n")); // the LF before a delimiter belongs to it
        t.pop_back();
        r.parts.push_back({ parse_fields(mm::header_section(t)), std::string(mm::body_section(t)) });
    }
    return r;
}

// Per-message fields, then one group per recipient.
std::vector<Fields> status_groups(const std::string& body)
{
    std::vector<Fields> groups;
    std::size_t pos = 0;
    while (pos < body.size()) {
        std::size_t end = body.find("\n\n", pos);
        std::string group = body.substr(pos, end == std::string::npos ? std::string::npos : end + 1 - pos);
        groups.push_back(parse_fields(group));
        pos = end == std::string::npos ? body.size() : end + 2;
    }
    return groups;
}

mm::GeneratedMessage built(const DsnInput& in)
{
    auto r = mm::build_dsn(in);
    REQUIRE(r);
    REQUIRE(r->sent());
    return *r->message;
}

void check_lines_bounded(const std::string& content)
{
    std::size_t pos = 0;
    while (pos < content.size()) {
        std::size_t end = content.find('\n', pos);
        REQUIRE(end != std::string::npos);
        CHECK(end - pos <= 998);
        pos = end + 1;
    }
}

} // namespace

TEST_CASE("failure report: envelope, headers and three parts")
{
    auto msg = built(failure_input());
    CHECK(msg.sender.is_null());
    CHECK(msg.recipient == addr("<alice@example.org>"));
    CHECK(!msg.eight_bit);
    auto r = parse_report(msg.content);
    CHECK(one(r.headers, "From") == "Mail Delivery System <MAILER-DAEMON@mx.example.org>");
    CHECK(one(r.headers, "To") == "alice@example.org");
    CHECK(one(r.headers, "Subject") == "Undelivered Mail Returned to Sender");
    CHECK(one(r.headers, "Date") == "Tue, 14 Nov 2023 23:13:20 +0000");
    CHECK(one(r.headers, "Auto-Submitted") == "auto-replied");
    CHECK(one(r.headers, "MIME-Version") == "1.0");
    std::string mid = one(r.headers, "Message-ID");
    CHECK(mid.starts_with("<dsn.f." + queue_id + ".1700003600."));
    CHECK(mid.ends_with("@mx.example.org>"));
    REQUIRE(r.parts.size() == 3);
    CHECK(one(r.parts[0].head, "Content-Type") == "text/plain; charset=us-ascii");
    CHECK(r.parts[0].body.find("\n<bob@example.net> (original recipient: rfc822;Bob@Example.NET):\n"
                               "    smtp; 550 5.1.1 <bob@example.net>: no such user\n")
        != std::string::npos);
    CHECK(r.parts[0].body.find("\n<carol@example.org>:\n    x-local; mailbox full\n") != std::string::npos);
    CHECK(r.parts[0].body.find("postmaster") != std::string::npos);
    CHECK(one(r.parts[1].head, "Content-Type") == "message/delivery-status");
    CHECK(one(r.parts[2].head, "Content-Type") == "message/rfc822");
    CHECK(r.parts[2].body == original);
    check_lines_bounded(msg.content);
}

TEST_CASE("failure report: delivery-status fields, one group per recipient")
{
    auto r = parse_report(built(failure_input()).content);
    auto groups = status_groups(r.parts[1].body);
    REQUIRE(groups.size() == 3);
    CHECK(one(groups[0], "Reporting-MTA") == "dns; mx.example.org");
    CHECK(one(groups[0], "X-Masqmail-Queue-ID") == queue_id);
    CHECK(one(groups[0], "Arrival-Date") == "Tue, 14 Nov 2023 22:13:20 +0000");
    CHECK(all(groups[0], "Final-Recipient").empty());
    CHECK(one(groups[1], "Final-Recipient") == "rfc822; bob@example.net");
    CHECK(one(groups[1], "Original-Recipient") == "rfc822;Bob@Example.NET");
    CHECK(one(groups[1], "Action") == "failed");
    CHECK(one(groups[1], "Status") == "5.1.1");
    CHECK(one(groups[1], "Remote-MTA") == "dns; smtp.example.net");
    CHECK(one(groups[1], "Diagnostic-Code") == "smtp; 550 5.1.1 <bob@example.net>: no such user");
    CHECK(one(groups[1], "Last-Attempt-Date") == "Tue, 14 Nov 2023 23:03:20 +0000");
    CHECK(all(groups[1], "Will-Retry-Until").empty());
    CHECK(one(groups[2], "Final-Recipient") == "rfc822; carol@example.org");
    CHECK(all(groups[2], "Original-Recipient").empty());
    CHECK(all(groups[2], "Remote-MTA").empty());
    CHECK(one(groups[2], "Status") == "5.2.2");
    CHECK(one(groups[2], "Diagnostic-Code") == "x-local; mailbox full");
}

TEST_CASE("delay warning: subject, delayed action, headers only")
{
    auto msg = built(delay_input());
    auto r = parse_report(msg.content);
    CHECK(one(r.headers, "Subject") == "Delayed Mail (still being retried)");
    CHECK(one(r.headers, "Message-ID").starts_with("<dsn.d."));
    REQUIRE(r.parts.size() == 3);
    CHECK(r.parts[0].body.find("THIS IS A WARNING ONLY") != std::string::npos);
    auto groups = status_groups(r.parts[1].body);
    REQUIRE(groups.size() == 2);
    CHECK(one(groups[1], "Action") == "delayed");
    CHECK(one(groups[1], "Status") == "4.4.1");
    CHECK(one(groups[1], "Will-Retry-Until") == "Sat, 18 Nov 2023 22:13:20 +0000");
    CHECK(one(r.parts[2].head, "Content-Type") == "text/rfc822-headers");
    CHECK(r.parts[2].body == mm::header_section(original));
    CHECK(r.parts[2].body.find("the body") == std::string::npos);
}

TEST_CASE("a malformed status or one of the wrong class is replaced")
{
    for (std::string bad : { "", "5.1", "4.1.1", "5.1.1x", "5..1", "5.1234.1", "x.1.1", "5.1.1\n" }) {
        auto in = failure_input();
        in.recipients.resize(1);
        in.recipients[0].status = bad;
        auto groups = status_groups(parse_report(built(in).content).parts[1].body);
        CHECK(one(groups[1], "Status") == "5.0.0");
    }
    auto in = delay_input();
    in.recipients[0].status = "5.1.1";
    auto groups = status_groups(parse_report(built(in).content).parts[1].body);
    CHECK(one(groups[1], "Status") == "4.0.0");
    in.recipients[0].status = "4.123.45";
    groups = status_groups(parse_report(built(in).content).parts[1].body);
    CHECK(one(groups[1], "Status") == "4.123.45");
}

TEST_CASE("never bounce a bounce")
{
    auto in = failure_input();
    in.original_sender = mm::Address {};
    auto r = mm::build_dsn(in);
    REQUIRE(r);
    CHECK(!r->sent());
    CHECK(r->reason == DsnNotSent::null_sender);
    CHECK(std::string(mm::dsn_not_sent_text(r->reason)) == "double bounce discarded (null sender)");
    auto t = mm::build_dsn_from_template(in, "Subject: x\n\nbody\n");
    REQUIRE(t);
    CHECK(!t->sent());
    in.kind = DsnKind::delay;
    r = mm::build_dsn(in);
    REQUIRE(r);
    CHECK(!r->sent());
}

TEST_CASE("to_postmaster: double bounces go to postmaster@host_name")
{
    auto pm = mm::double_bounce_recipient("mx.example.org");
    REQUIRE(pm);
    CHECK(pm->str() == "postmaster@mx.example.org");
    CHECK(!mm::double_bounce_recipient("bad host"));
    CHECK(!mm::double_bounce_recipient(""));

    auto in = failure_input();
    in.original_sender = mm::Address {};
    in.to_postmaster = true;
    auto msg = built(in);
    CHECK(msg.sender.is_null());
    CHECK(msg.recipient == *pm);
    auto r = parse_report(msg.content);
    CHECK(one(r.headers, "To") == "postmaster@mx.example.org");
    CHECK(r.parts[0].body.find("null sender") != std::string::npos);

    // postmaster itself failed: no report at all (masqmail kept such mail forever, §10 item 4)
    in.recipients[1].address = addr("<PostMaster@MX.example.org>");
    auto none = mm::build_dsn(in);
    REQUIRE(none);
    CHECK(!none->sent());
    CHECK(none->reason == DsnNotSent::postmaster_failed);
}

TEST_CASE("whole original up to include_limit, else headers only")
{
    auto in = failure_input();
    in.include_limit = original.size();
    auto r = parse_report(built(in).content);
    CHECK(one(r.parts[2].head, "Content-Type") == "message/rfc822");
    CHECK(r.parts[2].body == original);
    CHECK(r.parts[0].body.find("It's attached below.") != std::string::npos);

    in.include_limit = original.size() - 1;
    r = parse_report(built(in).content);
    CHECK(one(r.parts[2].head, "Content-Type") == "text/rfc822-headers");
    CHECK(r.parts[2].body == mm::header_section(original));
    CHECK(r.parts[0].body.find("Its headers are attached below.") != std::string::npos);

    std::string no_newline = "Subject: x\n\nno final newline";
    in.original_content = no_newline;
    in.include_limit = 1000;
    r = parse_report(built(in).content);
    CHECK(r.parts[2].body == no_newline + "\n");
    std::string headers_only = "Subject: only headers\nX: y";
    in.original_content = headers_only;
    in.include_limit = 0;
    r = parse_report(built(in).content);
    CHECK(r.parts[2].body == headers_only + "\n");
}

TEST_CASE("the boundary never occurs in the original or the diagnostics")
{
    auto in = failure_input();
    std::string first = "=_dsn." + queue_id + ".1700003600.0";
    std::string second = "=_dsn." + queue_id + ".1700003600.1";
    std::string evil = "Subject: boundary games\n\n--" + first + "\nContent-Type: text/plain\n\n--" + first
        + "--\n";
    in.original_content = evil;
    in.recipients[0].diagnostic = "smtp; 550 --" + second;
    auto r = parse_report(built(in).content);
    CHECK(r.boundary.find(first) == std::string::npos);
    CHECK(r.boundary.find(second) == std::string::npos);
    REQUIRE(r.parts.size() == 3);
    CHECK(r.parts[2].body == evil);
}

TEST_CASE("hostile diagnostic, remote MTA and original recipient are made safe")
{
    auto in = failure_input();
    std::string hostile = "smtp; 550 no\r\nBcc: victim@example.com\n\nX-Evil: 1";
    hostile += std::string("\0\x01\x7f\x80\xff", 5) + std::string(10000, 'A') + " tail";
    in.recipients[0].diagnostic = hostile;
    in.recipients[0].remote_mta = "evil.example\r\nX-Injected: yes";
    in.recipients[1].original = "rfc822;carol@example.org\r\nBcc: victim@example.com";
    in.recipients[0].original = "rfc822;" + std::string(5000, 'o') + "@example.org";
    in.recipients[1].diagnostic = "550 untyped\treply";
    auto msg = built(in);
    const std::string& c = msg.content;
    CHECK(c.find('\r') == std::string::npos);
    CHECK(c.find('\0') == std::string::npos);
    for (char ch : c)
        CHECK(static_cast<unsigned char>(ch) < 0x80);
    CHECK(c.find("\nBcc:") == std::string::npos);
    CHECK(c.find("\nX-Evil:") == std::string::npos);
    CHECK(c.find("\nX-Injected:") == std::string::npos);
    CHECK(c.find(" tail") == std::string::npos); // cut to limits::error_text
    check_lines_bounded(c);
    auto r = parse_report(c);
    auto groups = status_groups(r.parts[1].body);
    REQUIRE(groups.size() == 3);
    std::string diag = one(groups[1], "Diagnostic-Code");
    CHECK(diag.starts_with("smtp; 550 no Bcc: victim@example.com X-Evil: 1?????AAA"));
    CHECK(diag.size() <= mm::limits::error_text + 2);
    CHECK(one(groups[1], "Remote-MTA") == "dns; evil.example X-Injected: yes");
    CHECK(one(groups[1], "Original-Recipient").size() == 500); // RFC 3461's ORCPT bound
    CHECK(one(groups[2], "Original-Recipient") == "rfc822;carol@example.org Bcc: victim@example.com");
    CHECK(one(groups[2], "Diagnostic-Code") == "x-unknown; 550 untyped reply");
}

TEST_CASE("an 8-bit original is returned as 8bit")
{
    auto in = failure_input();
    std::string eight = "Subject: caf\xc3\xa9\n\nGr\xc3\xbc\xc3\x9f" "e\n";
    in.original_content = eight;
    auto msg = built(in);
    CHECK(msg.eight_bit);
    auto r = parse_report(msg.content);
    CHECK(one(r.headers, "Content-Transfer-Encoding") == "8bit");
    CHECK(one(r.parts[2].head, "Content-Transfer-Encoding") == "8bit");
    CHECK(r.parts[2].body == eight);
}

TEST_CASE("bad input is a caller error")
{
    auto in = failure_input();
    in.host_name = "mx.example.org\r\nBcc: x";
    CHECK(!mm::build_dsn(in));
    in = failure_input();
    in.host_name = "[192.0.2.1]";
    CHECK(!mm::build_dsn(in));
    in = failure_input();
    in.original_queue_id = "../../etc";
    CHECK(!mm::build_dsn(in));
    in = failure_input();
    in.recipients.clear();
    auto r = mm::build_dsn(in);
    REQUIRE(!r);
    CHECK(r.error().kind() == mm::ErrorKind::internal);
    in = failure_input();
    in.message_id_local_part = "a>\nBcc: x";
    CHECK(!mm::build_dsn(in));
    in.message_id_local_part = "bounce.42";
    auto msg = built(in);
    CHECK(one(parse_report(msg.content).headers, "Message-ID") == "<bounce.42@mx.example.org>");
}

TEST_CASE("default Message-IDs differ between reports of one message")
{
    auto a = failure_input();
    auto b = failure_input();
    b.recipients.resize(1);
    auto c = delay_input();
    auto id = [](const DsnInput& in) { return one(parse_report(built(in).content).headers, "Message-ID"); };
    CHECK(id(a) != id(b));
    CHECK(id(b) != id(c));
}

TEST_CASE("sanitize_header_text and the section helpers")
{
    CHECK(mm::sanitize_header_text("  a\r\n\tb  \x01 c ", 100) == "a b ? c");
    CHECK(mm::sanitize_header_text("abcdef", 3) == "abc");
    CHECK(mm::header_section("A: b\n\nbody\n") == "A: b\n");
    CHECK(mm::body_section("A: b\n\nbody\n") == "body\n");
    CHECK(mm::header_section("\nbody\n").empty());
    CHECK(mm::body_section("\nbody\n") == "body\n");
    CHECK(mm::header_section("A: b\n") == "A: b\n");
    CHECK(mm::body_section("A: b\n").empty());
}

namespace {

// masqmail's failmsg.tpl, shortened, with every variable and directive.
const std::string failmsg_tpl = R"(From: MAILER-DAEMON@${host_name}
To: ${return_path}
Subject: Mail Delivery Failure Notice
X-Failed: $err_msg
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="${uid}/${host_name}"

--${uid}/${host_name}
Content-Type: text/plain

This is $package $version at $host_name (uid ${uid}), from ${received_host} by $ident.
Return path ${return_path_local} at ${return_path_domain}; cost \$5, \\ and $ alone, ${nosuchvar}end.
The following recipients failed:
@failed_rcpts
The reason was:
${err_msg}
@this line is dropped
  @failed_rcpts
--${uid}/${host_name}
Content-Type: message/rfc822

@msg_headers

@msg_body
--${uid}/${host_name}--
)";

DsnInput template_input()
{
    auto in = failure_input();
    in.received_host = "client.example.org";
    in.ident = "alice";
    return in;
}

std::string from_template(const DsnInput& in, std::string_view tpl)
{
    auto r = mm::build_dsn_from_template(in, tpl);
    REQUIRE(r);
    REQUIRE(r->sent());
    CHECK(r->message->sender.is_null());
    return r->message->content;
}

} // namespace

TEST_CASE("template: every variable and directive")
{
    auto in = template_input();
    std::string c = from_template(in, failmsg_tpl);
    std::string b = "--" + queue_id + "/mx.example.org\n";
    CHECK(c.starts_with("Auto-Submitted: auto-replied\nFrom: MAILER-DAEMON@mx.example.org\n"
                        "To: alice@example.org\nSubject: Mail Delivery Failure Notice\n"
                        "X-Failed: <bob@example.net>: smtp; 550 5.1.1 <bob@example.net>: no such user; "
                        "<carol@example.org>: x-local; mailbox full\n"));
    CHECK(c.find("boundary=\"" + queue_id + "/mx.example.org\"\n\n" + b) != std::string::npos);
    CHECK(c.find("This is MasqMail masqmail 1.1 at mx.example.org (uid " + queue_id
              + "), from client.example.org by alice.\n")
        != std::string::npos);
    CHECK(c.find("Return path alice at example.org; cost $5, \\ and $ alone, end.\n") != std::string::npos);
    std::string rcpts = "\tbob@example.net\n\tcarol@example.org\n";
    CHECK(c.find("The following recipients failed:\n" + rcpts + "The reason was:\n"
              "<bob@example.net>: smtp; 550 5.1.1 <bob@example.net>: no such user\n"
              "<carol@example.org>: x-local; mailbox full\n"
              + rcpts + b)
        != std::string::npos);
    CHECK(c.find("dropped") == std::string::npos);
    CHECK(c.find("Content-Type: message/rfc822\n\n" + std::string(mm::header_section(original)) + "\n"
              + std::string(mm::body_section(original)) + "--" + queue_id + "/mx.example.org--\n")
        != std::string::npos);
}

TEST_CASE("template: Auto-Submitted kept when present, body subject to include_limit")
{
    auto in = template_input();
    std::string c = from_template(in, "auto-SUBMITTED: auto-generated\nSubject: x\n\n@msg_body\n");
    CHECK(c == "auto-SUBMITTED: auto-generated\nSubject: x\n\n" + std::string(mm::body_section(original)));
    in.include_limit = 10;
    c = from_template(in, "Subject: x\n\nAuto-Submitted: in the body does not count\n@msg_body\n");
    CHECK(c.starts_with("Auto-Submitted: auto-replied\nSubject: x\n\n"));
    CHECK(c.find("the body.") == std::string::npos);
    CHECK(c.find("\n[The message body (22 octets) is not included.]\n") != std::string::npos);
    c = from_template(in, "Subject: x\n\n  @home is text\n@home is dropped\n\t@msg_headers\n");
    CHECK(c.ends_with("\n\n  @home is text\n" + std::string(mm::header_section(original))));
}

TEST_CASE("template: hostile values stay on one header line, CRLF templates, long lines")
{
    auto in = template_input();
    in.recipients[0].diagnostic = "smtp; 550 x\r\nBcc: victim@example.com\n--" + queue_id + "/mx.example.org";
    in.ident = "eve\nBcc: victim@example.com";
    std::string c = from_template(in, "Subject: failed: ${err_msg} by ${ident}\r\n\r\n${err_msg}\r\n");
    CHECK(c.find('\r') == std::string::npos);
    CHECK(c.find("\nBcc:") == std::string::npos);
    CHECK(c.find("\n--") == std::string::npos); // every err_msg line starts with '<'
    auto headers = parse_fields(mm::header_section(c));
    CHECK(one(headers, "Subject").find("by eve Bcc: victim@example.com") != std::string::npos);

    std::string long_line(5000, 'x');
    c = from_template(in, "Subject: long\n\n" + long_line + "$host_name\n");
    CHECK(c.find(long_line + "mx.example.org\n") != std::string::npos);
    std::string too_long(mm::limits::text_line_accepted + 1, 'y');
    auto r = mm::build_dsn_from_template(in, "Subject: x\n\n" + too_long + "\n");
    REQUIRE(!r);
    CHECK(r.error().message().starts_with("template line 3:"));
    std::string grows = "Subject: x\n\n" + std::string(mm::limits::text_line_accepted - 10, 'z') + "$err_msg\n";
    CHECK(!mm::build_dsn_from_template(in, grows));
}

TEST_CASE("template: errors make the caller fall back to the built-in report")
{
    auto in = template_input();
    for (std::string bad : { std::string("Subject: ${host_name\n"), std::string("A: b\n\nx\ry\n"),
             std::string("A: b\n\nx\0y\n", 10), "A: ${" + std::string(51, 'v') + "}\n" }) {
        auto r = mm::build_dsn_from_template(in, bad);
        REQUIRE(!r);
        CHECK(r.error().kind() == mm::ErrorKind::permanent);
    }
    CHECK(mm::build_dsn_from_template(in, "A: ${" + std::string(50, 'v') + "}\n"));
    in.host_name = "bad host";
    auto r = mm::build_dsn_from_template(in, "A: b\n");
    REQUIRE(!r);
    CHECK(r.error().kind() == mm::ErrorKind::internal);
}

TEST_CASE("template: a double bounce names postmaster in return_path")
{
    auto in = template_input();
    in.original_sender = mm::Address {};
    in.to_postmaster = true;
    auto r = mm::build_dsn_from_template(in, "To: ${return_path}\n\nwarning for $return_path_local\n");
    REQUIRE(r);
    REQUIRE(r->sent());
    CHECK(r->message->recipient.str() == "postmaster@mx.example.org");
    CHECK(r->message->content
        == "Auto-Submitted: auto-replied\nTo: postmaster@mx.example.org\n\nwarning for postmaster\n");
}

TEST_CASE("warning_due: masqmail t310's walk with the default intervals")
{
    const std::vector<std::chrono::seconds> intervals = { 1h, 4h, 8h, 24h, 48h, 72h };
    using S = std::chrono::seconds;
    struct Step {
        S age;
        std::optional<S> last;
        bool due;
    };
    const Step walk[] = {
        { 10min, std::nullopt, false }, // young message: nothing yet
        { 1h, std::nullopt, false }, // age must exceed the interval
        { 61min, std::nullopt, true }, // first warning
        { 2h, S(61min), false }, // no repeat
        { 3h + 59min, S(61min), false },
        { 4h + 1s, S(61min), true }, // second warning
        { 5h, S(4h + 1s), false },
        { 8h + 1s, S(8h), true }, // a warning sent at age 8h was not yet for "older than 8h"
        { 8h + 1s, S(8h + 1s), false },
        { 30h, S(8h + 1s), true }, // several intervals passed while offline: one warning
        { 31h, S(30h), false },
        { 73h, S(30h), true }, // the last interval
        { 90h, S(73h), false }, // and never again before the final bounce
    };
    for (const auto& step : walk) {
        CAPTURE(step.age.count());
        CHECK(mm::warning_due(intervals, step.age, step.last) == step.due);
    }
    CHECK(!mm::warning_due({}, 100h, std::nullopt));
}

TEST_CASE("expired: at max_defer_time of online time")
{
    CHECK(!mm::expired(96h - std::chrono::seconds(1), 96h));
    CHECK(mm::expired(96h, 96h));
    CHECK(mm::expired(100h, 96h));
    CHECK(mm::expired(0s, 0s));
}
