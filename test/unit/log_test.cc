// SPDX-License-Identifier: GPL-2.0-or-later
#include "catch.hh"
#include "mm/fs.hh"
#include "mm/log.hh"

#include <sys/stat.h>

using mm::test::TempDir;

TEST_CASE("log line format follows masqmail's")
{
    setenv("TZ", "UTC", 1);
    tzset();
    std::string line = mm::log::format_line(mm::log::Priority::info, 1234, 1700000000, "1abc <= <a@b> with local");
    CHECK(line == "2023-11-14 22:13:20 [1234] info: 1abc <= <a@b> with local\n");
}

TEST_CASE("control bytes in log text cannot forge a line")
{
    std::string line = mm::log::format_line(mm::log::Priority::warning, 1, 0, "evil\r\n2023-01-01 00:00:00 [1] info: forged\x1b");
    CHECK(line.find('\n') == line.size() - 1);
    CHECK(line.find('\r') == std::string::npos);
    CHECK(line.find('\x1b') == std::string::npos);
    CHECK(line.find("evil??2023") != std::string::npos);
}

TEST_CASE("log file is created 0600 and appended to")
{
    TempDir t;
    REQUIRE(mm::log::open_file(t.path()));
    mm::log::info("%s: %d recipients", "1xyz", 3);
    mm::log::error("second %s", "line");
    mm::log::set_debug_level(2);
    mm::log::debug(3, "hidden");
    mm::log::debug(2, "shown %d", 2);
    mm::log::use_stderr();
    mm::log::set_debug_level(0);
    auto d = mm::open_dir(t.path());
    REQUIRE(d);
    auto text = mm::read_file_at(*d, "masqmail.log", 10000);
    REQUIRE(text);
    CHECK(text->find("info: 1xyz: 3 recipients\n") != std::string::npos);
    CHECK(text->find("error: second line\n") != std::string::npos);
    CHECK(text->find("hidden") == std::string::npos);
    CHECK(text->find("debug: shown 2\n") != std::string::npos);
    struct stat st{};
    REQUIRE(::stat(t.file("masqmail.log").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("a missing log directory is an error with the path")
{
    auto r = mm::log::open_file("/nonexistent-mm-log");
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("/nonexistent-mm-log/masqmail.log") != std::string::npos);
}

TEST_CASE("configure picks the sink from the config settings")
{
    TempDir t;
    REQUIRE(mm::log::configure({.log_dir = t.path(), .use_syslog = false, .debug_level = 3}));
    CHECK(mm::log::debug_level() == 3);
    mm::log::notice("to the file");
    REQUIRE(mm::log::configure({.log_dir = "", .use_syslog = false, .debug_level = 0}));
    mm::log::notice("to stderr");
    auto d = mm::open_dir(t.path());
    REQUIRE(d);
    auto text = mm::read_file_at(*d, "masqmail.log", 10000);
    REQUIRE(text);
    CHECK(text->find("notice: to the file\n") != std::string::npos);
    CHECK(text->find("to stderr") == std::string::npos);
    auto bad = mm::log::configure({.log_dir = t.file("missing"), .use_syslog = false, .debug_level = 0});
    CHECK_FALSE(bad);
}
