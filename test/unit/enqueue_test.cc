// SPDX-License-Identifier: GPL-2.0-or-later
#include "catch.hh"
#include "mm/config.hh"
#include "mm/enqueue.hh"
#include "mm/fs.hh"
#include "mm/header_fixup.hh"
#include "mm/spool.hh"

#include <csignal>
#include <fcntl.h>
#include <sys/resource.h>
#include <string>
#include <unistd.h>

using mm::test::TempDir;

namespace {

struct Fixture {
    TempDir dir;
    mm::config::MainConfig config;
    std::optional<mm::Spool> spool;

    explicit Fixture(const std::string& extra = "")
    {
        mm::config::Diagnostics diag;
        auto c = mm::config::parse_main_config("host_name = \"mail.test.example\"\n" + extra, "t.conf", diag);
        REQUIRE(c);
        config = *c;
        auto s = mm::Spool::open(dir.file("spool"), true);
        REQUIRE(s);
        spool.emplace(std::move(s).value());
    }

    mm::Address addr(std::string_view text)
    {
        auto a = mm::parse_address(text, {.qualify_domain = config.host_name, .allow_null = true});
        REQUIRE(a);
        return std::move(a).value();
    }

    mm::Submission local(std::vector<std::string_view> rcpts)
    {
        mm::Submission s;
        s.sender = addr("alice");
        for (auto r : rcpts)
            s.recipients.push_back(addr(r));
        s.full_name = "Alice Example";
        s.ident = "alice";
        s.uid = 1000;
        return s;
    }

    // The stored content of an accepted message.
    std::string content(const mm::QueueId& id)
    {
        auto m = spool->open_for_delivery(id, mm::SpoolArea::incoming);
        REQUIRE(m);
        std::string out(m->message.layout.length, '\0');
        REQUIRE(::pread(m->fd.get(), out.data(), out.size(), static_cast<off_t>(m->message.layout.offset)) ==
                static_cast<ssize_t>(out.size()));
        return out;
    }

    std::size_t files_in(const char* area)
    {
        auto d = mm::open_dir(dir.file("spool") + "/" + area);
        REQUIRE(d);
        auto names = mm::list_dir(*d, 1000);
        REQUIRE(names);
        return names->size();
    }
};

} // namespace

TEST_CASE("a queue-only submission (-odq, do_queue) is committed to queue/, not new/")
{
    Fixture f;
    mm::Submission s = f.local({"bob"});
    s.queue_only = true;
    auto a = mm::accept_message(*f.spool, f.config, s, "Subject: later\n\nbody\n");
    REQUIRE(a);
    CHECK(f.files_in("new") == 0);
    CHECK(f.files_in("queue") == 1);
    CHECK(f.files_in("tmp") == 0);
    auto stored = f.spool->read_envelope(a->id, mm::SpoolArea::queue);
    REQUIRE(stored);
    CHECK(stored->envelope.recipients.size() == 1);
}

TEST_CASE("a local submission with 8-bit bytes is recorded as 8BITMIME, a 7-bit one is not")
{
    Fixture f;
    auto eight = mm::accept_message(*f.spool, f.config, f.local({"bob"}), "Subject: caf\xc3\xa9\n\nna\xc3\xafve\n");
    REQUIRE(eight);
    auto stored = f.spool->read_envelope(eight->id, mm::SpoolArea::incoming);
    REQUIRE(stored);
    CHECK(stored->envelope.eight_bit_mime);
    auto seven = mm::accept_message(*f.spool, f.config, f.local({"bob"}), "Subject: plain\n\nascii\n");
    REQUIRE(seven);
    stored = f.spool->read_envelope(seven->id, mm::SpoolArea::incoming);
    REQUIRE(stored);
    CHECK(!stored->envelope.eight_bit_mime);
}

TEST_CASE("a local submission is committed with its envelope and fixed headers")
{
    Fixture f;
    auto a = mm::accept_message(*f.spool, f.config, f.local({"bob", "carol@example.org"}),
        "Subject: hi\n\nbody\n");
    REQUIRE(a);
    CHECK(a->recipient_count == 2);
    auto stored = f.spool->read_envelope(a->id, mm::SpoolArea::incoming);
    REQUIRE(stored);
    const mm::Envelope& env = stored->envelope;
    CHECK(env.return_path.str() == "alice@mail.test.example");
    REQUIRE(env.recipients.size() == 2);
    CHECK(env.recipients[0].address.str() == "bob@mail.test.example");
    CHECK(env.recipients[1].address.str() == "carol@example.org");
    CHECK(env.ident == "alice");
    CHECK(env.submitter_uid == 1000u);
    std::string text = f.content(a->id);
    CHECK(text.rfind("Received: by mail.test.example", 0) == 0);
    CHECK(text.find("\nFrom: \"Alice Example\" <alice@mail.test.example>\n") != std::string::npos);
    CHECK(text.find("\nMessage-ID: <" + a->id.str() + "@mail.test.example>\n") != std::string::npos);
    CHECK(text.find("\nDate: ") != std::string::npos);
    CHECK(text.find("\nSubject: hi\n") != std::string::npos);
    CHECK(text.ends_with("\n\nbody\n"));
    CHECK(f.files_in("tmp") == 0);
}

TEST_CASE("-t adds header recipients and Bcc leaves every copy")
{
    Fixture f;
    auto s = f.local({"dave"});
    s.extract_recipients = true;
    auto a = mm::accept_message(*f.spool, f.config, s,
        "To: Bob <bob@example.org>\nCc: carol\nBcc: secret@example.net\nSubject: x\n\nbody\n");
    REQUIRE(a);
    auto stored = f.spool->read_envelope(a->id, mm::SpoolArea::incoming);
    REQUIRE(stored);
    std::vector<std::string> got;
    for (const auto& r : stored->envelope.recipients)
        got.push_back(r.address.str());
    CHECK(got == std::vector<std::string>{"dave@mail.test.example", "bob@example.org",
                     "carol@mail.test.example", "secret@example.net"});
    std::string text = f.content(a->id);
    CHECK(text.find("Bcc") == std::string::npos);
    CHECK(text.find("secret") == std::string::npos);
}

TEST_CASE("a recipient given twice is stored once: the domain compared caselessly, the local part exactly")
{
    // user-needs S7: RCPT TO the same address twice (or -t with it in To: and
    // Cc:) must not send two copies through a smarthost.
    Fixture f;
    auto s = f.local({"bob@example.org", "bob@EXAMPLE.org", "Bob@example.org", "dave", "dave@mail.test.example"});
    s.extract_recipients = true;
    auto a = mm::accept_message(*f.spool, f.config, s, "To: bob@example.org, dave\nCc: carol, carol\n\nx\n");
    REQUIRE(a);
    auto stored = f.spool->read_envelope(a->id, mm::SpoolArea::incoming);
    REQUIRE(stored);
    std::vector<std::string> got;
    for (const auto& r : stored->envelope.recipients)
        got.push_back(r.address.str());
    CHECK(got == std::vector<std::string>{"bob@example.org", "Bob@example.org", "dave@mail.test.example",
                     "carol@mail.test.example"});
    SECTION("with caseless_matching the local part is caseless too")
    {
        Fixture g("caseless_matching = true\n");
        auto b = mm::accept_message(*g.spool, g.config, g.local({"bob@example.org", "Bob@Example.org"}), "\nx\n");
        REQUIRE(b);
        auto env = g.spool->read_envelope(b->id, mm::SpoolArea::incoming);
        REQUIRE(env);
        REQUIRE(env->envelope.recipients.size() == 1);
        CHECK(env->envelope.recipients[0].address.str() == "bob@example.org");
    }
}

TEST_CASE("no recipient is a permanent error and stores nothing")
{
    Fixture f;
    auto s = f.local({});
    s.extract_recipients = true;
    auto a = mm::accept_message(*f.spool, f.config, s, "Subject: nobody\n\nx\n");
    REQUIRE_FALSE(a);
    CHECK(a.error().kind() == mm::ErrorKind::permanent);
    CHECK(a.error().message() == "no recipients");
    CHECK(f.files_in("tmp") == 0);
    CHECK(f.files_in("new") == 0);
}

TEST_CASE("limits: size, recipients, hops")
{
    SECTION("max_msg_size counts the whole message")
    {
        Fixture f("max_msg_size = 300\n");
        auto a = mm::accept_message(*f.spool, f.config, f.local({"bob"}), std::string(400, 'x') + "\n");
        REQUIRE_FALSE(a);
        CHECK(a.error().kind() == mm::ErrorKind::permanent);
        CHECK(f.files_in("new") == 0);
        CHECK(f.files_in("tmp") == 0);
    }
    SECTION("more recipients than max_recipients")
    {
        Fixture f("max_recipients = 100\n");
        std::vector<std::string> names;
        for (int i = 0; i < 101; ++i)
            names.push_back("u" + std::to_string(i));
        std::vector<std::string_view> views(names.begin(), names.end());
        auto a = mm::accept_message(*f.spool, f.config, f.local(views), "\nx\n");
        REQUIRE_FALSE(a);
        CHECK(a.error().message().find("too many recipients") == 0);
        views.pop_back();
        CHECK(mm::accept_message(*f.spool, f.config, f.local(views), "\nx\n"));
    }
    SECTION("too many Received lines is a loop")
    {
        Fixture f("max_received_headers = 3\n");
        std::string hops;
        for (int i = 0; i < 4; ++i)
            hops += "Received: from x by y; Sat, 21 Nov 2026 08:00:28 +0000\n";
        auto a = mm::accept_message(*f.spool, f.config, f.local({"bob"}), hops + "\nbody\n");
        REQUIRE_FALSE(a);
        CHECK(a.error().message().find("hops") != std::string::npos);
        CHECK(f.files_in("new") == 0);
    }
}

TEST_CASE("prepare_message fixes the headers and builds the envelope without touching the spool")
{
    Fixture f;
    auto id = mm::QueueId::parse("1700000000.0123456789abcdef");
    REQUIRE(id);
    const std::time_t now = 1700000000;
    auto s = f.local({"dave"});
    s.extract_recipients = true;
    auto p = mm::prepare_message(f.config, s,
        "To: Bob <bob@example.org>\nBcc: secret@example.net\nSubject: x\n\nbody\n", *id, now);
    REQUIRE(p);
    const mm::Envelope& env = p->envelope;
    std::vector<std::string> got;
    for (const auto& r : env.recipients)
        got.push_back(r.address.str());
    CHECK(got == std::vector<std::string>{"dave@mail.test.example", "bob@example.org", "secret@example.net"});
    CHECK(env.return_path.str() == "alice@mail.test.example");
    CHECK(env.received_time == now);
    CHECK(env.ident == "alice");
    CHECK(env.submitter_uid == 1000u);
    CHECK(p->content.rfind("Received: by mail.test.example", 0) == 0);
    CHECK(p->content.find("\nMessage-ID: <1700000000.0123456789abcdef@mail.test.example>\n") != std::string::npos);
    CHECK(p->content.find("\nDate: " + mm::message_date(now) + "\n") != std::string::npos);
    CHECK(p->content.find("secret") == std::string::npos);
    CHECK(p->content.ends_with("\n\nbody\n"));
    CHECK(f.files_in("tmp") == 0);
    CHECK(f.files_in("new") == 0);
    CHECK(f.files_in("queue") == 0);
}

TEST_CASE("prepare_message refuses what accept_message refuses, with the same reason")
{
    struct Case {
        const char* name;
        std::string conf;
        std::vector<std::string_view> recipients;
        bool extract;
        std::string content;
        const char* reason;
    };
    std::string hops;
    for (int i = 0; i < 4; ++i)
        hops += "Received: from x by y; Sat, 21 Nov 2026 08:00:28 +0000\n";
    // Within max_msg_size as read, over it once Received, From, Date and
    // Message-ID are added.
    // The limit is on the message as submitted (what SIZE announced), not on
    // the headers enqueue adds to it.
    std::string over_limit = "Subject: s\n\n" + std::string(300, 'x') + "\n";
    const Case cases[] = {
        {"-t finds no recipient", "", {}, true, "Subject: nobody\n\nx\n", "no recipients"},
        {"too many hops", "max_received_headers = 3\n", {"bob"}, false, hops + "\nbody\n", "too many hops"},
        {"too large as submitted", "max_msg_size = 300\n", {"bob"}, false, over_limit,
            "message too large"},
        {"too many recipients", "max_recipients = 1\n", {"bob"}, true, "To: carol\n\nx\n",
            "too many recipients"},
        {"-t finds a To: that does not parse", "", {}, true, "To: <<<\n\nx\n", "invalid address in To"},
    };
    for (const Case& c : cases) {
        DYNAMIC_SECTION(c.name)
        {
            Fixture f(c.conf);
            auto s = f.local(c.recipients);
            s.extract_recipients = c.extract;
            auto id = mm::QueueId::generate();
            REQUIRE(id);
            auto p = mm::prepare_message(f.config, s, c.content, *id, 1700000000);
            REQUIRE_FALSE(p);
            CHECK(p.error().kind() == mm::ErrorKind::permanent);
            CHECK(p.error().exit_code() == 65);
            CHECK(p.error().message().find(c.reason) != std::string::npos);
            auto a = mm::accept_message(*f.spool, f.config, s, c.content);
            REQUIRE_FALSE(a);
            CHECK(a.error().message() == p.error().message());
            CHECK(f.files_in("new") == 0);
            CHECK(f.files_in("tmp") == 0);
        }
    }
}

TEST_CASE("a failing write is a temporary error and leaves nothing behind")
{
    Fixture f;
    // A file size limit makes write(2) fail with EFBIG, as a full disk would with ENOSPC.
    struct rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old;
    small.rlim_cur = 2000;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    auto a = mm::accept_message(*f.spool, f.config, f.local({"bob"}), "\n" + std::string(100000, 'x') + "\n");
    ::setrlimit(RLIMIT_FSIZE, &old);
    ::signal(SIGXFSZ, old_handler);
    REQUIRE_FALSE(a);
    CHECK(a.error().is_temporary());
    CHECK(a.error().exit_code() == 75);
    CHECK(f.files_in("tmp") == 0);
    CHECK(f.files_in("new") == 0);
}
