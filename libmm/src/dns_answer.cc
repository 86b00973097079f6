// SPDX-License-Identifier: GPL-2.0-or-later
// DNS answers from a name server (mm/dns_answer.hh). Input: hostile bytes;
// every read is checked against the message's end before it happens.
#include "mm/dns_answer.hh"

#include "mm/cursor.hh"
#include "mm/limits.hh"

#include <arpa/inet.h>
#include <sys/socket.h>

namespace mm {

namespace {

constexpr std::size_t header_size = 12;
constexpr std::size_t record_minimum = 11; // root owner, type, class, TTL, rdlength
constexpr std::uint16_t class_in = 1;

Error garbled(const std::string& reason)
{
    return Error::temporary("garbled DNS answer: " + reason).status_as("4.4.3");
}

std::size_t octet(std::string_view msg, std::size_t at)
{
    return static_cast<unsigned char>(msg[at]);
}

std::uint16_t get16(std::string_view msg, std::size_t at)
{
    return static_cast<std::uint16_t>(octet(msg, at) << 8 | octet(msg, at + 1));
}

// Printable ASCII other than space and dot: the bytes a host name's labels
// can hold (a stricter check of the whole name comes later, where needed).
bool is_name_byte(char c)
{
    return c > 0x20 && c < 0x7f && c != '.';
}

struct Name {
    std::string text; // dotted, "." for the root
    bool usable = true; // every label byte is_name_byte
    std::size_t end = 0; // offset after the name where it is written
};

// The possibly compressed name at `at`. A pointer must point below the start
// of the labels it continues, so the starts strictly decrease along a chain
// and it ends; the expanded name is at most limits::domain octets.
Result<Name> read_name(std::string_view msg, std::size_t at)
{
    Name name;
    std::size_t pos = at;
    std::size_t floor = at;
    std::size_t wire = 0;
    bool jumped = false;
    for (;;) {
        if (pos >= msg.size())
            return garbled("a name runs past the end");
        std::size_t length = octet(msg, pos);
        if ((length & 0xc0) == 0xc0) {
            if (pos + 1 >= msg.size())
                return garbled("a name runs past the end");
            std::size_t target = (length & 0x3f) << 8 | octet(msg, pos + 1);
            if (!jumped)
                name.end = pos + 2;
            if (target >= floor)
                return garbled("a compression pointer does not point backwards");
            jumped = true;
            pos = floor = target;
            continue;
        }
        if (length > limits::domain_label)
            return garbled("unknown label type");
        wire += length + 1;
        if (wire > limits::domain)
            return garbled("a name longer than 255 octets");
        if (length == 0)
            break;
        if (length > msg.size() - pos - 1)
            return garbled("a name runs past the end");
        std::string_view label = msg.substr(pos + 1, length);
        if (!name.text.empty())
            name.text += '.';
        for (char c : label)
            name.usable = name.usable && is_name_byte(c);
        name.text += label;
        pos += 1 + length;
    }
    if (!jumped)
        name.end = pos + 1;
    if (name.text.empty())
        name.text = ".";
    return name;
}

struct RawRecord {
    Name owner;
    int type = 0;
    std::uint16_t klass = 0;
    std::size_t rdata = 0;
    std::size_t rdlength = 0;
};

// The record at `pos`, which is moved past it.
Result<RawRecord> read_record(std::string_view msg, std::size_t& pos)
{
    Result<Name> owner = read_name(msg, pos);
    if (!owner)
        return owner.error();
    RawRecord r;
    r.owner = std::move(owner).value();
    std::size_t at = r.owner.end;
    if (msg.size() - at < 10)
        return garbled("a record runs past the end");
    r.type = get16(msg, at);
    r.klass = get16(msg, at + 2);
    r.rdlength = get16(msg, at + 8); // after a TTL we have no use for
    r.rdata = at + 10;
    if (r.rdlength > msg.size() - r.rdata)
        return garbled("a record's data runs past the end");
    pos = r.rdata + r.rdlength;
    return r;
}

Result<std::string> address_of(std::string_view msg, const RawRecord& r)
{
    bool v4 = r.type == dns_type_a;
    if (r.rdlength != (v4 ? 4u : 16u))
        return garbled(std::string(v4 ? "an A" : "an AAAA") + " record of " + std::to_string(r.rdlength) + " octets");
    unsigned char bytes[16];
    for (std::size_t i = 0; i < r.rdlength; ++i)
        bytes[i] = static_cast<unsigned char>(msg[r.rdata + i]);
    char text[INET6_ADDRSTRLEN] = "";
    if (::inet_ntop(v4 ? AF_INET : AF_INET6, bytes, text, sizeof text) == nullptr)
        return garbled("an unprintable address");
    return std::string(text);
}

// The target of an MX or CNAME record: a name that must fill the rest of
// the record's data exactly.
Result<std::string> target_of(std::string_view msg, const RawRecord& r, std::size_t skip)
{
    if (r.rdlength <= skip)
        return garbled("a record too short for its name");
    Result<Name> target = read_name(msg, r.rdata + skip);
    if (!target)
        return target.error();
    if (target->end != r.rdata + r.rdlength)
        return garbled("a record's length does not match its name");
    return target->usable ? target->text : std::string();
}

// The record's data as DnsRecord holds it; nullopt for types we do not read.
Result<std::optional<DnsRecord>> decode(std::string_view msg, const RawRecord& r)
{
    DnsRecord out { r.owner.text, r.type, 0, {} };
    Result<std::string> data = std::string();
    if (r.type == dns_type_a || r.type == dns_type_aaaa) {
        data = address_of(msg, r);
    } else if (r.type == dns_type_mx) {
        if (r.rdlength >= 2)
            out.preference = get16(msg, r.rdata);
        data = target_of(msg, r, 2);
    } else if (r.type == dns_type_cname) {
        data = target_of(msg, r, 0);
    } else {
        return std::optional<DnsRecord>();
    }
    if (!data)
        return data.error();
    out.data = std::move(data).value();
    return std::optional<DnsRecord>(std::move(out));
}

// Reads `count` records from `pos`; keeps those of class IN, with a usable
// owner, whose type `keep` accepts.
template <class Keep>
Result<void> read_section(std::string_view msg, std::size_t& pos, std::size_t count, Keep keep,
    std::vector<DnsRecord>& out)
{
    for (std::size_t i = 0; i < count; ++i) {
        Result<RawRecord> r = read_record(msg, pos);
        if (!r)
            return r.error();
        if (r->klass != class_in || !r->owner.usable || !keep(r->type))
            continue;
        Result<std::optional<DnsRecord>> record = decode(msg, *r);
        if (!record)
            return record.error();
        if (*record)
            out.push_back(std::move(**record));
    }
    return ok();
}

// The question's name, its type checked against `qtype`; `pos` moves past it.
Result<std::string> read_question(std::string_view msg, std::size_t& pos, int qtype)
{
    Result<Name> name = read_name(msg, pos);
    if (!name)
        return name.error();
    pos = name->end;
    if (msg.size() - pos < 4)
        return garbled("the question runs past the end");
    if (get16(msg, pos) != qtype || get16(msg, pos + 2) != class_in)
        return garbled("an answer to another question");
    pos += 4;
    if (!name->usable)
        return garbled("an unreadable question");
    return std::move(name->text);
}

// The records of type `qtype` for the question's name, or for the end of its
// CNAME chain.
std::vector<DnsRecord> records_for_question(std::string_view question, const std::vector<DnsRecord>& answers,
    int qtype)
{
    std::string name(question);
    for (std::size_t links = 0; links < limits::dns_cname_chain; ++links) {
        const DnsRecord* alias = nullptr;
        for (const DnsRecord& r : answers)
            if (r.type == dns_type_cname && equals_nocase(r.name, name) && !r.data.empty())
                alias = &r;
        if (alias == nullptr)
            break;
        name = alias->data;
    }
    std::vector<DnsRecord> out;
    for (const DnsRecord& r : answers)
        if (r.type == qtype && equals_nocase(r.name, name))
            out.push_back(r);
    return out;
}

} // namespace

Result<DnsAnswer> parse_dns_answer(std::string_view msg, int qtype)
{
    if (msg.size() < header_size)
        return garbled("shorter than a DNS header");
    if (msg.size() > limits::dns_message)
        return garbled("longer than a DNS message can be");
    std::uint16_t flags = get16(msg, 2);
    if ((flags & 0x8000) == 0 || (flags >> 11 & 0xf) != 0)
        return garbled("not a response to a query");
    DnsAnswer answer;
    answer.rcode = flags & 0xf;
    answer.truncated = (flags & 0x0200) != 0;
    std::size_t questions = get16(msg, 4);
    std::size_t counts[3] = { get16(msg, 6), get16(msg, 8), get16(msg, 10) };
    if (questions == 0 && answer.rcode != dns_rcode_noerror)
        return answer; // some servers drop the question from an error
    if (questions != 1)
        return garbled(std::to_string(questions) + " questions");
    std::size_t pos = header_size;
    Result<std::string> question = read_question(msg, pos, qtype);
    if (!question)
        return question.error();
    answer.question = std::move(question).value();
    if (answer.truncated)
        return answer;
    if ((counts[0] + counts[1] + counts[2]) * record_minimum > msg.size() - pos)
        return garbled("more records counted than the message holds");
    std::vector<DnsRecord> answers, authority;
    auto wanted = [qtype](int type) { return type == qtype || type == dns_type_cname; };
    auto none = [](int) { return false; };
    auto address = [](int type) { return type == dns_type_a || type == dns_type_aaaa; };
    if (auto r = read_section(msg, pos, counts[0], wanted, answers); !r)
        return r.error();
    if (auto r = read_section(msg, pos, counts[1], none, authority); !r)
        return r.error();
    if (auto r = read_section(msg, pos, counts[2], address, answer.additional); !r)
        return r.error();
    answer.records = records_for_question(answer.question, answers, qtype);
    return answer;
}

} // namespace mm
