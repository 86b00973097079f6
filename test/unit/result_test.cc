// SPDX-License-Identifier: GPL-2.0-or-later
#include "catch.hh"
#include "mm/result.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <memory>

using mm::Error;
using mm::ErrorKind;
using mm::Result;

TEST_CASE("error kinds map to SMTP reply classes and sysexits codes")
{
    CHECK(Error::temporary("x").smtp_code() == 451);
    CHECK(Error::temporary("x").exit_code() == mm::ex::tempfail);
    CHECK(Error::permanent("x").smtp_code() == 550);
    CHECK(Error::permanent("x").exit_code() == mm::ex::dataerr);
    CHECK(Error::protocol("x").smtp_code() == 501);
    CHECK(Error::protocol("x").exit_code() == mm::ex::protocol);
    CHECK(Error::internal("x").smtp_code() == 451);
    CHECK(Error::internal("x").exit_code() == mm::ex::software);
    CHECK(std::string(Error::permanent("x").enhanced_code()) == "5.0.0");
    CHECK(std::string(Error::temporary("x").enhanced_code()) == "4.3.0");
}

TEST_CASE("a full disk is a temporary 452 4.3.1, never a bounce")
{
    Error e = Error::from_errno("write", ENOSPC);
    CHECK(e.kind() == ErrorKind::temporary);
    CHECK(e.is_temporary());
    CHECK(e.smtp_code() == 452);
    CHECK(std::string(e.enhanced_code()) == "4.3.1");
    CHECK(e.exit_code() == mm::ex::tempfail);
    CHECK(e.sys_errno() == ENOSPC);
    CHECK(e.message().find("write: ") == 0);
}

TEST_CASE("internal errors are retried, not bounced")
{
    CHECK(Error::internal("bug").is_temporary());
    CHECK_FALSE(Error::permanent("no").is_temporary());
    CHECK_FALSE(Error::protocol("no").is_temporary());
}

TEST_CASE("exit_as overrides the sysexits code only")
{
    Error e = Error::permanent("bad option").exit_as(mm::ex::usage);
    CHECK(e.exit_code() == 64);
    CHECK(e.smtp_code() == 550);
}

TEST_CASE("with_context prefixes the message and keeps the rest")
{
    Error e = Error::from_errno("open", EACCES).exit_as(mm::ex::config).with_context("/etc/x");
    CHECK(e.message().rfind("/etc/x: open: ", 0) == 0);
    CHECK(e.sys_errno() == EACCES);
    CHECK(e.exit_code() == mm::ex::config);
}

TEST_CASE("Result holds a value or an error")
{
    Result<int> good = 42;
    REQUIRE(good);
    CHECK(*good == 42);
    Result<int> bad = Error::permanent("nope");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message() == "nope");

    Result<void> fine = mm::ok();
    CHECK(fine.has_value());
    Result<void> broken = Error::temporary("later");
    CHECK_FALSE(broken.has_value());
    CHECK(broken.error().kind() == ErrorKind::temporary);
}

TEST_CASE("Result carries move-only values")
{
    Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
    REQUIRE(r);
    std::unique_ptr<int> p = std::move(r).value();
    CHECK(*p == 7);
}

TEST_CASE("sysexits names")
{
    CHECK(std::string(mm::ex::name(75)) == "EX_TEMPFAIL");
    CHECK(std::string(mm::ex::name(78)) == "EX_CONFIG");
    CHECK(std::string(mm::ex::name(12345)) == "unknown");
}
