// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for the SMTP client's wire layer, whose input is a hostile
// server's bytes and our own stored content. The first byte picks the
// chunking; the rest is fed to the reply reader whole and in chunks, which
// must agree, and every reply must respect the limits; then the same bytes
// go through the DATA encoder as message content, whose output must never
// hold a bare CR or LF, a line over 998 octets, or an unstuffed dot line.
#include "mm/limits.hh"
#include "mm/smtp_client_wire.hh"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using mm::smtp::ReplyReader;
using mm::smtp::ServerReply;

void require(bool condition)
{
    if (!condition)
        std::abort();
}

// Replies as a string ("code|enhanced|line|line\n..."), or "!" at the first error.
std::string read_all(std::string_view input, std::size_t chunk)
{
    ReplyReader reader;
    std::string out;
    while (!input.empty()) {
        std::string_view piece = input.substr(0, chunk);
        input.remove_prefix(piece.size());
        if (!reader.feed(piece))
            return out + "!";
        for (;;) {
            auto r = reader.next();
            if (!r)
                return out + "!";
            if (!*r)
                break;
            const ServerReply& reply = **r;
            require(reply.code >= 200 && reply.code <= 599);
            require(!reply.lines.empty() && reply.lines.size() <= mm::limits::reply_lines);
            std::size_t total = 0;
            for (const std::string& line : reply.lines) {
                require(line.size() <= mm::limits::reply_line_accepted);
                total += line.size();
            }
            require(total <= mm::limits::reply_bytes);
            std::string summary = reply.summary();
            require(summary.size() <= 512);
            for (char c : summary)
                require(c >= 0x20 && c < 0x7f);
            out += std::to_string(reply.code) + "|" + reply.enhanced;
            for (const std::string& line : reply.lines)
                out += "|" + line;
            out += "\n";
            (void)mm::smtp::parse_ehlo(reply);
        }
    }
    return out;
}

void check_encoding(std::string_view content, std::size_t chunk)
{
    mm::smtp::DataEncoder encoder;
    std::string out;
    for (std::size_t at = 0; at < content.size(); at += chunk)
        encoder.encode(content.substr(at, chunk), out);
    encoder.finish(out);
    require(out.ends_with(".\r\n"));
    std::string_view body(out);
    body.remove_suffix(3);
    std::size_t start = 0;
    while (start < body.size()) {
        std::size_t crlf = body.find("\r\n", start);
        require(crlf != std::string_view::npos); // every line ends with CRLF
        std::string_view line = body.substr(start, crlf - start);
        require(line.find('\r') == std::string_view::npos && line.find('\n') == std::string_view::npos);
        require(line.size() <= mm::limits::output_line + 1); // a stuffed dot may add one
        require(line != ".");
        start = crlf + 2;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return 0;
    std::size_t chunk = 1 + data[0] % 64;
    std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    std::string whole = read_all(input, input.size() + 1);
    std::string pieces = read_all(input, chunk);
    // Chunking may only move the point where an over-long buffer is noticed.
    if (whole.ends_with("!") == pieces.ends_with("!"))
        require(whole == pieces);
    check_encoding(input, chunk);
    return 0;
}
