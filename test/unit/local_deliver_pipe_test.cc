// SPDX-License-Identifier: GPL-2.0-or-later
// local-deliver's program deliveries: expansion, environment, exit status,
// timeouts and output capture, with real programs (/bin/cat, /usr/bin/env,
// and small #!/bin/sh helpers written for the test).
#include "local_deliver_fixture.hh"
#include "pipe.hh"

#include "mm/limits.hh"

#include <chrono>
#include <fcntl.h>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using mm::local::DeliveryStatus;
using mm::local::MessageSource;
using mm::local::PipeCommand;
using mm::local::PipeOutcome;
using mm::test::TempDir;
using namespace mm::test;

namespace {

using Words = std::vector<std::string>;

PipeOutcome run(const Words& argv, std::string_view text = "S: x\n\nbody\n", mm::local::PipeOptions o = {},
    const mm::local::LocalEnvelope& env = envelope())
{
    if (o.output_limit == 1024)
        o.output_limit = 1 << 20;
    return mm::local::run_pipe(PipeCommand { argv }, MessageSource::from_text(text), env, o);
}

std::string script(const TempDir& t, const std::string& name, const std::string& body)
{
    std::string path = t.file(name);
    spit(path, "#!/bin/sh\n" + body);
    REQUIRE(::chmod(path.c_str(), 0700) == 0);
    return path;
}

std::set<std::string> lines(const std::string& text)
{
    std::set<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.insert(line);
    return out;
}

} // namespace

TEST_CASE("pipe: the environment is exactly masqmail's eleven variables")
{
    auto env = envelope("alice@example.net", "Bob@example.org", "carol@example.org");
    env.received_host = "client.example.net";
    PipeOutcome r = run({ "/usr/bin/env" }, "x\n", {}, env);
    REQUIRE(r.status.kind == DeliveryStatus::delivered);
    CHECK(lines(r.output)
        == std::set<std::string> { "RETURN_PATH=alice@example.net", "SENDER=alice@example.net",
            "SENDER_DOMAIN=example.net", "SENDER_LOCAL=alice", "RECEIVED_HOST=client.example.net",
            "DOMAIN=example.org", "LOCAL_PART=Bob", "USER=Bob", "LOGNAME=Bob", "MESSAGE_ID=1Abc23-0004Xy-7Q",
            "QUALIFY_DOMAIN=example.org" });
}

TEST_CASE("pipe: expansion after splitting, escapes, unknown and empty variables")
{
    auto env = envelope("<>", "bob@example.org", "carol@example.org");
    env.ident = "alice";
    auto cmd = mm::local::expand_command({ "/usr/bin/deliver", "$rcpt", "${rcpt_local}-x", "\\$rcpt",
                                             "$nosuch", "-f$return_path", "${uid}", "$ident@$rcpt_domain", "$",
                                             "a$-b" },
        env);
    REQUIRE(cmd);
    CHECK(cmd->argv
        == Words { "/usr/bin/deliver", "carol@example.org", "carol-x", "$rcpt", "", "-f", "1Abc23-0004Xy-7Q",
            "alice@example.org", "$", "a$-b" });
    CHECK_FALSE(mm::local::expand_command({ "/x", "${rcpt" }, env));
    CHECK_FALSE(mm::local::expand_command({ "x", "a" }, env));
    CHECK_FALSE(mm::local::expand_command({ "/x", std::string(mm::limits::command_arg - 5, 'a') + "$rcpt" }, env));
    CHECK(mm::local::expand_command({ "/x", std::string(mm::limits::command_arg, 'a') }, env));
    // The program path itself is never expanded.
    CHECK(mm::local::expand_command({ "/usr/lib/$rcpt_local" }, env)->argv.front() == "/usr/lib/$rcpt_local");
}

TEST_CASE("pipe: alias pipes are not expanded")
{
    auto cmd = mm::local::literal_command({ "/bin/echo", "$rcpt" });
    REQUIRE(cmd);
    CHECK(cmd->argv == Words { "/bin/echo", "$rcpt" });
    CHECK_FALSE(mm::local::literal_command({}));
    CHECK_FALSE(mm::local::literal_command({ "echo" }));
}

TEST_CASE("pipe: shell metacharacters in a recipient stay one literal argument (A1)")
{
    TempDir t;
    std::string rec = script(t, "rec", "for a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n");
    auto env = envelope("alice@example.net", "bob@example.org",
        "\"x;`touch " + t.file("p") + "`$(id)|&*<>'\\\"\"@example.org");
    auto cmd = mm::local::expand_command({ rec, "$rcpt_local", "$rcpt_domain" }, env);
    REQUIRE(cmd);
    auto r = mm::local::run_pipe(*cmd, MessageSource::from_text("x\n"), env, {});
    REQUIRE(r.status.kind == DeliveryStatus::delivered);
    CHECK(r.output == "[x;`touch " + t.file("p") + "`$(id)|&*<>'\"]\n[example.org]\n");
    CHECK(::access(t.file("p").c_str(), F_OK) != 0);
}

TEST_CASE("pipe: stdin is the message byte for byte, with fromline and fromhack as asked")
{
    ::setenv("TZ", "UTC", 1);
    ::tzset();
    const std::string msg = "S: x\n\nFrom me\nbody";
    const std::string headers = "Envelope-to: <bob@example.org>\nReturn-path: <alice@example.net>\n";
    mm::local::PipeOptions o;
    o.now = 1700000000;
    CHECK(run({ "/bin/cat" }, msg, o).output == headers + msg);
    o.from_line = true;
    CHECK(run({ "/bin/cat" }, msg, o).output
        == "From alice@example.net Tue Nov 14 22:13:20 2023\n" + headers + msg);
    o.from_hack = true;
    CHECK(run({ "/bin/cat" }, msg, o).output
        == "From alice@example.net Tue Nov 14 22:13:20 2023\n" + headers + "S: x\n\n>From me\nbody");
    std::string big(3 << 20, 'z');
    mm::local::PipeOptions large;
    large.output_limit = 4 << 20;
    auto r = run({ "/bin/cat" }, big, large);
    CHECK(r.output.size() == headers.size() + big.size());
    CHECK_FALSE(r.output_truncated);
    CHECK((r.output == headers + big)); // not printed when it fails
}

TEST_CASE("pipe: exit 75 defers, other exits and signals fail with their names")
{
    PipeOutcome tempfail = run({ "/bin/sh", "-c", "echo try later; exit 75" });
    CHECK(tempfail.status.kind == DeliveryStatus::deferred);
    CHECK(tempfail.status.reason == "`/bin/sh` returned 75 (EX_TEMPFAIL): try later");
    PipeOutcome nouser = run({ "/bin/sh", "-c", "exit 67" });
    CHECK(nouser.status.kind == DeliveryStatus::failed);
    CHECK(nouser.status.reason == "`/bin/sh` returned 67 (EX_NOUSER)");
    PipeOutcome one = run({ "/bin/false" });
    CHECK(one.status.kind == DeliveryStatus::failed);
    CHECK(one.status.reason == "`/bin/false` returned 1");
    PipeOutcome killed = run({ "/bin/sh", "-c", "kill -9 $$" });
    CHECK(killed.status.kind == DeliveryStatus::failed);
    CHECK(killed.status.reason == "`/bin/sh` killed by signal 9 (SIGKILL)");
    CHECK(run({ "/bin/true" }).status.kind == DeliveryStatus::delivered);
}

TEST_CASE("pipe: a program that cannot start fails")
{
    PipeOutcome missing = run({ "/nonexistent/mda" });
    CHECK(missing.status.kind == DeliveryStatus::failed);
    CHECK_THAT(missing.status.reason, Catch::Contains("cannot run `/nonexistent/mda`"));
    CHECK(run({ "bin/true" }).status.kind == DeliveryStatus::failed);
    CHECK(run({}).status.kind == DeliveryStatus::failed);
}

TEST_CASE("pipe: a program that stops reading is judged by its exit status")
{
    std::string big(4 << 20, 'y');
    CHECK(run({ "/bin/true" }, big).status.kind == DeliveryStatus::delivered);
    CHECK(run({ "/usr/bin/head", "-c", "10" }, big).status.kind == DeliveryStatus::delivered);
    CHECK(run({ "/bin/false" }, big).status.kind == DeliveryStatus::failed);
}

TEST_CASE("pipe: the timeout kills the program and its group and defers")
{
    mm::local::PipeOptions o;
    o.timeout = std::chrono::milliseconds(200);
    o.kill_grace = std::chrono::milliseconds(200);
    auto start = std::chrono::steady_clock::now();
    PipeOutcome r = run({ "/bin/sleep", "30" }, "x\n", o);
    CHECK(r.status.kind == DeliveryStatus::deferred);
    CHECK_THAT(r.status.reason, Catch::Contains("timed out"));
    PipeOutcome stubborn = run({ "/bin/sh", "-c", "trap '' TERM; /bin/sleep 30; /bin/sleep 30" }, "x\n", o);
    CHECK(stubborn.status.kind == DeliveryStatus::deferred);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("pipe: output is captured, bounded, and never reaches our own stdout or stderr")
{
    TempDir t;
    int saved_out = ::dup(1);
    int saved_err = ::dup(2);
    int sink = ::open(t.file("ours").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(sink >= 0);
    ::dup2(sink, 1);
    ::dup2(sink, 2);
    PipeOutcome r = run({ "/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2" });
    mm::local::PipeOptions small;
    small.output_limit = 10;
    PipeOutcome cut = run({ "/bin/sh", "-c", "echo 0123456789abcdef" }, "x\n", small);
    ::dup2(saved_out, 1);
    ::dup2(saved_err, 2);
    ::close(saved_out);
    ::close(saved_err);
    ::close(sink);
    CHECK(r.output == "to-stdout\nto-stderr\n");
    CHECK(cut.output == "0123456789");
    CHECK(cut.output_truncated);
    CHECK(slurp(t.file("ours")).empty());
}

TEST_CASE("pipe: no descriptor but stdin, stdout and stderr reaches the program")
{
    int leak = ::open("/dev/null", O_RDONLY); // deliberately without O_CLOEXEC
    REQUIRE(leak >= 0);
    PipeOutcome r = run({ "/bin/ls", "/proc/self/fd" });
    ::close(leak);
    REQUIRE(r.status.kind == DeliveryStatus::delivered);
    CHECK(r.output == "0\n1\n2\n3\n"); // 3: the directory ls itself reads
}
