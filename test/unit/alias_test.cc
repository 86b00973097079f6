// SPDX-License-Identifier: GPL-2.0-or-later
// Alias files: format, errors with file:line, lookup (plain and glob).
#include "catch.hh"
#include "config_fixture.hh"
#include "mm/alias.hh"
#include "mm/limits.hh"

#include <fstream>
#include <string>
#include <vector>

using namespace mm::config;
using mm::test::TempDir;

namespace {

struct Parsed {
    std::optional<AliasTable> table;
    Diagnostics diag;

    std::string messages() const { return mm::test::diagnostic_lines(diag); }
};

Parsed parse(const std::string& text, AliasFileKind kind = AliasFileKind::plain)
{
    Parsed p;
    p.table = parse_alias_table(text, "aliases", kind, "host.example", p.diag);
    return p;
}

mm::Address address(const std::string& text)
{
    auto a = mm::parse_address(text, { .qualify_domain = "host.example" });
    REQUIRE(a);
    return *a;
}

std::string key_for(const AliasTable& table, const std::string& recipient, bool caseless = false)
{
    const AliasEntry* e = table.find(address(recipient), caseless);
    return e != nullptr ? e->key : "";
}

std::string many_items(int n)
{
    std::string out;
    for (int i = 0; i < n; ++i)
        out += (i > 0 ? ", user" : "user") + std::to_string(i) + "@example.org";
    return out;
}

} // namespace

TEST_CASE("alias file: entries, items, comments, continuations")
{
    Parsed p = parse("# system accounts\n"
                     "postmaster:     root\n"
                     "\n"
                     "root:\t\\root, joe # the admin\n"
                     "family: alice, bob,\n"
                     "        carol@example.net\n"
                     "   # a comment between continuation lines\n"
                     "\tdave\r\n"
                     "tickets: \"|/usr/local/bin/ticket-import --queue support\", |/bin/log\n"
                     "quoted: \"a\\\"b\"@example.org, \"x, y\"@example.org\n"
                     "nobody:\n"
                     "long: "
        + many_items(100) + "\n");
    INFO(p.messages());
    REQUIRE(p.table);
    const auto& e = p.table->entries();
    REQUIRE(e.size() == 7);
    CHECK((e[0].key == "postmaster" && e[0].line == 2 && e[0].targets.size() == 1));
    CHECK(e[0].targets[0].address.str() == "root@host.example");
    REQUIRE(e[1].targets.size() == 2);
    CHECK((e[1].targets[0].kind == AliasTargetKind::verbatim
        && e[1].targets[0].address.str() == "root@host.example"));
    CHECK(e[1].targets[1].kind == AliasTargetKind::address);
    REQUIRE(e[2].targets.size() == 4);
    CHECK(e[2].targets[2].address.str() == "carol@example.net");
    CHECK(e[2].targets[3].address.str() == "dave@host.example");
    REQUIRE(e[3].targets.size() == 2);
    CHECK(e[3].targets[0].kind == AliasTargetKind::pipe);
    CHECK(e[3].targets[0].command.argv
        == std::vector<std::string> { "/usr/local/bin/ticket-import", "--queue", "support" });
    CHECK(e[3].targets[1].command.argv == std::vector<std::string> { "/bin/log" });
    REQUIRE(e[4].targets.size() == 2); // quoted local parts
    CHECK(e[4].targets[0].address.local_part() == "a\"b");
    CHECK(e[4].targets[1].address.local_part() == "x, y");
    CHECK(e[5].targets.empty());
    REQUIRE(e[6].targets.size() == 100); // a line of 1000 bytes is not split (masqmail: 256)
    CHECK(e[6].targets[99].address.str() == "user99@example.org");
}

TEST_CASE("alias file: quoted items")
{
    Parsed p = parse("q: \"joe\", \"|/bin/x a,b\", \"\\\\root\"\n");
    INFO(p.messages());
    REQUIRE(p.table);
    const auto& t = p.table->entries()[0].targets;
    REQUIRE(t.size() == 3);
    CHECK(t[0].address.str() == "joe@host.example");
    CHECK(t[1].command.argv == std::vector<std::string> { "/bin/x", "a,b" });
    CHECK(t[2].kind == AliasTargetKind::verbatim);
}

TEST_CASE("alias file: malformed lines give file:line errors")
{
    struct Case {
        std::string text;
        std::string message;
    };
    std::vector<Case> cases {
        { "ok: a\nno colon here\n", "aliases:2: missing ':' after the alias name" },
        { "  indented: a\n", "aliases:1: continuation line without an alias entry before it" },
        { "a: \"open\n", "aliases:1: unterminated quote in alias item" },
        { "a: \"x\" y\n", "aliases:1: unexpected 'y' after a quoted alias item" },
        { "a: /var/log/mail\n", "aliases:1: file and :include: items are not supported" },
        { "a: :include:/etc/list\n", "aliases:1: file and :include: items are not supported" },
        { "a: |procmail\n",
            "aliases:1: bad pipe item '|procmail': command must start with an absolute path" },
        { "a: bob@\n", "aliases:1: bad address 'bob@'" },
        { "a b: c\n", "aliases:1: bad alias name 'a b'" },
        { ": c\n", "aliases:1: bad alias name ''" },
        { "a: b\n" + std::string(70000, 'x') + "\n", "aliases:2: line too long" },
        { "a: b\nc: d\n", "" },
    };
    cases.push_back({ std::string("a: b\nc: \0d\n", 11), "aliases:2: NUL byte in line" });
    for (const Case& c : cases) {
        Parsed p = parse(c.text);
        INFO(c.text.substr(0, 100) << "\n" << p.messages());
        if (c.message.empty()) {
            CHECK(p.table);
            continue;
        }
        CHECK_FALSE(p.table);
        CHECK(p.messages().rfind(c.message, 0) == 0);
    }
}

TEST_CASE("alias file: continuation lines of a bad entry are not reported again")
{
    Parsed p = parse("broken line\n  more, items\nok: a\n");
    CHECK(p.diag.error_count() == 1);
}

TEST_CASE("alias file: the first entry wins, a duplicate warns")
{
    Parsed p = parse("bob: one\nbob: two\n");
    REQUIRE(p.table);
    CHECK(p.messages() == "aliases:2: alias 'bob' ignored: already defined at line 1\n");
    CHECK(p.table->find(address("bob"), false)->targets[0].address.str() == "one@host.example");
}

TEST_CASE("plain lookup by local part; caseless_matching; postmaster always caseless")
{
    Parsed p = parse("Bob: a\nroot: b\nPostMaster: c\n");
    REQUIRE(p.table);
    const AliasTable& t = *p.table;
    CHECK(key_for(t, "Bob@anything.example") == "Bob");
    CHECK(key_for(t, "bob@host.example").empty());
    CHECK(key_for(t, "bob@host.example", true) == "Bob");
    CHECK(key_for(t, "ROOT").empty());
    CHECK(key_for(t, "ROOT", true) == "root");
    CHECK(key_for(t, "postmaster") == "PostMaster");
    CHECK(key_for(t, "POSTMASTER@host.example") == "PostMaster");
    CHECK(key_for(t, "nobody").empty());
}

TEST_CASE("glob lookup on the whole address; order matters; domain caseless")
{
    Parsed p = parse("joe@old.example.org: \\joe\n"
                     "*@old.example.org: \\bob\n"
                     "list-*: \\lists\n"
                     "*: \\catchall\n",
        AliasFileKind::glob);
    REQUIRE(p.table);
    const AliasTable& t = *p.table;
    CHECK(key_for(t, "joe@old.example.org") == "joe@old.example.org");
    CHECK(key_for(t, "joe@OLD.Example.ORG") == "joe@old.example.org");
    CHECK(key_for(t, "ann@old.example.org") == "*@old.example.org");
    CHECK(key_for(t, "JOE@old.example.org") == "*@old.example.org");
    CHECK(key_for(t, "JOE@old.example.org", true) == "joe@old.example.org");
    CHECK(key_for(t, "list-users@host.example") == "list-*");
    CHECK(key_for(t, "x@elsewhere.example") == "*");
}

TEST_CASE("read_alias_file: missing file and a long file")
{
    TempDir t;
    Diagnostics diag;
    CHECK_FALSE(read_alias_file(t.file("aliases"), AliasFileKind::plain, "h.example", diag));
    CHECK(diag.entries()[0].text() == t.file("aliases") + ": cannot read: No such file or directory");
    {
        std::ofstream out(t.file("big"));
        for (int i = 0; i < 5000; ++i)
            out << "user" << i << ": a" << i << ", b" << i << "@example.org\n";
    }
    Diagnostics ok;
    auto table = read_alias_file(t.file("big"), AliasFileKind::plain, "h.example", ok);
    REQUIRE(table);
    CHECK(table->entries().size() == 5000);
    CHECK(table->find(address("user4999"), false)->targets[1].address.str() == "b4999@example.org");
}
