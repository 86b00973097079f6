// SPDX-License-Identifier: GPL-2.0-or-later
// Header section parsing and rendering of the canonical message form. Input
// is untrusted message content; bounded by limits::header_section. Linked by
// enqueue, the SMTP listener and the delivery agents (mm_message).
#include "mm/message.hh"

#include "mm/cursor.hh"
#include "mm/limits.hh"

#include <algorithm>

namespace mm {

namespace {

constexpr std::size_t fold_soft = 78;  // RFC 5322 §2.1.1 SHOULD
constexpr std::size_t fold_hard = 998; // RFC 5322 §2.1.1 MUST

bool is_ftext(char c)
{
    auto u = static_cast<unsigned char>(c);
    return u >= 33 && u <= 126 && c != ':';
}

// The name of a header field line, or "" when `line` is not one.
std::string_view field_name(std::string_view line)
{
    Cursor cur(line);
    std::string_view name = cur.take_while(is_ftext);
    if (name.empty())
        return {};
    cur.skip_while(is_ascii_space);
    return cur.consume(':') ? name : std::string_view {};
}

// The next line of `cur` without its LF; `had_lf` tells whether it had one.
std::string_view next_line(Cursor& cur, bool& had_lf)
{
    std::string_view line = cur.take_until('\n');
    had_lf = cur.consume('\n');
    return line;
}

// "From user@host date": an mbox separator. "From : x" is an obsolete-syntax
// From: field instead, so that render() output never starts with a line that
// a second parse would drop.
bool is_mbox_from_line(std::string_view text)
{
    return text.substr(0, 5) == "From " && field_name(text.substr(0, text.find('\n'))).empty();
}

} // namespace

bool HeaderField::is(std::string_view other) const
{
    return equals_nocase(name, other);
}

std::string_view HeaderField::value() const
{
    std::string_view r(raw);
    std::size_t colon = r.find(':');
    return colon == std::string_view::npos ? std::string_view {} : r.substr(colon + 1);
}

Result<ParsedMessage> parse_message(std::string_view canonical)
{
    if (canonical.find('\0') != std::string_view::npos)
        return Error::permanent("message contains NUL");
    if (canonical.find('\r') != std::string_view::npos)
        return Error::permanent("message contains a bare CR");

    Cursor cur(canonical);
    bool had_lf = false;
    if (is_mbox_from_line(canonical))
        (void)next_line(cur, had_lf);

    ParsedMessage message;
    std::size_t header_bytes = 0;
    while (!cur.at_end()) {
        const std::size_t line_start = cur.pos();
        std::string_view line = next_line(cur, had_lf);
        const bool continuation = !line.empty() && is_ascii_space(line.front());
        std::string_view name = continuation ? std::string_view {} : field_name(line);
        if (line.empty())
            break;  // the separator: not part of the body
        if ((continuation && message.headers.empty()) || (!continuation && name.empty())) {
            cur = Cursor(canonical);
            cur.skip(line_start);  // this line is the first body line
            break;
        }
        header_bytes += line.size() + 1;
        if (header_bytes > limits::header_section)
            return Error::permanent("header section too large");
        if (continuation) {
            message.headers.back().raw += '\n';
            message.headers.back().raw += line;
        } else {
            message.headers.push_back(HeaderField { std::string(name), std::string(line) });
        }
    }
    message.body = std::string(cur.rest());
    return message;
}

std::string render(const ParsedMessage& message)
{
    std::size_t size = message.body.size() + 1;
    for (const auto& h : message.headers)
        size += h.raw.size() + 1;
    std::string out;
    out.reserve(size);
    for (const auto& h : message.headers) {
        out += h.raw;
        out += '\n';
    }
    out += '\n';
    out += message.body;
    return out;
}

const HeaderField* find_header(const ParsedMessage& message, std::string_view name)
{
    for (const auto& h : message.headers)
        if (h.is(name))
            return &h;
    return nullptr;
}

std::size_t count_headers(const ParsedMessage& message, std::string_view name)
{
    return static_cast<std::size_t>(std::count_if(message.headers.begin(), message.headers.end(),
        [name](const HeaderField& h) { return h.is(name); }));
}

std::size_t erase_headers(ParsedMessage& message, std::string_view name)
{
    return std::erase_if(message.headers, [name](const HeaderField& h) { return h.is(name); });
}

bool is_header_safe(std::string_view text)
{
    return std::none_of(text.begin(), text.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && c != '\t') || u == 0x7f;
    });
}

HeaderField make_header(std::string_view name, std::string_view value)
{
    HeaderField field { std::string(name), std::string(name) + ":" };
    std::string& raw = field.raw;
    std::size_t line_len = raw.size();
    Cursor cur(value);
    cur.skip_while(is_ascii_space);
    bool first = true;
    while (!cur.at_end()) {
        std::string_view word = cur.take_while([](char c) { return !is_ascii_space(c); });
        cur.skip_while(is_ascii_space);
        // Fold before the word when it would overflow the soft limit, except
        // when the line holds nothing yet (the field name only).
        if (!first && line_len + 1 + word.size() > fold_soft) {
            raw += "\n";
            line_len = 0;
        }
        raw += ' ';
        ++line_len;
        first = false;
        while (line_len + word.size() > fold_hard) {
            std::size_t room = line_len < fold_hard ? fold_hard - line_len : 0;
            raw.append(word.substr(0, room));
            raw += "\n ";
            line_len = 1;
            word.remove_prefix(room);
        }
        raw.append(word);
        line_len += word.size();
    }
    return field;
}

} // namespace mm
