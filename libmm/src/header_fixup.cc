// SPDX-License-Identifier: GPL-2.0-or-later
// Accept-time header surgery (masqmail §1.5.5) with the hop limit and header
// injection guards. The message is untrusted; options come from enqueue and
// are checked before any of them reaches a header. Linked by enqueue.
#include "mm/header_fixup.hh"

#include "mm/cursor.hh"
#include "mm_build_config.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <iterator>

namespace mm {

namespace {

constexpr std::size_t full_name_max = 256;
constexpr std::size_t token_max = 64;  // queue id, package version

Result<void> check_options(const FixupOptions& o)
{
    auto bad = [](std::string_view text, std::size_t max) {
        return text.size() > max || !is_header_safe(text) || text.find_first_of(" \t") != std::string_view::npos;
    };
    if (o.host_name.empty() || bad(o.host_name, limits::domain))
        return Error::internal("host_name is not fit for a header");
    if (o.queue_id.empty() || bad(o.queue_id, token_max))
        return Error::internal("queue id is not fit for a header");
    if (o.package_version.size() > token_max || !is_header_safe(o.package_version))
        return Error::internal("package version is not fit for a header");
    return ok();
}

// A peer-supplied token (HELO name, peer address) reduced to bytes that
// cannot end or confuse a Received clause, and to limits::domain octets.
std::string sanitised(std::string_view text)
{
    std::string out(text.substr(0, limits::domain));
    for (char& c : out) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || std::string_view("()\\\";<>").find(c) != std::string_view::npos)
            c = '?';
    }
    return out;
}

Result<std::vector<Address>> harvest_recipients(const ParsedMessage& message, std::string_view host_name)
{
    const AddressOptions options { .qualify_domain = host_name, .allow_null = false };
    std::vector<Address> found;
    for (const auto& h : message.headers) {
        if (!h.is("To") && !h.is("Cc") && !h.is("Bcc"))
            continue;
        auto list = parse_address_list(h.value(), options);
        if (!list)
            return Error::permanent("invalid address in " + h.name + ": header: " + list.error().message());
        for (auto& mailbox : *list)
            found.push_back(std::move(mailbox.address));
    }
    return found;
}

std::string base64(std::string_view bytes)
{
    static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
        if (i + 1 < bytes.size())
            n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
        if (i + 2 < bytes.size())
            n |= static_cast<unsigned char>(bytes[i + 2]);
        out += digits[(n >> 18) & 63];
        out += digits[(n >> 12) & 63];
        out += i + 1 < bytes.size() ? digits[(n >> 6) & 63] : '=';
        out += i + 2 < bytes.size() ? digits[n & 63] : '=';
    }
    return out;
}

bool is_valid_utf8(std::string_view s)
{
    for (std::size_t i = 0; i < s.size();) {
        auto u = static_cast<unsigned char>(s[i]);
        std::size_t n = u < 0x80 ? 0 : (u >= 0xc2 && u <= 0xdf) ? 1 : (u >= 0xe0 && u <= 0xef) ? 2
            : (u >= 0xf0 && u <= 0xf4)                          ? 3 : 4;
        if (n == 4 || n > s.size() - 1 - i)
            return false;
        for (std::size_t k = 1; k <= n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80)
                return false;
        i += n + 1;
    }
    return true;
}

// RFC 2047 B-encoded words of at most 75 octets, separated by spaces; a UTF-8
// character is never split between two words (RFC 2047 §5).
std::string encoded_words(std::string_view name)
{
    const bool utf8 = is_valid_utf8(name);
    const std::string prefix = utf8 ? "=?UTF-8?B?" : "=?UNKNOWN-8BIT?B?";
    const std::size_t chunk_max = (75 - prefix.size() - 2) / 4 * 3;
    std::string out;
    while (!name.empty()) {
        std::size_t n = std::min(chunk_max, name.size());
        while (utf8 && n < name.size() && n > 1 && (static_cast<unsigned char>(name[n]) & 0xc0) == 0x80)
            --n;
        if (!out.empty())
            out += ' ';
        out += prefix + base64(name.substr(0, n)) + "?=";
        name.remove_prefix(n);
    }
    return out;
}

HeaderField received_field(const FixupOptions& o, std::string_view version,
    const std::vector<Address>& header_recipients)
{
    std::string r = "Received: ";
    if (o.protocol == ReceivedProtocol::local) {
        r += "by " + o.host_name + " (" + std::string(version);
        if (o.uid)
            r += ", from userid " + std::to_string(*o.uid);
        r += ")";
    } else {
        static constexpr std::array<const char*, 6> with
            = { "local", "SMTP", "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA" };
        std::string helo = sanitised(o.helo_name);
        std::string peer = sanitised(o.peer_address);
        if (!peer.empty() && peer.find(':') != std::string::npos && peer.substr(0, 5) != "IPv6:")
            peer = "IPv6:" + peer;
        r += "from " + (helo.empty() ? peer.empty() ? std::string("unknown") : "[" + peer + "]"
                                     : peer.empty() ? helo : helo + " ([" + peer + "])");
        auto i = static_cast<std::size_t>(o.protocol);
        r += "\n\tby " + o.host_name + " with " + (i < with.size() ? with[i] : "SMTP") + " ("
            + std::string(version) + ")";
    }
    r += "\n\tid " + o.queue_id;
    const std::size_t total = o.recipients.size() + header_recipients.size();
    if (total == 1)
        r += "\n\tfor " + (o.recipients.empty() ? header_recipients.front() : o.recipients.front()).path();
    r += "; " + message_date(o.now);
    return HeaderField { "Received", std::move(r) };
}

// The fields appended when missing, in masqmail's order.
Result<std::vector<HeaderField>> missing_fields(const ParsedMessage& m, const FixupOptions& o)
{
    std::vector<HeaderField> add;
    if (!find_header(m, "From") && !find_header(m, "Sender")) {
        std::string mailbox = o.sender.is_null() ? "<MAILER-DAEMON@" + o.host_name + ">" : o.sender.path();
        if (o.sender_full_name.empty()) {
            add.push_back(make_header("From", mailbox));
        } else {
            auto name = encode_display_name(o.sender_full_name);
            if (!name)
                return std::move(name).error();
            add.push_back(make_header("From", *name + " " + mailbox));
        }
    }
    if (!find_header(m, "To") && !find_header(m, "Cc"))
        add.push_back(make_header("To", "undisclosed-recipients:;"));
    if (!find_header(m, "Date"))
        add.push_back(make_header("Date", message_date(o.now)));
    if (!find_header(m, "Message-ID"))
        add.push_back(make_header("Message-ID", "<" + o.queue_id + "@" + o.host_name + ">"));
    return add;
}

} // namespace

Result<std::string> encode_display_name(std::string_view name)
{
    if (name.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
        return Error::permanent("full name contains a line break or NUL");
    if (name.size() > full_name_max)
        return Error::permanent("full name too long (limit " + std::to_string(full_name_max) + " bytes)");
    bool plain = true;
    for (char c : name) {
        auto u = static_cast<unsigned char>(c);
        plain = plain && u >= 0x20 && u < 0x7f;
    }
    if (!plain)
        return encoded_words(name);
    std::string out = "\"";
    for (char c : name) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string format_message_date(const std::tm& tm, long gmt_offset)
{
    static constexpr std::array<const char*, 7> days = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static constexpr std::array<const char*, 12> months
        = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    const long off = std::labs(gmt_offset) / 60;
    char buf[80];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
        days[static_cast<std::size_t>(tm.tm_wday) % 7], tm.tm_mday,
        months[static_cast<std::size_t>(tm.tm_mon) % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
        tm.tm_sec, gmt_offset < 0 ? '-' : '+', (off / 60) % 100, off % 60);
    return buf;
}

std::string message_date(std::time_t when)
{
    std::tm tm {};
    if (!localtime_r(&when, &tm)) {
        std::time_t zero = 0;
        (void)gmtime_r(&zero, &tm);
    }
    return format_message_date(tm, tm.tm_gmtoff);
}

Result<FixupResult> fix_headers(ParsedMessage& message, const FixupOptions& options)
{
    if (auto checked = check_options(options); !checked)
        return std::move(checked).error();
    const std::size_t hops = count_received(message);
    if (hops > options.max_received)
        return Error::permanent("too many hops (" + std::to_string(hops) + " Received: headers)").status_as("5.4.6");
    FixupResult result;
    if (options.extract_recipients) {
        auto found = harvest_recipients(message, options.host_name);
        if (!found)
            return std::move(found).error();
        result.header_recipients = std::move(*found);
    }
    const std::string version
        = options.package_version.empty() ? "masqmail " MM_VERSION : options.package_version;

    std::vector<HeaderField> top { received_field(options, version, result.header_recipients) };
    if (options.save_envelope_to)
        for (const auto& h : message.headers)
            if (h.is("Envelope-To"))
                top.push_back(HeaderField { "X-Orig-Envelope-To", "X-Orig-Envelope-To:" + std::string(h.value()) });
    ParsedMessage trimmed { {}, {} };
    for (auto& h : message.headers)
        if (!h.is("Bcc") && !h.is("Return-Path") && !h.is("Envelope-To"))
            trimmed.headers.push_back(h);
    auto add = missing_fields(trimmed, options);
    if (!add)
        return std::move(add).error();

    top.insert(top.end(), std::make_move_iterator(trimmed.headers.begin()),
        std::make_move_iterator(trimmed.headers.end()));
    top.insert(top.end(), std::make_move_iterator(add->begin()), std::make_move_iterator(add->end()));
    message.headers = std::move(top);
    return result;
}

} // namespace mm
