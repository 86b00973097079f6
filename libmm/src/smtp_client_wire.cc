// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP client's wire layer (mm/smtp_client_wire.hh).
#include "mm/smtp_client_wire.hh"

#include "mm/limits.hh"

#include <algorithm>
#include <cctype>

namespace mm::smtp {

namespace {

std::string printable(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        out += (u >= 0x20 && u < 0x7f) ? c : '?';
    }
    return out;
}

std::string upper(std::string_view s)
{
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

// "X.Y.Z" at the start of `text` (class 2, 4 or 5; 1-3 digits; 1-3 digits),
// followed by a space or the end.
std::size_t enhanced_code_length(std::string_view text)
{
    if (text.size() < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.')
        return 0;
    std::size_t i = 2;
    for (int part = 0; part < 2; ++part) {
        std::size_t start = i;
        while (i < text.size() && i - start < 4 && std::isdigit(static_cast<unsigned char>(text[i])))
            ++i;
        if (i == start || i - start > 3)
            return 0;
        if (part == 0) {
            if (i >= text.size() || text[i] != '.')
                return 0;
            ++i;
        }
    }
    return (i == text.size() || text[i] == ' ') ? i : 0;
}

} // namespace

std::string ServerReply::summary() const
{
    std::string out = std::to_string(code);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        out += i == 0 ? " " : " / ";
        out += printable(lines[i]);
        if (out.size() >= 512)
            break;
    }
    if (out.size() > 512)
        out.resize(512);
    return out;
}

Result<void> ReplyReader::feed(std::string_view bytes)
{
    if (pos_ > 0 && pos_ == buffer_.size())
        buffer_.clear(), pos_ = 0;
    if (buffer_.size() - pos_ + bytes.size() > limits::reply_bytes + limits::reply_line_accepted)
        return Error::permanent("the server sent more than " + std::to_string(limits::reply_bytes)
            + " bytes without completing a reply");
    if (pos_ > limits::reply_bytes) {
        buffer_.erase(0, pos_);
        pos_ = 0;
    }
    buffer_.append(bytes);
    return ok();
}

Result<std::optional<ServerReply>> ReplyReader::next()
{
    ServerReply reply;
    std::size_t at = pos_;
    std::size_t total = 0;
    for (;;) {
        std::size_t lf = buffer_.find('\n', at);
        if (lf == std::string::npos) {
            if (buffer_.size() - at > limits::reply_line_accepted)
                return Error::permanent("a reply line of the server is longer than "
                    + std::to_string(limits::reply_line_accepted) + " octets");
            return std::optional<ServerReply>();
        }
        std::string_view line(buffer_.data() + at, lf - at);
        if (line.ends_with('\r'))
            line.remove_suffix(1);
        if (line.size() + 2 > limits::reply_line_accepted)
            return Error::permanent("a reply line of the server is longer than "
                + std::to_string(limits::reply_line_accepted) + " octets");
        total += lf + 1 - at;
        if (total > limits::reply_bytes || reply.lines.size() >= limits::reply_lines)
            return Error::permanent("a reply of the server is longer than allowed");
        if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0]))
            || !std::isdigit(static_cast<unsigned char>(line[1])) || !std::isdigit(static_cast<unsigned char>(line[2]))
            || (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
            return Error::permanent("the server's reply is not SMTP: " + printable(line.substr(0, 80)));
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (code < 200 || code > 599)
            return Error::permanent("the server's reply has code " + std::to_string(code));
        if (!reply.lines.empty() && code != reply.code)
            return Error::permanent("the server's multi-line reply changes its code");
        reply.code = code;
        std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
        reply.lines.emplace_back(text);
        at = lf + 1;
        if (line.size() == 3 || line[3] == ' ')
            break;
    }
    pos_ = at;
    std::string_view first = reply.lines.front();
    if (std::size_t n = enhanced_code_length(first); n > 0 && first[0] == static_cast<char>('0' + reply.kind()))
        reply.enhanced = std::string(first.substr(0, n));
    return std::optional<ServerReply>(std::move(reply));
}

bool Capabilities::offers_auth(std::string_view mechanism) const
{
    return std::find(auth.begin(), auth.end(), upper(mechanism)) != auth.end();
}

Capabilities parse_ehlo(const ServerReply& reply)
{
    Capabilities c;
    c.esmtp = true;
    // The first line is the greeting ("host says hi"); keywords follow.
    for (std::size_t i = 1; i < reply.lines.size(); ++i) {
        std::string line = upper(reply.lines[i]);
        std::string_view rest(line);
        std::size_t sp = rest.find_first_of(" =");
        std::string_view keyword = rest.substr(0, sp);
        std::string_view args = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
        if (keyword == "PIPELINING") {
            c.pipelining = true;
        } else if (keyword == "8BITMIME") {
            c.eight_bit_mime = true;
        } else if (keyword == "STARTTLS") {
            c.starttls = true;
        } else if (keyword == "ENHANCEDSTATUSCODES") {
            c.enhanced_status_codes = true;
        } else if (keyword == "SIZE") {
            c.size = true;
            std::uint64_t n = 0;
            bool digits = !args.empty();
            for (char d : args) {
                if (!std::isdigit(static_cast<unsigned char>(d)) || n > (UINT64_MAX - 9) / 10) {
                    digits = false;
                    break;
                }
                n = n * 10 + static_cast<std::uint64_t>(d - '0');
            }
            c.max_size = digits ? n : 0;
        } else if (keyword == "AUTH") { // "AUTH PLAIN LOGIN" and the old "AUTH=LOGIN"
            while (!args.empty() && c.auth.size() < 32) {
                std::size_t end = args.find_first_of(" =");
                std::string_view mech = args.substr(0, end);
                if (!mech.empty() && mech.size() <= 40
                    && std::find(c.auth.begin(), c.auth.end(), mech) == c.auth.end())
                    c.auth.emplace_back(mech);
                if (end == std::string_view::npos)
                    break;
                args.remove_prefix(end + 1);
            }
        }
    }
    return c;
}

void DataEncoder::encode(std::string_view content, std::string& out)
{
    out.reserve(out.size() + content.size() + content.size() / 32 + 8);
    for (char c : content) {
        if (c == '\n') {
            if (line_empty_)
                in_header_ = false;
            out += header_line_;
            header_line_.clear();
            out += "\r\n";
            column_ = 0;
            line_empty_ = true;
            continue;
        }
        if (c == '\r')
            continue; // canonical content has none; never emit a bare CR
        // A header line is held until its end, so that it can be folded
        // before white space it already has (RFC 5322 §2.2.3).
        std::string& line = in_header_ ? header_line_ : out;
        if (column_ >= limits::output_line) {
            if (in_header_) {
                fold_header_line(out);
            } else {
                out += "\r\n";
                column_ = 0;
            }
        }
        if (column_ == 0 && c == '.') {
            line += '.';
            ++column_;
        }
        line += c;
        ++column_;
        line_empty_ = false;
    }
}

// The held header line is full: the part before its last white space goes
// out and the rest (starting with that space) stays, unless the line has no
// such space after the field name and a first word; then it is cut, and
// continued with a space we add.
void DataEncoder::fold_header_line(std::string& out)
{
    std::size_t start = 0;
    if (header_line_[0] != ' ' && header_line_[0] != '\t') {
        std::size_t colon = header_line_.find(':');
        start = colon == std::string::npos ? 0 : colon + 1;
    }
    std::size_t first_word = header_line_.find_first_not_of(" \t", start);
    std::size_t space = header_line_.find_last_of(" \t");
    if (first_word != std::string::npos && space != std::string::npos && space > first_word) {
        out.append(header_line_, 0, space);
        header_line_.erase(0, space);
    } else {
        out += header_line_;
        header_line_ = " ";
    }
    out += "\r\n";
    column_ = header_line_.size();
}

void DataEncoder::finish(std::string& out)
{
    out += header_line_;
    header_line_.clear();
    if (column_ > 0)
        out += "\r\n";
    column_ = 0;
    out += ".\r\n";
}

std::uint64_t DataEncoder::wire_size(std::string_view content)
{
    auto lfs = static_cast<std::uint64_t>(std::count(content.begin(), content.end(), '\n'));
    std::uint64_t size = content.size() + lfs;
    if (!content.empty() && content.back() != '\n')
        size += 2;
    return size;
}

} // namespace mm::smtp
