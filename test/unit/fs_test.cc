// SPDX-License-Identifier: GPL-2.0-or-later
#include "catch.hh"
#include "mm/fs.hh"

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using mm::test::TempDir;

namespace {

mm::Dir open(const TempDir& t)
{
    auto d = mm::open_dir(t.path());
    REQUIRE(d);
    return std::move(d).value();
}

} // namespace

TEST_CASE("is_safe_name refuses path tricks")
{
    CHECK(mm::is_safe_name("1700000000.abcdef"));
    CHECK_FALSE(mm::is_safe_name(""));
    CHECK_FALSE(mm::is_safe_name("."));
    CHECK_FALSE(mm::is_safe_name(".."));
    CHECK_FALSE(mm::is_safe_name("a/b"));
    CHECK_FALSE(mm::is_safe_name("../etc/passwd"));
    CHECK_FALSE(mm::is_safe_name(std::string("a\0b", 3)));
    CHECK_FALSE(mm::is_safe_name(std::string(256, 'x')));
    CHECK(mm::is_safe_name(std::string(255, 'x')));
}

TEST_CASE("Fd is move-only and closes once")
{
    int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(raw >= 0);
    mm::Fd a(raw);
    mm::Fd b(std::move(a));
    CHECK_FALSE(a.valid());
    CHECK(b.get() == raw);
    CHECK(b.close().has_value());
    CHECK_FALSE(b.valid());
    CHECK(::fcntl(raw, F_GETFD) == -1);
    CHECK(b.close().has_value()); // closing an empty Fd is a no-op
}

TEST_CASE("create, write, read back, fsync")
{
    TempDir t;
    mm::Dir d = open(t);
    auto fd = mm::create_at(d, "f", 0600);
    REQUIRE(fd);
    REQUIRE(mm::write_all(*fd, "hello\n"));
    REQUIRE(mm::fsync_file(*fd));
    REQUIRE(fd->close());
    REQUIRE(mm::fsync_dir(d));
    auto data = mm::read_file_at(d, "f", 100);
    REQUIRE(data);
    CHECK(*data == "hello\n");
    struct stat st{};
    REQUIRE(::stat(t.file("f").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);

    SECTION("create_at is exclusive")
    {
        auto again = mm::create_at(d, "f");
        REQUIRE_FALSE(again);
        CHECK(again.error().sys_errno() == EEXIST);
    }
    SECTION("reading more than the bound is an error, not a truncation")
    {
        auto small = mm::read_file_at(d, "f", 5);
        REQUIRE_FALSE(small);
        CHECK(small.error().kind() == mm::ErrorKind::permanent);
    }
}

TEST_CASE("open_at never follows a symlink")
{
    TempDir t;
    mm::Dir d = open(t);
    REQUIRE(::symlink("/etc/passwd", t.file("link").c_str()) == 0);
    auto fd = mm::open_at(d, "link", O_RDONLY);
    REQUIRE_FALSE(fd);
    CHECK(fd.error().sys_errno() == ELOOP);
    auto dir = mm::open_dir_at(d, "link");
    REQUIRE_FALSE(dir);
}

TEST_CASE("helpers refuse unsafe names before any system call")
{
    TempDir t;
    mm::Dir d = open(t);
    CHECK_FALSE(mm::open_at(d, "../x", O_RDONLY));
    CHECK_FALSE(mm::create_at(d, "a/b"));
    CHECK_FALSE(mm::unlink_at(d, ".."));
    CHECK_FALSE(mm::rename_at(d, "a", d, "../b"));
    CHECK_FALSE(mm::make_dir_at(d, ".", 0700));
}

TEST_CASE("read_file_at refuses what is not a regular file")
{
    TempDir t;
    mm::Dir d = open(t);
    REQUIRE(mm::make_dir_at(d, "sub", 0700));
    REQUIRE(mm::make_dir_at(d, "sub", 0700)); // existing directory is fine
    auto r = mm::read_file_at(d, "sub", 100);
    REQUIRE_FALSE(r);
    REQUIRE(::mkfifo(t.file("fifo").c_str(), 0600) == 0);
    auto f = mm::read_file_at(d, "fifo", 100); // must not block
    REQUIRE_FALSE(f);
}

TEST_CASE("rename_noreplace_at never replaces a target")
{
    TempDir t;
    mm::Dir d = open(t);
    REQUIRE(mm::replace_file_at(d, "a", "A"));
    REQUIRE(mm::replace_file_at(d, "b", "B"));
    auto r = mm::rename_noreplace_at(d, "a", d, "b");
    REQUIRE_FALSE(r);
    CHECK(r.error().sys_errno() == EEXIST);
    CHECK(*mm::read_file_at(d, "b", 10) == "B");
    REQUIRE(mm::rename_noreplace_at(d, "a", d, "c"));
    CHECK(*mm::read_file_at(d, "c", 10) == "A");
}

TEST_CASE("replace_file_at replaces content atomically and leaves no temporary")
{
    TempDir t;
    mm::Dir d = open(t);
    REQUIRE(mm::replace_file_at(d, "state", "one"));
    REQUIRE(mm::replace_file_at(d, "state", "two"));
    CHECK(*mm::read_file_at(d, "state", 10) == "two");
    auto names = mm::list_dir(d, 10);
    REQUIRE(names);
    CHECK(names->size() == 1);
}

TEST_CASE("list_dir is bounded")
{
    TempDir t;
    mm::Dir d = open(t);
    for (int i = 0; i < 5; ++i)
        REQUIRE(mm::replace_file_at(d, "f" + std::to_string(i), "x"));
    CHECK(mm::list_dir(d, 5));
    auto over = mm::list_dir(d, 4);
    REQUIRE_FALSE(over);
    CHECK(over.error().is_temporary());
}

TEST_CASE("unlink_at with and without missing_ok")
{
    TempDir t;
    mm::Dir d = open(t);
    CHECK(mm::unlink_at(d, "nothing", true));
    auto r = mm::unlink_at(d, "nothing");
    REQUIRE_FALSE(r);
    CHECK(r.error().sys_errno() == ENOENT);
}

TEST_CASE("errors name the file")
{
    auto d = mm::open_dir("/nonexistent-mm-dir");
    REQUIRE_FALSE(d);
    CHECK(d.error().message().find("/nonexistent-mm-dir") != std::string::npos);
    CHECK(d.error().sys_errno() == ENOENT);
}
