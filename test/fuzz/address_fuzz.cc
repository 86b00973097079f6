// SPDX-License-Identifier: GPL-2.0-or-later
// PLACEHOLDER: replaced by the address fuzz target.
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }
