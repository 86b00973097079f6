// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for the spool parsers (message files and state files), in
// memory. Inputs are also sealed with a correct END record, so the fuzzer
// reaches the field checks behind the checksum. Every accepted input must
// survive a round trip: re-encoded, it parses to the same fields.
#include "mm/spool_format.hh"
#include "mm/state_file.hh"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void check(bool condition)
{
    if (!condition)
        std::abort();
}

void round_trip_message(const mm::StoredMessage& m, std::string_view file)
{
    std::string_view content = file.substr(m.layout.offset, m.layout.length);
    auto again = mm::spool_format::encode_message_file(m.id, m.envelope, content);
    check(again.has_value());
    auto reparsed = mm::spool_format::parse_message_file(*again);
    check(reparsed.has_value());
    check(reparsed->id == m.id);
    check(reparsed->envelope == m.envelope);
    check(reparsed->layout.length == m.layout.length);
    check(reparsed->layout.header_length == m.layout.header_length);
    check(std::string_view(*again).substr(reparsed->layout.offset, reparsed->layout.length) == content);
}

void fuzz_message(std::string_view data)
{
    if (auto m = mm::spool_format::parse_message_file(data))
        round_trip_message(*m, data);
    bool needs_more = false;
    auto head = mm::spool_format::parse_head(data, &needs_more);
    if (!head)
        return;
    // Treat everything after the head as content and seal it.
    std::string sealed(data);
    mm::spool_record::Crc32c crc;
    crc.update(sealed);
    mm::spool_format::HeaderBoundary boundary;
    boundary.feed(data.substr(head->content_offset));
    sealed += mm::spool_format::encode_end(data.size() - head->content_offset, boundary.header_length(), crc);
    auto m = mm::spool_format::parse_message_file(sealed);
    check(m.has_value());
    round_trip_message(*m, sealed);
}

void round_trip_state(const mm::state_file::Parsed& p, std::string_view file)
{
    auto again = mm::state_file::encode(p.id, p.state);
    check(again.has_value());
    // One spelling per value: the encoding of what was accepted is the input.
    check(*again == file);
}

void fuzz_state(std::string_view data)
{
    if (auto p = mm::state_file::parse(data))
        round_trip_state(*p, data);
    std::string sealed(data);
    sealed += "EN8:";
    sealed += mm::spool_record::format_crc(mm::spool_record::crc32c(sealed));
    sealed += '\n';
    if (auto p = mm::state_file::parse(sealed))
        round_trip_state(*p, sealed);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view input(reinterpret_cast<const char*>(data), size);
    fuzz_message(input);
    fuzz_state(input);
    return 0;
}
