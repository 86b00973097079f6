// SPDX-License-Identifier: GPL-2.0-or-later
// Hand-built DNS messages for the dns_answer and mx_resolve tests: every
// byte is written by the test, so broken ones are as easy as good ones.
#pragma once

#include <algorithm>
#include <arpa/inet.h>
#include <cstdint>
#include <string>
#include <string_view>
#include <sys/socket.h>

namespace mm::test {

class DnsPacket {
public:
    static constexpr unsigned response = 0x8180; // QR, RD, RA; rcode in the low bits
    static constexpr unsigned truncated = 0x0200;

    DnsPacket(unsigned flags, unsigned questions, unsigned answers, unsigned authority, unsigned additional)
    {
        u16(0x1234).u16(flags).u16(questions).u16(answers).u16(authority).u16(additional);
    }
    DnsPacket() = default; // a bare buffer, for record data

    DnsPacket& u8(unsigned v)
    {
        bytes_ += static_cast<char>(v & 0xff);
        return *this;
    }
    DnsPacket& u16(unsigned v) { return u8(v >> 8).u8(v); }
    DnsPacket& u32(unsigned v) { return u16(v >> 16).u16(v); }
    DnsPacket& raw(std::string_view s)
    {
        bytes_ += s;
        return *this;
    }
    // The labels of a dotted name, without the root's zero octet.
    DnsPacket& labels(std::string_view dotted)
    {
        while (!dotted.empty()) {
            std::string_view label = dotted.substr(0, dotted.find('.'));
            u8(static_cast<unsigned>(label.size())).raw(label);
            dotted.remove_prefix(std::min(dotted.size(), label.size() + 1));
        }
        return *this;
    }
    DnsPacket& name(std::string_view dotted) { return labels(dotted).u8(0); }
    DnsPacket& pointer(std::size_t offset) { return u16(0xc000 | static_cast<unsigned>(offset)); }
    DnsPacket& question(std::string_view qname, unsigned type) { return name(qname).u16(type).u16(1); }

    // A record with an uncompressed owner and the given data.
    DnsPacket& record(std::string_view owner, unsigned type, const std::string& data)
    {
        return name(owner).u16(type).u16(1).u32(300).u16(static_cast<unsigned>(data.size())).raw(data);
    }
    DnsPacket& mx(std::string_view owner, unsigned preference, std::string_view exchange)
    {
        return record(owner, 15, DnsPacket().u16(preference).name(exchange).str());
    }
    DnsPacket& a(std::string_view owner, const char* address)
    {
        unsigned char b[4];
        ::inet_pton(AF_INET, address, b);
        return record(owner, 1, std::string(reinterpret_cast<const char*>(b), 4));
    }
    DnsPacket& aaaa(std::string_view owner, const char* address)
    {
        unsigned char b[16];
        ::inet_pton(AF_INET6, address, b);
        return record(owner, 28, std::string(reinterpret_cast<const char*>(b), 16));
    }
    DnsPacket& cname(std::string_view owner, std::string_view target)
    {
        return record(owner, 5, DnsPacket().name(target).str());
    }

    std::size_t size() const { return bytes_.size(); }
    const std::string& str() const { return bytes_; }

private:
    std::string bytes_;
};

} // namespace mm::test
