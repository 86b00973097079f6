// SPDX-License-Identifier: GPL-2.0-or-later
// local-deliver's mbox and Maildir transports against a real scratch
// directory, including the traps a hostile user can set in it.
#include "local_deliver_fixture.hh"
#include "maildir.hh"
#include "mbox.hh"

#include "mm/limits.hh"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <set>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using mm::local::DeliveryStatus;
using mm::local::MessageSource;
using mm::test::TempDir;
using namespace mm::test;

namespace {

constexpr std::time_t when = 1700000000; // Tue Nov 14 22:13:20 2023 UTC

mm::local::MboxOptions mbox_options()
{
    ::setenv("TZ", "UTC", 1);
    ::tzset();
    mm::local::MboxOptions o;
    o.owner = ::getuid();
    o.now = when;
    o.lock_wait = std::chrono::milliseconds(50);
    o.lock_retry = std::chrono::milliseconds(10);
    return o;
}

DeliveryStatus mbox(const TempDir& t, std::string_view name, std::string_view text,
    const mm::local::LocalEnvelope& env = envelope())
{
    mm::Dir dir = open_dir_or_fail(t.path());
    return mm::local::deliver_mbox(dir, name, MessageSource::from_text(text), env, mbox_options());
}

const std::string head = "From alice@example.net Tue Nov 14 22:13:20 2023\n"
                         "Envelope-to: <bob@example.org>\nReturn-path: <alice@example.net>\n";

} // namespace

TEST_CASE("mbox: From_ line, prepended headers, >From quoting, blank line")
{
    TempDir t;
    DeliveryStatus s = mbox(t, "bob", "Subject: hi\n\nFrom me\n>From x\nFrom\nFromage\nFrom  two\nlast");
    REQUIRE(s.kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob"))
        == head + "Subject: hi\n\n>From me\n>From x\nFrom\nFromage\n>From  two\nlast\n\n");
    struct stat st {};
    REQUIRE(::stat(t.file("bob").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(::access(t.file("bob.lock").c_str(), F_OK) != 0);
}

TEST_CASE("mbox: null sender is MAILER-DAEMON in the From_ line and <> in Return-path")
{
    TempDir t;
    REQUIRE(mbox(t, "bob", "S: x\n\nbody\n", envelope("<>")).kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob"))
        == "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\nEnvelope-to: <bob@example.org>\n"
           "Return-path: <>\nS: x\n\nbody\n\n");
}

TEST_CASE("mbox: appends to an existing mailbox")
{
    TempDir t;
    spit(t.file("bob"), "old\n\n");
    REQUIRE(mbox(t, "bob", "A: 1\n\none\n").kind == DeliveryStatus::delivered);
    REQUIRE(mbox(t, "bob", "A: 2\n\ntwo\n").kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob")) == "old\n\n" + head + "A: 1\n\none\n\n" + head + "A: 2\n\ntwo\n\n");
}

TEST_CASE("mbox: content from a spool fd range, quoting across read chunks")
{
    TempDir t;
    std::string content = std::string(65533, 'a') + "\nFrom x\nFrom";
    spit(t.file("spool"), "HEADER-RECORDS" + content + "TRAILER");
    auto fd = mm::open_at(open_dir_or_fail(t.path()), "spool", O_RDONLY);
    REQUIRE(fd);
    mm::Dir dir = open_dir_or_fail(t.path());
    DeliveryStatus s = mm::local::deliver_mbox(dir, "bob", MessageSource::from_fd(*fd, 14, content.size()),
        envelope(), mbox_options());
    REQUIRE(s.kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob")) == head + std::string(65533, 'a') + "\n>From x\nFrom\n\n");
}

TEST_CASE("mbox batch: several messages under one lock, in order, each with its own envelope")
{
    TempDir t;
    spit(t.file("bob"), "old\n\n");
    mm::Dir dir = open_dir_or_fail(t.path());
    auto one = MessageSource::from_text("A: 1\n\none\n");
    auto two = MessageSource::from_text("A: 2\n\ntwo");
    auto env_two = envelope("<>");
    auto env_one = envelope();
    std::vector<mm::local::MboxItem> items { { &one, &env_one }, { &two, &env_two } };
    auto statuses = mm::local::deliver_mbox_batch(dir, "bob", items, mbox_options());
    REQUIRE(statuses.size() == 2);
    CHECK(statuses[0].kind == DeliveryStatus::delivered);
    CHECK(statuses[1].kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob"))
        == "old\n\n" + head + "A: 1\n\none\n\n"
            + "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\nEnvelope-to: <bob@example.org>\nReturn-path: <>\n"
            + "A: 2\n\ntwo\n\n");
    CHECK(::access(t.file("bob.lock").c_str(), F_OK) != 0);
}

TEST_CASE("mbox batch: a message that cannot be read is cut back and fails alone")
{
    TempDir t;
    std::string content = "Subject: s\n\n" + std::string(200000, 'b') + "\n";
    spit(t.file("spool"), content);
    auto fd = mm::open_at(open_dir_or_fail(t.path()), "spool", O_RDONLY);
    REQUIRE(fd);
    mm::Dir dir = open_dir_or_fail(t.path());
    auto good = MessageSource::from_text("A: 1\n\none\n");
    // Claims more than the file holds: the read fails after the first chunks were written.
    auto shrunk = MessageSource::from_fd(*fd, 0, content.size() + 1000);
    auto last = MessageSource::from_text("A: 3\n\nthree\n");
    auto env = envelope();
    std::vector<mm::local::MboxItem> items { { &good, &env }, { &shrunk, &env }, { &last, &env } };
    auto statuses = mm::local::deliver_mbox_batch(dir, "bob", items, mbox_options());
    REQUIRE(statuses.size() == 3);
    CHECK(statuses[0].kind == DeliveryStatus::delivered);
    CHECK(statuses[1].kind == DeliveryStatus::deferred);
    CHECK(statuses[1].reason.find("cut back") != std::string::npos);
    CHECK(statuses[2].kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob")) == head + "A: 1\n\none\n\n" + head + "A: 3\n\nthree\n\n");
}

TEST_CASE("mbox batch: a locked mailbox defers every message of the batch")
{
    TempDir t;
    spit(t.file("bob.lock"), "");
    mm::Dir dir = open_dir_or_fail(t.path());
    auto one = MessageSource::from_text("A: 1\n\none\n");
    auto env = envelope();
    std::vector<mm::local::MboxItem> items { { &one, &env }, { &one, &env } };
    auto statuses = mm::local::deliver_mbox_batch(dir, "bob", items, mbox_options());
    REQUIRE(statuses.size() == 2);
    for (const DeliveryStatus& s : statuses) {
        CHECK(s.kind == DeliveryStatus::deferred);
        CHECK(s.reason.find("locked") != std::string::npos);
    }
    CHECK(!std::filesystem::exists(t.file("bob")));
}

TEST_CASE("mbox: unsafe mailbox names fail")
{
    TempDir t;
    for (const std::string& name : std::vector<std::string> { "", ".hidden", "..", "../etc", "a/b", "x\ny",
             std::string(252, 'x') }) {
        DeliveryStatus s = mbox(t, name, "x\n");
        CHECK(s.kind == DeliveryStatus::failed);
    }
}

TEST_CASE("mbox: a symlinked mailbox is refused and its target untouched")
{
    TempDir t;
    spit(t.file("target"), "secret\n");
    REQUIRE(::symlink(t.file("target").c_str(), t.file("bob").c_str()) == 0);
    REQUIRE(::symlink("/etc/passwd", t.file("carol").c_str()) == 0);
    std::string passwd = slurp("/etc/passwd");
    DeliveryStatus s = mbox(t, "bob", "x\n");
    CHECK(s.kind == DeliveryStatus::failed);
    CHECK_THAT(s.reason, Catch::Contains("symbolic link"));
    CHECK(mbox(t, "carol", "x\n").kind == DeliveryStatus::failed);
    CHECK(slurp(t.file("target")) == "secret\n");
    CHECK(slurp("/etc/passwd") == passwd);
}

TEST_CASE("mbox: a hard-linked mailbox is refused")
{
    TempDir t;
    spit(t.file("other"), "theirs\n");
    REQUIRE(::link(t.file("other").c_str(), t.file("bob").c_str()) == 0);
    DeliveryStatus s = mbox(t, "bob", "x\n");
    CHECK(s.kind == DeliveryStatus::failed);
    CHECK_THAT(s.reason, Catch::Contains("2 hard links"));
    CHECK(slurp(t.file("other")) == "theirs\n");
}

TEST_CASE("mbox: a FIFO or directory as mailbox fails without blocking")
{
    TempDir t;
    REQUIRE(::mkfifo(t.file("bob").c_str(), 0600) == 0);
    REQUIRE(::mkdir(t.file("carol").c_str(), 0700) == 0);
    CHECK(mbox(t, "bob", "x\n").kind == DeliveryStatus::failed);
    CHECK(mbox(t, "carol", "x\n").kind == DeliveryStatus::failed);
}

TEST_CASE("mbox: a mailbox of another uid is refused")
{
    TempDir t;
    mm::Dir dir = open_dir_or_fail(t.path());
    auto o = mbox_options();
    o.owner = ::getuid() + 1;
    DeliveryStatus s = mm::local::deliver_mbox(dir, "bob", MessageSource::from_text("x\n"), envelope(), o);
    CHECK(s.kind == DeliveryStatus::failed);
    CHECK_THAT(s.reason, Catch::Contains("belongs to uid"));
}

TEST_CASE("mbox: a busy dot-lock defers, a stale one is removed")
{
    TempDir t;
    spit(t.file("bob.lock"), "");
    DeliveryStatus s = mbox(t, "bob", "x\n");
    CHECK(s.kind == DeliveryStatus::deferred);
    CHECK_THAT(s.reason, Catch::Contains("locked"));
    CHECK(::access(t.file("bob").c_str(), F_OK) != 0);
    CHECK(::access(t.file("bob.lock").c_str(), F_OK) == 0); // not ours to remove

    struct timespec old[2] { { when, 0 }, { when, 0 } };
    REQUIRE(::utimensat(AT_FDCWD, t.file("bob.lock").c_str(), old, 0) == 0);
    CHECK(mbox(t, "bob", "x\n").kind == DeliveryStatus::delivered);
    CHECK(::access(t.file("bob.lock").c_str(), F_OK) != 0);
}

namespace {

// A pid that certainly names no process: a child that has been reaped.
pid_t dead_pid()
{
    pid_t pid = ::fork();
    if (pid == 0)
        ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return pid;
}

// Sets a file's times to the past, as a dead writer's last write would be.
void age(const std::string& path)
{
    struct timespec old[2] { { when, 0 }, { when, 0 } };
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), old, 0) == 0);
}

ino_t inode_of(const std::string& path)
{
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_ino;
}

} // namespace

TEST_CASE("mbox: a delivery killed mid-append leaves a fragment the next one cuts off")
{
    TempDir t;
    const std::string before = "existing\n\n";
    spit(t.file("bob"), before + "From root Fri Dec  4 13:46:14 2026\nEnvelope-to: <bob@exa");
    age(t.file("bob")); // last written by the dead writer, before the break
    spit(t.file("bob.lock"), std::to_string(dead_pid()) + " " + std::to_string(before.size()) + " "
            + std::to_string(inode_of(t.file("bob"))) + "\n");
    // Fresh (not aged): a dead writer's lock is broken at once.
    REQUIRE(mbox(t, "bob", "x\n").kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob")) == before + head + "x\n\n");
    CHECK(::access(t.file("bob.lock").c_str(), F_OK) != 0);
    for (const auto& entry : std::filesystem::directory_iterator(t.path()))
        CHECK(entry.path().filename().string().find(".stale.") == std::string::npos);
}

TEST_CASE("mbox: a fragment written in the very tick of the break is still cut off")
{
    // Found by test/integration/crash_test.py: a writer killed right after
    // its last write, whose lock was broken within the same tick of the
    // coarse clock file times come from, left its fragment for good (the
    // mailbox looked written at the break). Unchanged since the break, it is
    // the dead writer's alone. (Whether the tick is the same here depends on
    // timing; either way the fragment must go.)
    TempDir t;
    const std::string before = "existing\n\n";
    spit(t.file("bob"), before + "From root Fri Dec  4 13:46:14 2026\nSubject: ha");
    spit(t.file("bob.lock"), std::to_string(dead_pid()) + " " + std::to_string(before.size()) + " "
            + std::to_string(inode_of(t.file("bob"))) + "\n");
    REQUIRE(::utimensat(AT_FDCWD, t.file("bob").c_str(), nullptr, 0) == 0); // written now
    REQUIRE(mbox(t, "bob", "x\n").kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob")) == before + head + "x\n\n");
}

TEST_CASE("mbox: a writer killed after breaking a dead writer's lock passes its record on")
{
    // Found by test/integration/crash_test.py: two delivery processes killed
    // one after the other left a fragment no later delivery could cut.
    TempDir t;
    const std::string before = "existing\n\n";
    spit(t.file("bob"), before + "From root Fri Dec  4 13:46:14 2026\nEnvelope-to: <bob@exa");
    age(t.file("bob"));
    spit(t.file("bob.lock"), std::to_string(dead_pid()) + " " + std::to_string(before.size()) + " "
            + std::to_string(inode_of(t.file("bob"))) + "\n");
    // The second writer breaks that lock, takes its own and waits for the
    // fcntl lock held here; it is killed there, before it could cut.
    int held = ::open(t.file("bob").c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(held >= 0);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    REQUIRE(::fcntl(held, F_OFD_SETLK, &fl) == 0);
    mm::Dir dir = open_dir_or_fail(t.path());
    mm::local::MboxOptions patient = mbox_options();
    patient.lock_wait = std::chrono::seconds(60);
    pid_t second = ::fork();
    REQUIRE(second >= 0);
    if (second == 0) {
        (void)mm::local::deliver_mbox(dir, "bob", MessageSource::from_text("x\n"), envelope(), patient);
        ::_exit(0);
    }
    bool waiting = false;
    for (int i = 0; i < 3000 && !waiting; ++i) {
        std::string lock = slurp(t.file("bob.lock"));
        waiting = lock.starts_with(std::to_string(second) + " ") || lock == std::to_string(second) + "\n";
        if (!waiting)
            ::usleep(10000);
    }
    ::kill(second, SIGKILL);
    ::waitpid(second, nullptr, 0);
    ::close(held);
    REQUIRE(waiting);
    REQUIRE(mbox(t, "bob", "y\n").kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob")) == before + head + "y\n\n");
}

TEST_CASE("mbox: a writer that is a zombie not yet reaped counts as dead")
{
    TempDir t;
    const std::string before = "existing\n\n";
    spit(t.file("bob"), before + "From root Fri Dec  4 13:46:14 2026\nSubject: ha");
    age(t.file("bob"));
    pid_t zombie = ::fork();
    if (zombie == 0)
        ::_exit(0);
    REQUIRE(zombie > 0);
    siginfo_t info {};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(zombie), &info, WEXITED | WNOWAIT) == 0); // exited, not reaped
    spit(t.file("bob.lock"), std::to_string(zombie) + " " + std::to_string(before.size()) + " "
            + std::to_string(inode_of(t.file("bob"))) + "\n");
    DeliveryStatus s = mbox(t, "bob", "x\n");
    ::waitpid(zombie, nullptr, 0);
    REQUIRE(s.kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob")) == before + head + "x\n\n");
}

TEST_CASE("mbox: a mailbox written after the dead writer's lock was broken is never cut")
{
    TempDir t;
    const std::string before = "existing\n\n";
    const std::string fragment = "From root Fri Dec  4 13:46:14 2026\nSubject: ha";
    spit(t.file("bob"), before + fragment);
    spit(t.file("bob.lock"), std::to_string(dead_pid()) + " " + std::to_string(before.size()) + " "
            + std::to_string(inode_of(t.file("bob"))) + "\n");
    // The next writer breaks that lock and waits for the fcntl lock held
    // here, while someone alive appends (a program that takes only fcntl
    // locks, say): what it appended must survive.
    int held = ::open(t.file("bob").c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    REQUIRE(held >= 0);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    REQUIRE(::fcntl(held, F_OFD_SETLK, &fl) == 0);
    mm::Dir dir = open_dir_or_fail(t.path());
    mm::local::MboxOptions patient = mbox_options();
    patient.lock_wait = std::chrono::seconds(60);
    pid_t writer = ::fork();
    REQUIRE(writer >= 0);
    if (writer == 0) {
        ::close(held); // the lock is the parent's: it ends when the parent closes its descriptor
        auto s = mm::local::deliver_mbox(dir, "bob", MessageSource::from_text("x\n"), envelope(), patient);
        spit(t.file("why"), s.reason);
        ::_exit(s.kind == DeliveryStatus::delivered ? 0 : 1);
    }
    bool waiting = false;
    for (int i = 0; i < 3000 && !waiting; ++i) {
        std::string lock = slurp(t.file("bob.lock"));
        waiting = lock.starts_with(std::to_string(writer) + " ") || lock == std::to_string(writer) + "\n";
        if (!waiting)
            ::usleep(10000);
    }
    const std::string appended = "\n\nFrom x Fri Dec  4 13:46:14 2026\nSubject: live\n\nbody\n\n";
    CHECK(::write(held, appended.data(), appended.size()) == static_cast<ssize_t>(appended.size()));
    ::close(held);
    int status = -1;
    ::waitpid(writer, &status, 0);
    REQUIRE(waiting);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    INFO(slurp(t.file("why")));
    CHECK(slurp(t.file("bob")) == before + fragment + appended + head + "x\n\n");
}

TEST_CASE("mbox: a fragment that cannot be cut is kept apart, never glued to the next message")
{
    const std::string before = "existing\n\nFrom x Fri Dec  4 13:46:14 2026\nSubject: half";
    SECTION("the dead writer's lock holds only its pid")
    {
        TempDir t;
        spit(t.file("bob"), before);
        spit(t.file("bob.lock"), std::to_string(dead_pid()) + "\n");
        REQUIRE(mbox(t, "bob", "x\n").kind == DeliveryStatus::delivered);
        CHECK(slurp(t.file("bob")) == before + "\n\n" + head + "x\n\n");
    }
    SECTION("the record names another mailbox file (replaced since)")
    {
        TempDir t;
        spit(t.file("bob"), before);
        spit(t.file("bob.lock"), std::to_string(dead_pid()) + " 10 " + std::to_string(inode_of(t.file("bob")) + 1)
                + "\n");
        REQUIRE(mbox(t, "bob", "x\n").kind == DeliveryStatus::delivered);
        CHECK(slurp(t.file("bob")) == before + "\n\n" + head + "x\n\n");
    }
    SECTION("no lock at all; a mailbox ending in one line end gets one more")
    {
        TempDir t;
        spit(t.file("bob"), "existing\n");
        REQUIRE(mbox(t, "bob", "x\n").kind == DeliveryStatus::delivered);
        CHECK(slurp(t.file("bob")) == "existing\n\n" + head + "x\n\n");
    }
}

TEST_CASE("mbox: a live writer's lock is never broken early, nor its append cut")
{
    TempDir t;
    const std::string before = "existing\n\n";
    spit(t.file("bob"), before + "A: 1\n\nwritten by the live writer\n\n");
    // This process is alive: its lock waits for stale_lock like anyone's.
    spit(t.file("bob.lock"), std::to_string(::getpid()) + " " + std::to_string(before.size()) + " "
            + std::to_string(inode_of(t.file("bob"))) + "\n");
    CHECK(mbox(t, "bob", "x\n").kind == DeliveryStatus::deferred);
    struct timespec old[2] { { when, 0 }, { when, 0 } };
    REQUIRE(::utimensat(AT_FDCWD, t.file("bob.lock").c_str(), old, 0) == 0);
    REQUIRE(mbox(t, "bob", "x\n").kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob")) == before + "A: 1\n\nwritten by the live writer\n\n" + head + "x\n\n");
}

TEST_CASE("mbox: a planted dot-lock symlink is a lock, never followed")
{
    TempDir t;
    REQUIRE(::symlink(t.file("elsewhere").c_str(), t.file("bob.lock").c_str()) == 0);
    CHECK(mbox(t, "bob", "x\n").kind == DeliveryStatus::deferred);
    CHECK(::access(t.file("elsewhere").c_str(), F_OK) != 0);
}

TEST_CASE("mbox: a busy fcntl lock defers")
{
    TempDir t;
    spit(t.file("bob"), "");
    int fd = ::open(t.file("bob").c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    REQUIRE(::fcntl(fd, F_OFD_SETLK, &fl) == 0); // conflicts with our process-owned lock
    DeliveryStatus s = mbox(t, "bob", "x\n");
    ::close(fd);
    CHECK(s.kind == DeliveryStatus::deferred);
    CHECK(slurp(t.file("bob")).empty());
    CHECK(::access(t.file("bob.lock").c_str(), F_OK) != 0);
}

TEST_CASE("mbox: without permission for a dot-lock, fcntl alone guards the append")
{
    if (::geteuid() == 0)
        return; // root ignores directory permissions
    TempDir t;
    spit(t.file("bob"), "");
    REQUIRE(::chmod(t.path().c_str(), 0500) == 0);
    DeliveryStatus s = mbox(t, "bob", "x\n");
    REQUIRE(::chmod(t.path().c_str(), 0700) == 0);
    CHECK(s.kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("bob")) == head + "x\n\n");
}

TEST_CASE("mbox: a write error cuts the mailbox back and defers")
{
    TempDir t;
    spit(t.file("bob"), "existing\n\n");
    struct rlimit old {};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN); // the daemon child ignores it too
    struct rlimit small = old;
    small.rlim_cur = 4096;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    DeliveryStatus s = mbox(t, "bob", "S: big\n\n" + std::string(100000, 'x') + "\n");
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    CHECK(s.kind == DeliveryStatus::deferred);
    CHECK_THAT(s.reason, Catch::Contains("cut back to 10 bytes"));
    CHECK(slurp(t.file("bob")) == "existing\n\n");
}

TEST_CASE("mbox: deliver_mbox_path takes an absolute path")
{
    TempDir t;
    auto o = mbox_options();
    auto src = MessageSource::from_text("x\n");
    CHECK(mm::local::deliver_mbox_path(t.file("box"), src, envelope(), o).kind == DeliveryStatus::delivered);
    CHECK(slurp(t.file("box")) == head + "x\n\n");
    CHECK(mm::local::deliver_mbox_path("box", src, envelope(), o).kind == DeliveryStatus::failed);
    CHECK(mm::local::deliver_mbox_path(t.path() + "/", src, envelope(), o).kind == DeliveryStatus::failed);
}

namespace {

mm::local::MaildirOptions maildir_options()
{
    return { ::getuid(), "host.example.org" };
}

DeliveryStatus maildir(const TempDir& t, std::string_view name, std::string_view text)
{
    mm::Dir dir = open_dir_or_fail(t.path());
    return mm::local::deliver_maildir(dir, name, MessageSource::from_text(text), envelope(), maildir_options());
}

std::set<std::string> names_in(const std::string& path)
{
    auto list = mm::list_dir(open_dir_or_fail(path), 100000);
    REQUIRE(list);
    return { list->begin(), list->end() };
}

} // namespace

TEST_CASE("Maildir: created with tmp/new/cur, message in new/, no From_ line")
{
    TempDir t;
    REQUIRE(maildir(t, "bob", "Subject: hi\n\nFrom me\n").kind == DeliveryStatus::delivered);
    for (const char* sub : { "bob", "bob/tmp", "bob/new", "bob/cur" }) {
        struct stat st {};
        REQUIRE(::lstat(t.file(sub).c_str(), &st) == 0);
        CHECK(S_ISDIR(st.st_mode));
        CHECK((st.st_mode & 07777) == 0700);
    }
    CHECK(names_in(t.file("bob/tmp")).empty());
    CHECK(names_in(t.file("bob/cur")).empty());
    auto fresh = names_in(t.file("bob/new"));
    REQUIRE(fresh.size() == 1);
    CHECK_THAT(*fresh.begin(), Catch::EndsWith(".host.example.org"));
    CHECK(slurp(t.file("bob/new/" + *fresh.begin()))
        == "Envelope-to: <bob@example.org>\nReturn-path: <alice@example.net>\nSubject: hi\n\nFrom me\n");
}

TEST_CASE("Maildir: 1000 deliveries get 1000 unique names")
{
    // 2000 fsyncs take seconds on a disk and nothing on tmpfs; names are the point here.
    const char* old = std::getenv("TMPDIR");
    std::string saved = old != nullptr ? old : "";
    if (::access("/dev/shm", W_OK) == 0)
        ::setenv("TMPDIR", "/dev/shm", 1);
    TempDir t;
    if (old != nullptr)
        ::setenv("TMPDIR", saved.c_str(), 1);
    else
        ::unsetenv("TMPDIR");
    for (int i = 0; i < 1000; ++i)
        REQUIRE(maildir(t, "bob", "n: " + std::to_string(i) + "\n").kind == DeliveryStatus::delivered);
    CHECK(names_in(t.file("bob/new")).size() == 1000);
    CHECK(names_in(t.file("bob/tmp")).empty());
}

TEST_CASE("Maildir: symlinks and non-directories in the path fail")
{
    TempDir t;
    REQUIRE(::mkdir(t.file("elsewhere").c_str(), 0700) == 0);
    REQUIRE(::symlink(t.file("elsewhere").c_str(), t.file("bob").c_str()) == 0);
    CHECK(maildir(t, "bob", "x\n").kind == DeliveryStatus::failed);
    CHECK(names_in(t.file("elsewhere")).empty());

    REQUIRE(::mkdir(t.file("carol").c_str(), 0700) == 0);
    REQUIRE(::symlink(t.file("elsewhere").c_str(), t.file("carol/new").c_str()) == 0);
    CHECK(maildir(t, "carol", "x\n").kind == DeliveryStatus::failed);
    CHECK(names_in(t.file("elsewhere")).empty());

    spit(t.file("dave"), "a file\n");
    CHECK(maildir(t, "dave", "x\n").kind == DeliveryStatus::failed);
    CHECK(maildir(t, "../x", "x\n").kind == DeliveryStatus::failed);
}

TEST_CASE("Maildir: a Maildir of another uid is refused")
{
    TempDir t;
    mm::Dir dir = open_dir_or_fail(t.path());
    auto o = maildir_options();
    o.owner = ::getuid() + 1;
    auto s = mm::local::deliver_maildir(dir, "bob", MessageSource::from_text("x\n"), envelope(), o);
    CHECK(s.kind == DeliveryStatus::failed);
}

TEST_CASE("Maildir: unwritable Maildir defers")
{
    if (::geteuid() == 0)
        return; // root ignores directory permissions
    TempDir t;
    REQUIRE(maildir(t, "bob", "x\n").kind == DeliveryStatus::delivered);
    REQUIRE(::chmod(t.file("bob/tmp").c_str(), 0500) == 0);
    CHECK(maildir(t, "bob", "x\n").kind == DeliveryStatus::deferred);
    REQUIRE(::chmod(t.file("bob/tmp").c_str(), 0700) == 0);
}

TEST_CASE("Maildir: unique names sanitise the host")
{
    std::string n = mm::local::maildir_unique_name("a/b:c d");
    CHECK_THAT(n, Catch::EndsWith(".a\\057b\\072cd"));
    CHECK(n.find('/') == std::string::npos);
    CHECK(mm::local::maildir_unique_name("") != mm::local::maildir_unique_name(""));
}

TEST_CASE("DeliveryStatus reasons are printable and bounded")
{
    auto s = DeliveryStatus::fail(std::string("a\nb\x01") + std::string(1000, 'x'));
    CHECK(s.reason.size() == mm::limits::error_text);
    CHECK(s.reason.substr(0, 4) == "a?b?");
}
