// SPDX-License-Identifier: GPL-2.0-or-later
#include "spool_fixture.hh"

#include "mm/limits.hh"
#include "mm/spool_format.hh"
#include "mm/spool_record.hh"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

using mm::test::address;
using mm::test::sample_content;
using mm::test::sample_envelope;
using mm::test::SpoolDir;
namespace fmt = mm::spool_format;

namespace {

const mm::QueueId test_id = *mm::QueueId::parse("1700000000.0123456789abcdef");

std::string rec(std::string_view tag, std::string_view value)
{
    return std::string(tag) + std::to_string(value.size()) + ":" + std::string(value) + "\n";
}

// A head of records after the magic line, content, and a correct END record.
std::string sealed_file(const std::string& records, std::string_view content = "Subject: x\n\nbody\n")
{
    std::string file = std::string(fmt::magic) + records;
    std::uint64_t content_offset = file.size();
    file += content;
    mm::spool_record::Crc32c crc;
    crc.update(file);
    fmt::HeaderBoundary b;
    b.feed(content);
    (void)content_offset;
    return file + fmt::encode_end(content.size(), b.header_length(), crc);
}

std::string valid_records()
{
    return rec("QI", test_id.str()) + rec("TR", "1700000000") + rec("PR", "smtp") + rec("BT", "7BIT")
        + rec("MF", "<a@example.org>") + rec("RT", "<b@example.org>") + "CT0:\n";
}

std::string content_of(const mm::OpenMessage& m)
{
    std::string out(m.message.layout.length, '\0');
    ssize_t n = ::pread(m.fd.get(), out.data(), out.size(), static_cast<off_t>(m.message.layout.offset));
    REQUIRE(n == static_cast<ssize_t>(out.size()));
    return out;
}

} // namespace

TEST_CASE("CRC-32C check value")
{
    CHECK(mm::spool_record::crc32c("123456789") == 0xe3069283u);
    CHECK(mm::spool_record::crc32c("") == 0u);
    CHECK(mm::spool_record::format_crc(0xe3069283u) == "e3069283");
    CHECK(mm::spool_record::parse_crc("e3069283") == 0xe3069283u);
    CHECK_FALSE(mm::spool_record::parse_crc("E3069283"));
    CHECK_FALSE(mm::spool_record::parse_crc("e306928"));
}

TEST_CASE("numbers have exactly one spelling")
{
    using mm::spool_record::parse_number;
    CHECK(parse_number("0") == 0u);
    CHECK(parse_number("42") == 42u);
    CHECK(parse_number("18446744073709551615") == UINT64_MAX);
    for (const char* bad : { "", "00", "042", "+1", "-1", " 1", "1 ", "18446744073709551616", "1a" })
        CHECK_FALSE(parse_number(bad));
    CHECK_FALSE(parse_number("11", 10));
}

TEST_CASE("header boundary does not depend on how content is chunked")
{
    const std::vector<std::pair<std::string, std::uint64_t>> table = {
        { "", 0 },
        { "\n", 1 },
        { "\nbody\n", 1 },
        { "a: b\n", 5 },
        { "a: b\n\n", 6 },
        { "a: b\n\nx\n\ny", 6 },
        { "a: b\nc: d\n\nbody", 11 },
        { "no newline", 10 },
    };
    for (const auto& [content, expected] : table) {
        INFO("content: " << content);
        fmt::HeaderBoundary whole;
        whole.feed(content);
        CHECK(whole.header_length() == expected);
        for (std::size_t split = 0; split <= content.size(); ++split) {
            fmt::HeaderBoundary parts;
            parts.feed(std::string_view(content).substr(0, split));
            parts.feed("");
            parts.feed(std::string_view(content).substr(split));
            CHECK(parts.header_length() == expected);
        }
    }
    fmt::HeaderBoundary bytewise;
    for (char c : std::string("a: b\n\nbody"))
        bytewise.feed(std::string_view(&c, 1));
    CHECK(bytewise.header_length() == 6);
}

TEST_CASE("message file round trip in memory")
{
    auto e = sample_envelope();
    auto file = fmt::encode_message_file(test_id, e, sample_content);
    REQUIRE(file);
    CHECK(file->starts_with(
        "masqmail-spool 1\nQI27:1700000000.0123456789abcdef\nTR10:1700000000\nPR6:esmtps\n"));
    CHECK(file->find("RT17:<bob@example.net>\nOR22:rfc822;bob@example.net\nRT19:<carol@example.com>\nCT0:\n")
        != std::string::npos);
    auto m = fmt::parse_message_file(*file);
    REQUIRE(m);
    CHECK(m->id == test_id);
    CHECK(m->envelope == e);
    CHECK(m->layout.length == sample_content.size());
    CHECK(m->layout.header_length == sample_content.find("\n\n") + 2);
    CHECK(file->substr(m->layout.offset, m->layout.length) == sample_content);
    CHECK(file->size() == m->layout.offset + m->layout.length + fmt::end_record_size);

    SECTION("null sender and minimal fields")
    {
        mm::Envelope minimal;
        minimal.recipients.push_back({ address("<postmaster@example.org>"), "" });
        auto f = fmt::encode_message_file(test_id, minimal, "");
        REQUIRE(f);
        CHECK(f->find("MF2:<>\n") != std::string::npos);
        auto back = fmt::parse_message_file(*f);
        REQUIRE(back);
        CHECK(back->envelope == minimal);
        CHECK(back->envelope.return_path.is_null());
        CHECK(back->layout.length == 0);
    }
}

TEST_CASE("hostile envelope fields are refused on write")
{
    const std::vector<std::string> hostile = {
        std::string("a\rb"),
        "a\nb",
        std::string("a\0b", 3),
        "a\tb",
        "a\x7f",
        "caf\xc3\xa9",
        "\xff",
        std::string(mm::limits::spool_text_field + 1, 'x'),
    };
    SpoolDir s;
    for (const auto& value : hostile) {
        for (int field = 0; field < 4; ++field) {
            INFO("field " << field << " value " << value);
            auto e = sample_envelope();
            std::string* targets[] = { &e.peer_address, &e.helo_name, &e.ident, &e.recipients[0].original };
            *targets[field] = value;
            auto head = fmt::encode_head(test_id, e);
            REQUIRE_FALSE(head);
            CHECK(head.error().kind() == mm::ErrorKind::permanent);
            auto w = s.spool().begin_message(e, 1000);
            REQUIRE_FALSE(w);
        }
    }
    CHECK(s.count("tmp") == 0);
    CHECK(s.count("new") == 0);
}

TEST_CASE("envelope limits on write")
{
    auto e = sample_envelope();
    e.recipients.clear();
    CHECK_FALSE(fmt::encode_head(test_id, e));
    for (std::size_t i = 0; i < mm::limits::recipients; ++i)
        e.recipients.push_back({ address("<r" + std::to_string(i) + "@example.org>"), "" });
    CHECK(fmt::encode_head(test_id, e));
    e.recipients.push_back({ address("<one.too.many@example.org>"), "" });
    CHECK_FALSE(fmt::encode_head(test_id, e));
    auto t = sample_envelope();
    t.received_time = -1;
    CHECK_FALSE(fmt::encode_head(test_id, t));
}

TEST_CASE("malformed message files are refused by the parser")
{
    REQUIRE(fmt::parse_message_file(sealed_file(valid_records())));
    const std::string qi = rec("QI", test_id.str());
    const std::string rest = rec("PR", "smtp") + rec("BT", "7BIT") + rec("MF", "<a@example.org>");
    const std::string rt = rec("RT", "<b@example.org>");
    std::string many_rt;
    for (std::size_t i = 0; i <= mm::limits::recipients; ++i)
        many_rt += rec("RT", "<r" + std::to_string(i) + "@example.org>");
    const std::vector<std::pair<const char*, std::string>> table = {
        { "no records", "" },
        { "no recipients", qi + rec("TR", "1") + rest + "CT0:\n" },
        { "too many recipients", qi + rec("TR", "1") + rest + many_rt + "CT0:\n" },
        { "CR in a field",
            qi + rec("TR", "1") + rec("PR", "smtp") + rec("HE", "a\rb") + rest.substr(10) + rt + "CT0:\n" },
        { "LF in a field",
            qi + rec("TR", "1") + rec("PR", "smtp") + rec("HE", "a\nb") + rest.substr(10) + rt + "CT0:\n" },
        { "NUL in a field",
            qi + rec("TR", "1") + rec("PR", "smtp") + rec("ID", std::string("a\0b", 3)) + rest.substr(10) + rt
                + "CT0:\n" },
        { "8-bit byte",
            qi + rec("TR", "1") + rec("PR", "smtp") + rec("ID", "\xe9") + rest.substr(10) + rt + "CT0:\n" },
        { "empty optional field",
            qi + rec("TR", "1") + rec("PR", "smtp") + rec("RH", "") + rest.substr(10) + rt + "CT0:\n" },
        { "fields out of order", rec("TR", "1") + qi + rest + rt + "CT0:\n" },
        { "unknown tag", qi + rec("TR", "1") + rec("XX", "1") + rest + rt + "CT0:\n" },
        { "duplicate MF", qi + rec("TR", "1") + rest + rec("MF", "<c@example.org>") + rt + "CT0:\n" },
        { "OR without RT", qi + rec("TR", "1") + rest + rec("OR", "rfc822;x@y") + rt + "CT0:\n" },
        { "lower-case tag", qi + "tr1:1\n" + rest + rt + "CT0:\n" },
        { "leading zero length", qi + "TR01:1\n" + rest + rt + "CT0:\n" },
        { "length too large", qi + "TR99999999:1\n" + rest + rt + "CT0:\n" },
        { "length too small", qi + "TR1:10\n" + rest + rt + "CT0:\n" },
        { "missing colon", qi + "TR1 1\n" + rest + rt + "CT0:\n" },
        { "negative time", qi + rec("TR", "-1") + rest + rt + "CT0:\n" },
        { "huge time", qi + rec("TR", "99999999999") + rest + rt + "CT0:\n" },
        { "time with leading zero", qi + rec("TR", "01") + rest + rt + "CT0:\n" },
        { "unknown protocol", qi + rec("TR", "1") + rec("PR", "SMTP") + rest.substr(10) + rt + "CT0:\n" },
        { "uid overflow",
            qi + rec("TR", "1") + rec("PR", "smtp") + rec("UI", "4294967296") + rest.substr(10) + rt
                + "CT0:\n" },
        { "unknown body type",
            qi + rec("TR", "1") + rec("PR", "smtp") + rec("BT", "binary") + rest.substr(20) + rt + "CT0:\n" },
        { "bad sender", qi + rec("TR", "1") + rest.substr(0, 20) + rec("MF", "<a@@b>") + rt + "CT0:\n" },
        { "null recipient", qi + rec("TR", "1") + rest + rec("RT", "<>") + "CT0:\n" },
        { "unqualified recipient", qi + rec("TR", "1") + rest + rec("RT", "<root>") + "CT0:\n" },
        { "bad queue id", rec("QI", "../../etc/passwd") + rec("TR", "1") + rest + rt + "CT0:\n" },
        { "CT not empty", qi + rec("TR", "1") + rest + rt + "CT1:x\n" },
        { "no CT", qi + rec("TR", "1") + rest + rt },
    };
    for (const auto& [what, records] : table) {
        INFO(what);
        auto m = fmt::parse_message_file(sealed_file(records));
        REQUIRE_FALSE(m);
        CHECK(m.error().kind() == mm::ErrorKind::permanent);
    }
    CHECK_FALSE(fmt::parse_message_file("masqmail-spool 2\n" + valid_records()));
    CHECK_FALSE(fmt::parse_message_file("From alice Mon Jan  1 00:00:00 2024\n"));
}

TEST_CASE("write, commit and read a message")
{
    SpoolDir s;
    auto e = sample_envelope();
    auto w = s.spool().begin_message(e, 1u << 20);
    REQUIRE(w);
    mm::QueueId id = w->id();
    CHECK(s.exists("tmp", id.str()));
    CHECK_FALSE(s.exists("new", id.str()));
    for (std::size_t i = 0; i < sample_content.size(); i += 7)
        REQUIRE(w->add_content(std::string_view(sample_content).substr(i, 7)));
    REQUIRE(w->commit());
    CHECK(s.count("tmp") == 0);
    REQUIRE(s.exists("new", id.str()));
    struct stat st { };
    REQUIRE(::stat(s.path("new", id.str()).c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK_FALSE(w->add_content("late"));
    CHECK_FALSE(w->commit());

    auto m = s.spool().read_envelope(id, mm::SpoolArea::incoming);
    REQUIRE(m);
    CHECK(m->id == id);
    CHECK(m->envelope == e);
    CHECK(m->layout.length == sample_content.size());
    CHECK(m->layout.body_length() == sample_content.size() - sample_content.find("\n\n") - 2);
    auto open = s.spool().open_for_delivery(id, mm::SpoolArea::incoming);
    REQUIRE(open);
    CHECK(content_of(*open) == sample_content);
    int flags = ::fcntl(open->fd.get(), F_GETFL);
    CHECK((flags & O_ACCMODE) == O_RDONLY);
    CHECK((flags & O_NONBLOCK) == 0);
    auto in_memory = fmt::parse_message_file(s.read("new", id.str()));
    REQUIRE(in_memory);
    CHECK(in_memory->envelope == e);
}

TEST_CASE("big content and a big envelope round trip")
{
    SpoolDir s;
    auto e = sample_envelope();
    e.recipients.clear();
    for (std::size_t i = 0; i < mm::limits::recipients; ++i)
        e.recipients.push_back({ address("<r" + std::to_string(i) + "@example.org>"),
            "rfc822;r" + std::to_string(i) + "@example.org" + std::string(200, 'x') });
    std::string content = "Subject: big\n\n";
    for (int i = 0; content.size() < 300000; ++i)
        content += "line " + std::to_string(i) + "\n";
    auto w = s.spool().begin_message(e, 1u << 20);
    REQUIRE(w);
    REQUIRE(w->add_content(std::string_view(content).substr(0, 10)));
    REQUIRE(w->add_content(std::string_view(content).substr(10, 100000)));
    REQUIRE(w->add_content(std::string_view(content).substr(100010)));
    REQUIRE(w->commit());
    auto m = s.spool().read_envelope(w->id(), mm::SpoolArea::incoming);
    REQUIRE(m);
    CHECK(m->layout.offset > 64 * 1024); // the head needed a second read
    CHECK(m->envelope == e);
    auto open = s.spool().open_for_delivery(w->id(), mm::SpoolArea::incoming);
    REQUIRE(open);
    CHECK(content_of(*open) == content);
    CHECK(open->message.layout.header_length == 14);
}

TEST_CASE("content over the maximum fails while streaming and leaves nothing")
{
    SpoolDir s;
    auto w = s.spool().begin_message(sample_envelope(), 100);
    REQUIRE(w);
    REQUIRE(w->add_content(std::string(60, 'a')));
    REQUIRE(w->add_content(std::string(40, 'a')));
    auto r = w->add_content("x");
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == mm::ErrorKind::permanent);
    CHECK(s.count("tmp") == 0);
    CHECK_FALSE(w->add_content("x"));
    CHECK_FALSE(w->commit());
    CHECK(s.count("tmp") == 0);
    CHECK(s.count("new") == 0);
}

TEST_CASE("abort and destruction remove the temporary file")
{
    SpoolDir s;
    {
        auto w = s.spool().begin_message(sample_envelope(), 1000);
        REQUIRE(w);
        REQUIRE(w->add_content("Subject: x\n\n"));
        CHECK(s.count("tmp") == 1);
        mm::MessageWriter moved = std::move(w).value();
        CHECK(s.count("tmp") == 1);
    }
    CHECK(s.count("tmp") == 0);
    auto w = s.spool().begin_message(sample_envelope(), 1000);
    REQUIRE(w);
    w->abort();
    w->abort();
    CHECK(s.count("tmp") == 0);
    CHECK_FALSE(w->commit());
    CHECK(s.count("new") == 0);
}

TEST_CASE("a failed write is a temporary error with its errno, and leaves nothing")
{
    SpoolDir s;
    struct rlimit old { };
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    auto w = s.spool().begin_message(sample_envelope(), 1u << 20);
    REQUIRE(w);
    struct rlimit small = old;
    small.rlim_cur = 4096;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    auto r = w->add_content(std::string(200000, 'x'));
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    REQUIRE_FALSE(r);
    CHECK(r.error().is_temporary());
    CHECK(r.error().sys_errno() == EFBIG);
    CHECK(r.error().smtp_code() == 451);
    CHECK(s.count("tmp") == 0);
    CHECK(s.count("new") == 0);
}

TEST_CASE("a queue id collision never overwrites a committed message")
{
    SpoolDir s;
    auto w = s.spool().begin_message(sample_envelope(), 1000);
    REQUIRE(w);
    REQUIRE(w->add_content(sample_content));
    s.write("new", w->id().str(), "precious");
    auto r = w->commit();
    REQUIRE_FALSE(r);
    CHECK(r.error().sys_errno() == EEXIST);
    CHECK(r.error().is_temporary());
    CHECK(s.read("new", w->id().str()) == "precious");
    CHECK(s.count("tmp") == 0);
}

TEST_CASE("clean_tmp removes leftovers")
{
    SpoolDir s;
    s.write("tmp", "1700000000.0123456789abcdef", "half a message");
    s.write("tmp", "junk", "x");
    REQUIRE(::mkdir(s.path("tmp", "subdir").c_str(), 0700) == 0);
    auto young = s.spool().clean_tmp(std::chrono::hours(1));
    REQUIRE(young);
    CHECK(*young == 0);
    auto n = s.spool().clean_tmp();
    REQUIRE(n);
    CHECK(*n == 2);
    CHECK(s.count("tmp") == 1); // directories are left alone
}

TEST_CASE("clean_state_leftovers removes a killed qmgr's half-written state files only")
{
    SpoolDir s;
    s.write("queue", "1700000000.0123456789abcdef", "message");
    s.write("queue", "1700000000.0123456789abcdef.st", "state");
    s.write("queue", "1700000000.0123456789abcdef.st.4242.tmp", "half a state");
    auto n = s.spool().clean_state_leftovers();
    REQUIRE(n);
    CHECK(*n == 1);
    CHECK(s.count("queue") == 2);
    CHECK(::access(s.path("queue", "1700000000.0123456789abcdef.st").c_str(), F_OK) == 0);
}

TEST_CASE("spool directories are created with their modes")
{
    SpoolDir s;
    const std::vector<std::pair<const char*, mode_t>> modes = {
        { "tmp", 0700 },
        { "new", 0700 },
        { "queue", 0700 },
        { "hold", 0700 },
        { "corrupt", 0700 },
        { "maildrop", 01730 },
        { "private", 0711 },
        { "public", 0755 },
    };
    for (const auto& [name, mode] : modes) {
        INFO(name);
        struct stat st { };
        REQUIRE(::lstat(s.path(name).c_str(), &st) == 0);
        CHECK(S_ISDIR(st.st_mode));
        CHECK((st.st_mode & 07777) == mode);
    }
    mm::test::TempDir t;
    auto missing = mm::Spool::open(t.file("nothing"), false);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().sys_errno() == ENOENT);
    REQUIRE(::mkdir(t.file("partial").c_str(), 0755) == 0);
    CHECK_FALSE(mm::Spool::open(t.file("partial"), false));
    REQUIRE(::mkdir(t.file("evil").c_str(), 0755) == 0);
    REQUIRE(::symlink("/tmp", t.file("evil/queue").c_str()) == 0);
    CHECK_FALSE(mm::Spool::open(t.file("evil"), true));
}

TEST_CASE("a spool made under a umask of 077 can still be entered by the daemons")
{
    // systemd's UMask=0077: mkdir alone would leave the spool root 0700.
    mm::test::TempDir t;
    mode_t old = ::umask(077);
    auto spool = mm::Spool::open(t.file("spool"), true);
    ::umask(old);
    REQUIRE(spool);
    struct stat st { };
    REQUIRE(::stat(t.file("spool").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);
}

TEST_CASE("claim moves a message from new/ to queue/")
{
    SpoolDir s;
    auto id = s.commit(sample_envelope());
    REQUIRE(s.spool().claim_for_delivery(id));
    CHECK_FALSE(s.exists("new", id.str()));
    CHECK(s.exists("queue", id.str()));
    auto again = s.spool().claim_for_delivery(id);
    REQUIRE_FALSE(again);
    CHECK(again.error().sys_errno() == ENOENT);
    CHECK(s.spool().read_envelope(id, mm::SpoolArea::queue));

    SECTION("a half-done earlier claim (both names on one file) completes")
    {
        REQUIRE(::link(s.path("queue", id.str()).c_str(), s.path("new", id.str()).c_str()) == 0);
        REQUIRE(s.spool().claim_for_delivery(id));
        CHECK_FALSE(s.exists("new", id.str()));
        CHECK(s.exists("queue", id.str()));
    }
    SECTION("a different file of the same id is quarantined, never overwrites")
    {
        s.write("new", id.str(), "impostor");
        auto r = s.spool().claim_for_delivery(id);
        CHECK(r);
        CHECK(s.read("corrupt", id.str()) == "impostor");
        CHECK(s.spool().read_envelope(id, mm::SpoolArea::queue));
    }
}

TEST_CASE("remove_message unlinks the message, then its state")
{
    SpoolDir s;
    auto id = s.commit(sample_envelope());
    REQUIRE(s.spool().claim_for_delivery(id));
    REQUIRE(s.spool().write_state(id, mm::DeliveryState::all_pending(2)));
    CHECK(s.exists("queue", mm::state_file_name(id)));
    REQUIRE(s.spool().remove_message(id));
    CHECK(s.count("queue") == 0);
    REQUIRE(s.spool().remove_message(id)); // nothing left: still fine
}

TEST_CASE("hold and release move message and state")
{
    SpoolDir s;
    auto id = s.commit(sample_envelope());
    REQUIRE(s.spool().claim_for_delivery(id));
    REQUIRE(s.spool().write_state(id, mm::DeliveryState::all_pending(2)));
    REQUIRE(s.spool().hold_message(id));
    CHECK(s.count("queue") == 0);
    CHECK(s.exists("hold", id.str()));
    CHECK(s.exists("hold", mm::state_file_name(id)));
    REQUIRE(s.spool().release_message(id));
    CHECK(s.count("hold") == 0);
    CHECK(s.count("queue") == 2);
}

TEST_CASE("listing shows valid messages only, in order of arrival")
{
    SpoolDir s;
    auto a = s.commit(sample_envelope());
    auto b = s.commit(sample_envelope());
    REQUIRE(s.spool().claim_for_delivery(b));
    REQUIRE(s.spool().write_state(b, mm::DeliveryState::all_pending(2)));
    const std::string orphan = "1600000000.00000000000000ff";
    s.write("queue", orphan + ".st", "state of a removed message");
    for (const char* junk : { "junk", "1700000000.0123456789ABCDEF", "1700000000.0123456789abcdef.tmp",
             "1700000000.0123456789abcdef.st.4242.tmp", ".hidden", "1700000000.0123456789abcdef.st.x" })
        s.write("queue", junk, "x");
    s.write("new", "foreign", "x");
    REQUIRE(::symlink("/etc/passwd", s.path("queue", "1700000000.1111111111111111").c_str()) == 0);
    REQUIRE(::symlink("/etc/passwd", s.path("new", "1700000000.2222222222222222").c_str()) == 0);
    REQUIRE(::mkdir(s.path("queue", "1700000000.3333333333333333").c_str(), 0700) == 0);
    auto listing = s.spool().list_queue();
    REQUIRE(listing);
    std::vector<mm::QueueId> expected = { a, b };
    std::sort(expected.begin(), expected.end());
    REQUIRE(listing->messages.size() == 2);
    CHECK(listing->messages[0].id == expected[0]);
    CHECK(listing->messages[1].id == expected[1]);
    for (const auto& m : listing->messages) {
        CHECK(m.area == (m.id == a ? mm::SpoolArea::incoming : mm::SpoolArea::queue));
        CHECK(m.has_state == (m.id == b));
        CHECK(m.file_size > sample_content.size());
    }
    REQUIRE(listing->orphan_states.size() == 1);
    CHECK(listing->orphan_states[0].str() == orphan);
    CHECK(listing->skipped_names == 10);
    REQUIRE(s.spool().remove_message(listing->orphan_states[0]));
    CHECK_FALSE(s.exists("queue", orphan + ".st"));
}

TEST_CASE("reading a missing message is temporary and moves nothing")
{
    SpoolDir s;
    auto r = s.spool().read_envelope(test_id, mm::SpoolArea::queue);
    REQUIRE_FALSE(r);
    CHECK(r.error().sys_errno() == ENOENT);
    CHECK(r.error().is_temporary());
    CHECK(s.count("corrupt") == 0);
}

TEST_CASE("foreign files under a queue id are quarantined")
{
    SpoolDir s;
    SECTION("symlink")
    {
        REQUIRE(::symlink("/etc/passwd", s.path("queue", test_id.str()).c_str()) == 0);
    }
    SECTION("directory")
    {
        REQUIRE(::mkdir(s.path("queue", test_id.str()).c_str(), 0700) == 0);
    }
    SECTION("fifo")
    {
        REQUIRE(::mkfifo(s.path("queue", test_id.str()).c_str(), 0600) == 0);
    }
    SECTION("a message file of another id")
    {
        auto other = s.commit(sample_envelope());
        REQUIRE(::rename(s.path("new", other.str()).c_str(), s.path("queue", test_id.str()).c_str()) == 0);
    }
    SECTION("empty file")
    {
        s.write("queue", test_id.str(), "");
    }
    auto r = s.spool().read_envelope(test_id, mm::SpoolArea::queue);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == mm::ErrorKind::permanent);
    CHECK(r.error().message().find("corrupt") != std::string::npos);
    CHECK_FALSE(s.exists("queue", test_id.str()));
    CHECK(s.exists("corrupt", test_id.str()));
}

TEST_CASE("a message truncated at any byte is refused and quarantined")
{
    SpoolDir s;
    auto file = fmt::encode_message_file(test_id, sample_envelope(), sample_content);
    REQUIRE(file);
    for (std::size_t cut = 0; cut < file->size(); ++cut) {
        INFO("cut at " << cut);
        std::string_view part = std::string_view(*file).substr(0, cut);
        CHECK_FALSE(fmt::parse_message_file(part));
        s.write("queue", test_id.str(), part);
        auto cheap = s.spool().read_envelope(test_id, mm::SpoolArea::queue);
        REQUIRE_FALSE(cheap);
        CHECK(cheap.error().kind() == mm::ErrorKind::permanent);
        CHECK(s.read("corrupt", test_id.str()) == part);
        CHECK_FALSE(s.exists("queue", test_id.str()));
        s.clear("corrupt");
    }
    s.write("queue", test_id.str(), *file);
    CHECK(s.spool().open_for_delivery(test_id, mm::SpoolArea::queue));
}

TEST_CASE("a message with any byte changed is refused and quarantined")
{
    SpoolDir s;
    auto file = fmt::encode_message_file(test_id, sample_envelope(), sample_content);
    REQUIRE(file);
    for (std::size_t at = 0; at < file->size(); ++at) {
        for (unsigned mask : { 0x01u, 0x20u, 0x80u, 0xffu }) {
            INFO("byte " << at << " xor " << mask);
            std::string bad = *file;
            bad[at] = static_cast<char>(static_cast<unsigned char>(bad[at]) ^ mask);
            CHECK_FALSE(fmt::parse_message_file(bad));
            if (mask != 0x01)
                continue; // through the file system once per byte is enough
            s.write("queue", test_id.str(), bad);
            auto r = s.spool().open_for_delivery(test_id, mm::SpoolArea::queue);
            REQUIRE_FALSE(r);
            CHECK(r.error().kind() == mm::ErrorKind::permanent);
            CHECK(s.read("corrupt", test_id.str()) == bad);
            CHECK_FALSE(s.exists("queue", test_id.str()));
            s.clear("corrupt");
        }
    }
}

TEST_CASE("quarantine never overwrites earlier quarantined files")
{
    SpoolDir s;
    for (int i = 0; i < 3; ++i) {
        s.write("queue", test_id.str(), "garbage " + std::to_string(i));
        s.write("queue", mm::state_file_name(test_id), "state " + std::to_string(i));
        REQUIRE(s.spool().quarantine(test_id, mm::SpoolArea::queue, "test"));
    }
    CHECK(s.read("corrupt", test_id.str()) == "garbage 0");
    CHECK(s.read("corrupt", test_id.str() + ".1") == "garbage 1");
    CHECK(s.read("corrupt", test_id.str() + ".2") == "garbage 2");
    CHECK(s.read("corrupt", mm::state_file_name(test_id) + ".2") == "state 2");
    CHECK(s.count("queue") == 0);
}
