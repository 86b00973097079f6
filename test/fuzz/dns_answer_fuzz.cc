// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for parse_dns_answer, whose input is a hostile name server's
// bytes. The first byte picks the question type (MX, A or AAAA); the rest
// is the answer. What is accepted must hold only records of that type with
// bounded printable names and data, A/AAAA in the additional section, the
// same result twice; an MX answer then goes through mail_exchangers_of,
// whose list must be in preference order with bounded addresses.
#include "mm/dns_answer.hh"
#include "mm/limits.hh"
#include "mm/mx_resolve.hh"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what)
{
    (void)std::fprintf(stderr, "dns_answer_fuzz: %s\n", what);
    std::abort();
}

void require(bool condition, const char* what)
{
    if (!condition)
        fail(what);
}

// A name as text: bounded, and only bytes a label may carry plus dots.
void check_name(const std::string& name)
{
    require(!name.empty() && name.size() <= mm::limits::domain, "name length");
    for (char c : name)
        require(c > 0x20 && c < 0x7f, "name byte");
}

void check_record(const mm::DnsRecord& r)
{
    check_name(r.name);
    require(r.data.size() <= mm::limits::domain, "data length");
    for (char c : r.data)
        require(c > 0x20 && c < 0x7f, "data byte");
    if (r.type == mm::dns_type_a || r.type == mm::dns_type_aaaa)
        require(!r.data.empty(), "an address record without an address");
}

void check_exchangers(const mm::DnsAnswer& answer)
{
    auto list = mm::mail_exchangers_of(answer, 7);
    if (!list) {
        require(list.error().kind() == mm::ErrorKind::permanent, "only the null MX is an error");
        require(std::string(list.error().enhanced_code()) == "5.1.10", "null MX status");
        return;
    }
    require(list->size() <= answer.records.size(), "more hosts than MX records");
    for (std::size_t i = 0; i < list->size(); ++i) {
        const mm::MailExchanger& mx = (*list)[i];
        check_name(mx.host);
        require(mx.addresses.size() <= mm::limits::mx_host_addresses, "too many addresses");
        if (i > 0)
            require((*list)[i - 1].preference <= mx.preference, "preference order");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return 0;
    static constexpr int types[] = { mm::dns_type_mx, mm::dns_type_a, mm::dns_type_aaaa };
    int qtype = types[data[0] % 3];
    std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    auto answer = mm::parse_dns_answer(bytes, qtype);
    auto again = mm::parse_dns_answer(bytes, qtype);
    require(answer.has_value() == again.has_value(), "not deterministic");
    if (!answer) {
        require(answer.error().kind() == mm::ErrorKind::temporary, "a garbled answer must be temporary");
        return 0;
    }
    require(answer->rcode >= 0 && answer->rcode <= 15, "rcode");
    if (answer->truncated)
        require(answer->records.empty() && answer->additional.empty(), "records read from a truncated answer");
    for (const mm::DnsRecord& r : answer->records) {
        require(r.type == qtype, "a record of another type");
        check_record(r);
    }
    for (const mm::DnsRecord& r : answer->additional) {
        require(r.type == mm::dns_type_a || r.type == mm::dns_type_aaaa, "additional type");
        check_record(r);
    }
    require(answer->records.size() == again->records.size(), "not deterministic");
    if (qtype == mm::dns_type_mx)
        check_exchangers(*answer);
    return 0;
}
