// SPDX-License-Identifier: GPL-2.0-or-later
// The one include for Catch2 in unit tests, plus a scratch directory helper.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace mm::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its content on scope exit.
class TempDir {
public:
    TempDir()
    {
        const char* base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/mm-unit-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr)
            FAIL("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

} // namespace mm::test
