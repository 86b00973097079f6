// SPDX-License-Identifier: GPL-2.0-or-later
// Alias expansion (masqmail §4.2, t410/t420): leaves, chains, per-recipient
// errors, loops, limits, dedupe, unsafe mailbox names.
#include "catch.hh"
#include "mm/alias_expand.hh"
#include "mm/limits.hh"
#include "mm/recipient.hh"

#include <optional>
#include <string>
#include <vector>

using namespace mm;
using config::AliasFileKind;
using config::AliasTable;
using config::MainConfig;

namespace {

Address address(const std::string& text)
{
    auto a = parse_address(text, { .qualify_domain = "host.example" });
    REQUIRE(a);
    return *a;
}

MainConfig make_config(bool caseless = false)
{
    MainConfig cfg;
    cfg.host_name = "host.example";
    cfg.local_hosts = { "localhost", "host.example" };
    cfg.local_addresses = { address("bob@remote.org") };
    cfg.not_local_addresses = { address("list@host.example") };
    cfg.caseless_matching = caseless;
    return cfg;
}

AliasTable table(const std::string& text, AliasFileKind kind, const std::string& file)
{
    config::Diagnostics diag;
    std::optional<AliasTable> t = config::parse_alias_table(text, file, kind, "host.example", diag);
    for (const config::Diagnostic& d : diag.entries())
        UNSCOPED_INFO(d.text());
    REQUIRE(t);
    return *std::move(t);
}

// "mailbox:alice final:root@host.example pipe:/bin/cmd|a|b remote:x@y.org",
// or "error: reason".
std::string summary(const Result<Expansion>& r)
{
    if (!r)
        return "error: " + r.error().message();
    std::string out;
    for (const AliasLeaf& leaf : r->leaves) {
        out += out.empty() ? "" : " ";
        switch (leaf.kind) {
        case LeafKind::mailbox:
            out += "mailbox:" + leaf.address.local_part();
            break;
        case LeafKind::remote:
            out += "remote:" + leaf.address.str();
            break;
        case LeafKind::final_address:
            out += "final:" + leaf.address.str();
            break;
        case LeafKind::pipe:
            out += "pipe:";
            for (std::size_t i = 0; i < leaf.command.argv.size(); ++i)
                out += (i > 0 ? "|" : "") + leaf.command.argv[i];
            break;
        }
    }
    return out;
}

struct Fixture {
    std::optional<AliasTable> glob;
    std::optional<AliasTable> plain;
    MainConfig cfg = make_config();

    AliasTables tables() const { return { glob ? &*glob : nullptr, plain ? &*plain : nullptr }; }
    Result<Expansion> expand(const std::string& rcpt) const
    {
        return expand_aliases(address(rcpt), tables(), cfg);
    }
    std::string run(const std::string& rcpt) const { return summary(expand(rcpt)); }
};

struct Case {
    const char* recipient;
    const char* expected;
};

void check_cases(const Fixture& f, const std::vector<Case>& cases)
{
    for (const Case& c : cases) {
        INFO(c.recipient);
        CHECK(f.run(c.recipient) == c.expected);
    }
}

// t410's alias file; the reader refuses "bogus@", so the bad item is added
// to the table by hand, as a lenient reader would keep it.
AliasTable t410_table()
{
    AliasTable good
        = table("bar: alice, bar\nbaz: alice, bak\nbak: alice\n", AliasFileKind::plain, "/etc/aliases");
    std::vector<config::AliasEntry> entries = good.entries();
    config::AliasTarget bogus;
    bogus.text = "bogus@";
    entries[2].targets.push_back(bogus);
    return AliasTable(AliasFileKind::plain, "/etc/aliases", std::move(entries));
}

} // namespace

TEST_CASE("alias expansion: t410, errors are per top-level recipient")
{
    Fixture f;
    f.plain = t410_table();
    check_cases(f,
        {
            { "alice", "mailbox:alice" },
            { "foo", "mailbox:foo" },
            { "bar", "error: alias loop: bar@host.example -> bar@host.example" },
            { "baz", "error: bad alias item 'bogus@' in /etc/aliases:3" },
            { "bak", "error: bad alias item 'bogus@' in /etc/aliases:3" },
        });
    std::vector<Result<Expansion>> all;
    for (const char* r : { "alice", "foo", "bar", "baz" })
        all.push_back(f.expand(r));
    drop_duplicate_leaves(all, f.cfg);
    CHECK(summary(all[0]) == "mailbox:alice");
    CHECK(summary(all[1]) == "mailbox:foo");
    CHECK_FALSE(all[2]);
    CHECK_FALSE(all[3]);
}

TEST_CASE("alias expansion: item kinds, qualification, chains")
{
    Fixture f;
    f.plain = table("root: \\root, bob\n"
                    "team: alice, Carol, x@remote.org, \\dave@remote.org, |/usr/bin/archive -q \"a b\"\n"
                    "alice: \\alice, |/bin/log $LOCAL_PART\n"
                    "nobody:\n"
                    "fwd: team\n",
        AliasFileKind::plain, "/etc/aliases");
    check_cases(f,
        {
            { "root", "final:root@host.example mailbox:bob" },
            { "team",
                "final:alice@host.example pipe:/bin/log|$LOCAL_PART mailbox:Carol remote:x@remote.org "
                "final:dave@remote.org pipe:/usr/bin/archive|-q|a b" },
            { "nobody", "" }, { "x@remote.org", "remote:x@remote.org" },
            { "root@localhost", "final:root@host.example mailbox:bob" },
            { "root@remote.org", "remote:root@remote.org" },
            { "list@host.example", "remote:list@host.example" }, // not_local_addresses
        });
    Result<Expansion> fwd = f.expand("fwd");
    REQUIRE(fwd);
    REQUIRE(fwd->leaves.size() == 6);
    CHECK(fwd->recipient == address("fwd"));
    CHECK(fwd->leaves[0].chain
        == std::vector<Address> { address("fwd"), address("team"), address("alice"), address("alice") });
    CHECK(fwd->leaves[0].local);
    CHECK(fwd->leaves[1].describe()
        == "fwd@host.example -> team@host.example -> alice@host.example -> |/bin/log $LOCAL_PART");
    CHECK(fwd->leaves[1].address == address("alice"));
    CHECK(fwd->leaves[1].local);
    CHECK_FALSE(fwd->leaves[3].local);
    CHECK_FALSE(fwd->leaves[4].local);
    CHECK(fwd->leaves[4].describe() == "fwd@host.example -> team@host.example -> dave@remote.org");
}

TEST_CASE("alias expansion: local_addresses are looked up by local part")
{
    Fixture f;
    f.plain = table("bob: alice\n", AliasFileKind::plain, "/etc/aliases");
    check_cases(f, { { "bob@remote.org", "mailbox:alice" }, { "bob@other.org", "remote:bob@other.org" } });
}

TEST_CASE("alias expansion: glob before plain at every level, mixed nesting")
{
    Fixture f;
    f.glob = table("admin@host.example: ops\n"
                   "ops@*: \\ops-glob\n"
                   "*-owner@host.example: postmaster\n"
                   "*@localhost: \\caught\n",
        AliasFileKind::glob, "/etc/globaliases");
    f.plain = table("admin: plain-admin\n"
                    "ops: plain-ops\n"
                    "postmaster: root\n"
                    "root: \\root, sales-owner\n"
                    "x: admin\n",
        AliasFileKind::plain, "/etc/aliases");
    check_cases(f,
        {
            { "admin", "final:ops-glob@host.example" }, // glob at level 0 and level 1
            { "x", "final:ops-glob@host.example" }, // plain, then glob twice
            { "ops", "final:ops-glob@host.example" },
            { "anything@localhost", "final:caught@host.example" },
            { "ADMIN@HOST.EXAMPLE", "mailbox:ADMIN" }, // local parts are case-sensitive by default
            { "admin@HOST.EXAMPLE", "final:ops-glob@host.example" }, // glob domain caseless
            { "list-owner",
                "error: alias loop: list-owner@host.example -> postmaster@host.example -> root@host.example "
                "-> "
                "sales-owner@host.example -> postmaster@host.example" },
        });
}

TEST_CASE("alias expansion: glob keys without '@' match the domain caselessly")
{
    Fixture f;
    f.glob = table("*host.example: \\all\n", AliasFileKind::glob, "/etc/globaliases");
    check_cases(f, { { "a@HOST.example", "final:all@host.example" }, { "a@localhost", "mailbox:a" } });
}

TEST_CASE("alias expansion: postmaster always caseless; caseless_matching on and off")
{
    Fixture f;
    f.plain
        = table("postmaster: root\nalice: \\alice-box\nroot: \\root\n", AliasFileKind::plain, "/etc/aliases");
    f.glob = table("sales@*: \\sales-box\n", AliasFileKind::glob, "/etc/globaliases");
    check_cases(f,
        {
            { "PostMaster", "final:root@host.example" },
            { "postmaster@LOCALHOST", "final:root@host.example" },
            { "Alice", "mailbox:Alice" },
            { "SALES", "mailbox:SALES" },
        });
    f.cfg = make_config(true);
    check_cases(f,
        {
            { "PostMaster", "final:root@host.example" },
            { "Alice", "final:alice-box@host.example" },
            { "SALES", "final:sales-box@host.example" },
        });
    Fixture g;
    g.plain = table("postmaster: Postmaster, \\root\n", AliasFileKind::plain, "/etc/aliases");
    CHECK(g.run("postmaster") == "error: alias loop: postmaster@host.example -> Postmaster@host.example");
}

TEST_CASE("alias expansion: loops direct and indirect; \\name stops them")
{
    Fixture f;
    f.plain = table("a: b\nb: c\nc: a\nroot: root, bob\nok: \\ok, bob\nself: Self\n", AliasFileKind::plain,
        "/etc/aliases");
    check_cases(f,
        {
            { "a",
                "error: alias loop: a@host.example -> b@host.example -> c@host.example -> a@host.example" },
            { "c",
                "error: alias loop: c@host.example -> a@host.example -> b@host.example -> c@host.example" },
            { "root", "error: alias loop: root@host.example -> root@host.example" },
            { "ok", "final:ok@host.example mailbox:bob" },
            { "self", "mailbox:Self" },
        });
    f.cfg = make_config(true);
    CHECK(f.run("self") == "error: alias loop: self@host.example -> Self@host.example");
}

TEST_CASE("alias expansion: a shared sub-alias is not a loop, and its leaves collapse")
{
    Fixture f;
    f.plain = table("top: left, right, alice\nleft: shared\nright: shared, |/bin/x\nshared: alice, bob\n",
        AliasFileKind::plain, "/etc/aliases");
    Result<Expansion> r = f.expand("top");
    CHECK(summary(r) == "mailbox:alice mailbox:bob pipe:/bin/x");
    REQUIRE(r);
    CHECK(r->leaves[0].describe()
        == "top@host.example -> left@host.example -> shared@host.example -> alice@host.example");
}

TEST_CASE("alias expansion: depth limit")
{
    std::string text;
    for (std::size_t i = 0; i < limits::alias_depth + 1; ++i)
        text += "l" + std::to_string(i) + ": l" + std::to_string(i + 1) + "\n";
    Fixture f;
    f.plain = table(text, AliasFileKind::plain, "/etc/aliases");
    CHECK(f.run("l1") == "mailbox:l" + std::to_string(limits::alias_depth + 1));
    std::string deep = f.run("l0");
    CHECK(deep.rfind("error: alias nesting deeper than " + std::to_string(limits::alias_depth) + ": l0@", 0)
        == 0);
}

TEST_CASE("alias expansion: fan-out limit on leaves and on work")
{
    auto items = [](const std::string& prefix, std::size_t n) {
        std::string out;
        for (std::size_t i = 0; i < n; ++i)
            out += (i == 0 ? "" : i % 100 == 0 ? ",\n " : ", ") + prefix + std::to_string(i);
        return out;
    };
    Fixture f;
    f.plain = table("wide: " + items("u", limits::alias_fanout) + "\nwider: wide, extra\n"
            + "r: " + items("x", limits::alias_fanout / 2) + "\n"
            + "s: " + items("y", limits::alias_fanout / 2) + "\nboth: r, s, r\n",
        AliasFileKind::plain, "/etc/aliases");
    Result<Expansion> wide = f.expand("wide");
    REQUIRE(wide);
    CHECK(wide->leaves.size() == limits::alias_fanout);
    CHECK(f.run("wider")
        == "error: alias expansion of wider@host.example gives more than "
            + std::to_string(limits::alias_fanout) + " recipients");
    Result<Expansion> both = f.expand("both");
    REQUIRE(both);
    CHECK(both->leaves.size() == limits::alias_fanout);

    // Many nodes, no leaves: every branch ends in an alias to nothing.
    std::string text = "empty:\nfan: " + items("e", 1000) + "\n";
    for (int i = 0; i < 1000; ++i)
        text += "e" + std::to_string(i) + ": " + items("z" + std::to_string(i) + "_", 300) + "\n";
    Fixture g;
    g.glob = table("z*@host.example: empty\n", AliasFileKind::glob, "/etc/globaliases");
    g.plain = table(text, AliasFileKind::plain, "/etc/aliases");
    std::string r = g.run("fan");
    CHECK(r.rfind("error: alias expansion of fan@host.example has more than", 0) == 0);
}

TEST_CASE("alias expansion: duplicates collapse within and across recipients")
{
    Fixture f;
    f.plain
        = table("a: alice, bob, alice@localhost, x@remote.org, X@REMOTE.org, x@REMOTE.ORG, |/bin/p, |/bin/p\n"
                "b: alice, |/bin/p, \\alice\n"
                "c: Alice\n",
            AliasFileKind::plain, "/etc/aliases");
    CHECK(f.run("a") == "mailbox:alice mailbox:bob remote:x@remote.org remote:X@REMOTE.org pipe:/bin/p");
    CHECK(f.run("b") == "mailbox:alice pipe:/bin/p");
    std::vector<Result<Expansion>> all;
    for (const char* r : { "a", "b", "alice", "c" })
        all.push_back(f.expand(r));
    drop_duplicate_leaves(all, f.cfg);
    CHECK(summary(all[0]) == "mailbox:alice mailbox:bob remote:x@remote.org remote:X@REMOTE.org pipe:/bin/p");
    CHECK(summary(all[1]) == "pipe:/bin/p"); // the same command for another alias still runs
    CHECK(summary(all[2]).empty());
    CHECK(summary(all[3]) == "mailbox:Alice");
    f.cfg = make_config(true);
    all.clear();
    for (const char* r : { "alice", "c" })
        all.push_back(f.expand(r));
    drop_duplicate_leaves(all, f.cfg);
    CHECK(summary(all[1]).empty());
}

TEST_CASE("alias expansion: unsafe mailbox names fail their recipient")
{
    Fixture f;
    f.plain = table("evil: \"../x\"@host.example\nsafe: alice\nhidden: \\\".profile\"@host.example\n",
        AliasFileKind::plain, "/etc/aliases");
    check_cases(f,
        {
            { "\"../x\"@host.example", "error: unsafe mailbox name '../x': \"../x\"@host.example" },
            { "a/b@localhost", "error: unsafe mailbox name 'a/b': a/b@localhost" },
            { "\".hidden\"@host.example", "error: unsafe mailbox name '.hidden': \".hidden\"@host.example" },
            { "evil", "error: unsafe mailbox name '../x': evil@host.example -> \"../x\"@host.example" },
            { "hidden",
                "error: unsafe mailbox name '.profile': hidden@host.example -> \".profile\"@host.example" },
            { "\"../x\"@remote.org", "remote:\"../x\"@remote.org" },
            { "safe", "mailbox:alice" },
        });
}

TEST_CASE("alias expansion: no tables")
{
    Fixture f;
    check_cases(f, { { "alice", "mailbox:alice" }, { "a@remote.org", "remote:a@remote.org" } });
}
