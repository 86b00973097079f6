// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for a route's address rewriting, whose input is a stored message
// (untrusted content). Byte 0 picks the configuration (bit 0: caseless
// matching, 1: a Sender rule holding CR LF, 2: map_outgoing_addresses set);
// the first line is the return path, the rest the stored text. Properties:
// the copy holds no CR or NUL, has the same fields in the same order, every
// other field and the body byte-identical, each rewritten field still one
// address list of as many addresses, the header section within its limit;
// the null or a non-local return path unchanged; explain agrees. Else abort().
#include "mm/address.hh"
#include "mm/config.hh"
#include "mm/config_lexer.hh"
#include "mm/limits.hh"
#include "mm/message.hh"
#include "mm/recipient.hh"
#include "mm/route.hh"
#include "mm/route_rewrite.hh"

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

mm::config::RouteConfig make_route(bool bad_rule, bool outgoing)
{
    std::string text = "map_h_from_addresses = \"foo: Dark Foo <fooish@example.com>; b*: *@example.org\"\n"
                       "map_h_reply_to_addresses = \"*: \\\"Q. Reply\\\" (c) <reply@example.net>\"\n"
                       "map_h_mail_followup_to_addresses = \"x?z: *@[192.0.2.1]; *: a.b@example.com\"\n"
                       "map_return_path_addresses = \"sendy: dummy@example.com\"\n";
    if (outgoing)
        text += "map_outgoing_addresses = \"*: *@out.example\"\n";
    mm::config::Diagnostics diag;
    auto route = mm::config::parse_route_config(text, "fuzz.route", diag);
    require(route.has_value());
    if (bad_rule) {
        mm::config::RewriteRule rule;
        rule.local_glob = "*";
        rule.replacement = "Evil\r\n Name <evil@example.com>";
        rule.address = *mm::parse_path("<evil@example.com>", {});
        route->map_h_sender_addresses.insert(route->map_h_sender_addresses.begin(), rule);
    }
    return *route;
}

bool is_rewritten_field(const mm::HeaderField& h)
{
    return h.is("From") || h.is("Sender") || h.is("Reply-To") || h.is("Mail-Followup-To");
}

std::size_t address_count(std::string_view value)
{
    auto list = mm::parse_address_list(value, { .qualify_domain = "q.example", .allow_null = true });
    require(list.has_value());
    return list->size();
}

void check_copy(const mm::ParsedMessage& before, std::string_view text)
{
    require(text.find_first_of(std::string_view("\r\0", 2)) == std::string_view::npos);
    auto after = mm::parse_message(text);
    require(after.has_value());
    require(after->body == before.body && after->headers.size() == before.headers.size());
    std::size_t header_size = 0;
    for (std::size_t i = 0; i < before.headers.size(); ++i) {
        const mm::HeaderField& old = before.headers[i];
        const mm::HeaderField& now = after->headers[i];
        header_size += now.raw.size() + 1;
        require(old.name == now.name);
        if (old.raw == now.raw)
            continue;
        require(is_rewritten_field(old));
        require(address_count(old.value()) == address_count(now.value()));
    }
    require(header_size <= mm::limits::rewritten_header_section);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return 0;
    const std::uint8_t flags = data[0];
    std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::size_t lf = input.find('\n');
    auto parsed_path = mm::parse_path(input.substr(0, lf), { .qualify_domain = {}, .allow_null = true });
    const mm::Address return_path = parsed_path ? *parsed_path : mm::Address();
    const std::string_view stored = lf == std::string_view::npos ? std::string_view() : input.substr(lf + 1);

    static const mm::config::RouteConfig routes[4] = { make_route(false, false), make_route(true, false),
        make_route(false, true), make_route(true, true) };
    const mm::config::RouteConfig& route = routes[(flags >> 1) & 3];
    mm::config::MainConfig cfg;
    cfg.host_name = "host.local";
    cfg.local_hosts = { "localhost", "host.local", "*.lan" };
    cfg.caseless_matching = (flags & 1) != 0;

    auto copy = mm::rewrite_for_route(route, cfg, stored, return_path);
    auto before = mm::parse_message(stored);
    if (!before) {
        require(!copy.has_value());
        return 0;
    }
    auto explained = mm::explain_rewrites(route, cfg, stored, return_path);
    require(copy.has_value() == explained.has_value());
    if (!copy)
        return 0;
    require(copy->rewrites == *explained);
    check_copy(*before, copy->message);
    if (return_path.is_null() || !mm::is_local_domain(return_path.domain(), cfg))
        require(copy->return_path == return_path && copy->return_path.is_null() == return_path.is_null());
    return 0;
}
