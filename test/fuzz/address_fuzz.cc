// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for the address parsers, whose input is untrusted (SMTP, message
// headers, argv). The first byte picks the options (bit 0: allow "<>", bit 1:
// qualify with a valid domain, bit 2: with an invalid one); the rest goes to
// every parser. Each accepted address must keep the Address invariants and
// survive parse_path(path()) unchanged; a broken property calls abort().
#include "mm/address.hh"
#include "mm/limits.hh"

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

bool has_line_break_or_nul(std::string_view s)
{
    return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool is_printable_ascii(std::string_view s)
{
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f)
            return false;
    }
    return true;
}

void check_address(const mm::Address& address)
{
    const std::string text = address.str();
    const std::string path = address.path();
    require(!has_line_break_or_nul(text) && !has_line_break_or_nul(path));
    require(path.size() <= mm::limits::path);
    if (address.is_null()) {
        require(text.empty() && path == "<>");
        return;
    }
    require(!address.local_part().empty() && is_printable_ascii(address.local_part()));
    require(mm::is_valid_domain(address.domain()));

    const mm::AddressOptions any { .qualify_domain = {}, .allow_null = true };
    auto again = mm::parse_path(path, any);
    require(again && *again == address);
    require(again->local_part() == address.local_part() && again->domain() == address.domain());
    auto from_text = mm::parse_address(text, any);
    require(from_text && *from_text == address);
    const std::string command = path + " SIZE=1";
    std::string_view rest;
    auto smtp = mm::parse_smtp_path(command, any, rest);
    require(smtp && *smtp == address && rest == " SIZE=1");
}

void check_error(const mm::Error& error)
{
    require(error.kind() == mm::ErrorKind::permanent);
    require(!error.message().empty() && is_printable_ascii(error.message()));
}

// The recorded addr-spec range holds exactly the address: parsing it again
// inside brackets gives the same one.
void check_mailbox(const mm::Mailbox& box, std::string_view value, const mm::AddressOptions& options)
{
    check_address(box.address);
    require(!has_line_break_or_nul(box.display_name));
    require(box.spec_begin <= box.spec_end && box.spec_end <= value.size());
    std::string_view spec = value.substr(box.spec_begin, box.spec_end - box.spec_begin);
    if (box.address.is_null()) {
        require(spec.empty() && box.angle);
        return;
    }
    if (spec.size() + 2 > mm::limits::address_text)
        return;
    auto again = mm::parse_address("<" + std::string(spec) + ">", options);
    require(again && *again == box.address);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return 0;
    mm::AddressOptions options;
    options.allow_null = (data[0] & 1) != 0;
    if ((data[0] & 2) != 0)
        options.qualify_domain = "example.org";
    else if ((data[0] & 4) != 0)
        options.qualify_domain = "bad_domain";
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

    if (auto a = mm::parse_path(text, options))
        check_address(*a);
    else
        check_error(a.error());

    std::string_view rest;
    if (auto a = mm::parse_smtp_path(text, options, rest)) {
        check_address(*a);
        require(rest.data() >= text.data() && rest.data() + rest.size() == text.data() + text.size());
    } else {
        check_error(a.error());
    }

    if (auto a = mm::parse_address(text, options))
        check_address(*a);
    else
        check_error(a.error());

    if (auto list = mm::parse_address_list(text, options)) {
        require(list->size() <= mm::limits::addresses_per_header);
        for (const auto& box : *list)
            check_mailbox(box, text, options);
    } else {
        check_error(list.error());
    }
    return 0;
}
