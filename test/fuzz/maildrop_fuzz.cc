// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for the maildrop parser (what postdrop reads from a user and
// enqueue from maildrop/). Inputs are also sealed with a correct END record
// after their first CT0: record, so the fuzzer reaches the field checks
// behind the checksum. Every accepted input must encode back to itself: the
// format has one spelling per request.
#include "mm/maildrop.hh"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what)
{
    (void)std::fprintf(stderr, "maildrop_fuzz: %s\n", what);
    std::abort();
}

void check_round_trip(std::string_view file)
{
    auto parsed = mm::maildrop::parse(file);
    if (!parsed)
        return;
    auto again = mm::maildrop::encode(parsed->request, parsed->content);
    if (!again)
        fail("an accepted request does not encode");
    if (*again != file)
        fail("an accepted file is not the encoding of what it holds");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view input(reinterpret_cast<const char*>(data), size);
    check_round_trip(input);
    constexpr std::string_view marker = "CT0:\n";
    auto ct = input.find(marker);
    if (ct == std::string_view::npos)
        return 0;
    std::string_view head = input.substr(0, ct + marker.size());
    std::string_view content = input.substr(head.size());
    std::string sealed(input);
    sealed += mm::maildrop::encode_end(head, content);
    check_round_trip(sealed);
    return 0;
}
