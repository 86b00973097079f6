// SPDX-License-Identifier: GPL-2.0-or-later
// Shared by the spool unit tests: a spool in a scratch directory, envelopes,
// and raw access to the files under it.
#pragma once

#include "catch.hh"
#include "mm/address.hh"
#include "mm/fs.hh"
#include "mm/spool.hh"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace mm::test {

inline Address address(std::string_view text, bool allow_null = false)
{
    auto a = parse_path(text, { .qualify_domain = {}, .allow_null = allow_null });
    REQUIRE(a);
    return std::move(a).value();
}

inline Envelope sample_envelope()
{
    Envelope e;
    e.return_path = address("<alice@example.org>");
    e.recipients.push_back({ address("<bob@example.net>"), "rfc822;bob@example.net" });
    e.recipients.push_back({ address("<carol@example.com>"), "" });
    e.received_time = 1700000000;
    e.protocol = ReceivedProtocol::esmtps;
    e.peer_address = "192.0.2.7";
    e.helo_name = "client.example.org";
    e.ident = "alice";
    e.submitter_uid = 1000;
    e.eight_bit_mime = true;
    return e;
}

inline const std::string sample_content = "From: alice@example.org\nSubject: hi\n\nHello,\n.\nbye\n";

class SpoolDir {
public:
    SpoolDir()
    {
        auto s = Spool::open(dir_.file("spool"), true);
        REQUIRE(s);
        spool_.emplace(std::move(s).value());
    }
    Spool& spool() { return *spool_; }
    std::string path(std::string_view area, std::string_view name = "") const
    {
        std::string p = dir_.file("spool") + "/" + std::string(area);
        return name.empty() ? p : p + "/" + std::string(name);
    }
    bool exists(std::string_view area, std::string_view name) const
    {
        std::error_code ec;
        return std::filesystem::symlink_status(path(area, name), ec).type()
            != std::filesystem::file_type::not_found;
    }
    std::size_t count(std::string_view area) const
    {
        std::size_t n = 0;
        for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(path(area)))
            ++n;
        return n;
    }
    std::string read(std::string_view area, std::string_view name) const
    {
        std::ifstream in(path(area, name), std::ios::binary);
        return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
    }
    void write(std::string_view area, std::string_view name, std::string_view data) const
    {
        std::ofstream out(path(area, name), std::ios::binary | std::ios::trunc);
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        REQUIRE(out.good());
    }
    void clear(std::string_view area) const
    {
        for (const auto& e : std::filesystem::directory_iterator(path(area)))
            std::filesystem::remove_all(e.path());
    }
    // Writes and commits a message; returns its id.
    QueueId commit(const Envelope& e, std::string_view content = sample_content)
    {
        auto w = spool_->begin_message(e, 1u << 20);
        REQUIRE(w);
        REQUIRE(w->add_content(content));
        REQUIRE(w->commit());
        return w->id();
    }

private:
    TempDir dir_;
    std::optional<Spool> spool_;
};

} // namespace mm::test
