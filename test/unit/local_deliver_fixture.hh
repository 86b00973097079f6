// SPDX-License-Identifier: GPL-2.0-or-later
// Shared helpers of the local-deliver transport tests: envelopes and files.
#pragma once

#include "catch.hh"
#include "delivery.hh"

#include "mm/address.hh"
#include "mm/fs.hh"

#include <fstream>
#include <sstream>
#include <string>

namespace mm::test {

inline Address addr(std::string_view text)
{
    if (text.empty() || text == "<>")
        return {};
    auto a = parse_path(text, { "example.org", true });
    REQUIRE(a);
    return *a;
}

inline local::LocalEnvelope envelope(std::string_view sender = "alice@example.net",
    std::string_view original = "bob@example.org", std::string_view leaf = "bob@example.org")
{
    local::LocalEnvelope e;
    e.message_id = "1Abc23-0004Xy-7Q";
    e.return_path = addr(sender);
    e.original_rcpt = addr(original);
    e.rcpt = addr(leaf);
    e.qualify_domain = "example.org";
    return e;
}

inline Dir open_dir_or_fail(const std::string& path)
{
    auto d = open_dir(path);
    REQUIRE(d);
    return std::move(d).value();
}

inline std::string slurp(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline void spit(const std::string& path, const std::string& text)
{
    std::ofstream out(path, std::ios::binary);
    out << text;
}

} // namespace mm::test
