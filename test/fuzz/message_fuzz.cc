// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for message intake, whose input is untrusted message content:
// the local reader (both dot modes, split at the first byte's offset),
// parse_message, render and fix_headers. Properties: parse(render(parse(x)))
// == parse(x); no header line fix_headers produces holds CR or NUL, and every
// line we generate stays within 998 octets. A broken property calls abort().
#include "mm/address.hh"
#include "mm/header_fixup.hh"
#include "mm/message.hh"
#include "mm/message_input.hh"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void require(bool condition)
{
    if (!condition)
        std::abort();
}

void check_reader(std::string_view bytes, std::size_t split, bool dots)
{
    mm::LocalMessageReader reader(dots, 1u << 20);
    auto first = reader.feed(bytes.substr(0, split));
    if (first && !*first)
        (void)reader.feed(bytes.substr(split));
    auto text = reader.finish();
    if (!text)
        return;
    require(text->find_first_of(std::string_view("\r\0", 2)) == std::string::npos);
    require(text->empty() || text->back() == '\n');
    if (auto parsed = mm::parse_message(*text); parsed) {
        auto again = mm::parse_message(mm::render(*parsed));
        require(again && *again == *parsed);
    }
}

bool line_ok(std::string_view raw, bool generated)
{
    if (raw.find_first_of(std::string_view("\r\0", 2)) != std::string_view::npos)
        return false;
    std::size_t start = 0;
    while (generated && start <= raw.size()) {
        std::size_t end = raw.find('\n', start);
        if (end == std::string_view::npos)
            end = raw.size();
        if (end - start > 998)
            return false;
        start = end + 1;
    }
    return true;
}

mm::FixupOptions options(std::uint8_t flags)
{
    mm::FixupOptions o;
    o.host_name = "host.example";
    o.queue_id = "1763712028.0123456789abcdef";
    o.sender = *mm::parse_path("<user@host.example>", {});
    o.sender_full_name = (flags & 1) ? "J\xc3\xb6rg \"Q\" O'Brien" : "";
    o.protocol = (flags & 2) ? mm::ReceivedProtocol::esmtp : mm::ReceivedProtocol::local;
    o.peer_address = "192.0.2.1";
    o.helo_name = "client(x)";
    o.uid = 1000;
    o.extract_recipients = (flags & 4) != 0;
    o.save_envelope_to = (flags & 8) != 0;
    o.now = 1763712028;
    return o;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return 0;
    const std::uint8_t flags = data[0];
    std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
    check_reader(bytes, bytes.empty() ? 0 : flags % bytes.size(), (flags & 16) != 0);

    auto parsed = mm::parse_message(bytes);
    if (!parsed)
        return 0;
    const std::string text = mm::render(*parsed);
    auto again = mm::parse_message(text);
    require(again && *again == *parsed);

    const mm::ParsedMessage before = *parsed;
    auto fixed = mm::fix_headers(*parsed, options(flags));
    if (!fixed) {
        require(*parsed == before);
        return 0;
    }
    require(!parsed->headers.empty() && line_ok(parsed->headers.front().raw, true));
    for (const auto& h : parsed->headers) {
        // Fields we added (those the input lacked) obey the 998-octet limit
        // too; an input Envelope-To renamed X-Orig-Envelope-To keeps its
        // length (the DATA encoder folds it on the way out).
        const bool renamed = h.name == "X-Orig-Envelope-To" && mm::find_header(before, "Envelope-To");
        const bool added = !mm::find_header(before, h.name) && !renamed;
        require(line_ok(h.raw, added));
    }
    require(mm::count_headers(*parsed, "Bcc") == 0 && mm::count_headers(*parsed, "Return-Path") == 0);
    auto reparsed = mm::parse_message(mm::render(*parsed));
    require(reparsed && *reparsed == *parsed);
    return 0;
}
