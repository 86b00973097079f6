// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP server's wire layer (mm/smtp_wire.hh). Every byte here comes from
// an untrusted network peer: lines are cut with a hard cap, the DATA reader is
// a byte-level state machine with a fixed amount of state, and addresses go
// through the one address parser. Linked by smtp-listener (mm_smtp).
#include "mm/smtp_wire.hh"

#include "mm/cursor.hh"

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>
#include <utility>

namespace mm::smtp {
namespace {

bool is_8bit(char c)
{
    return static_cast<unsigned char>(c) >= 0x80;
}
bool is_ctl(char c)
{
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

Reply bad_line(std::string text)
{
    return { 500, "5.5.2", std::move(text) };
}
Reply bad_syntax(std::string text)
{
    return { 501, "5.5.4", std::move(text) };
}
Reply bad_parameter(std::string text)
{
    return { 555, "5.5.4", std::move(text) };
}

// Why a complete command line (CRLF removed) cannot be a command, or "".
const char* line_problem(std::string_view text)
{
    for (char c : text) {
        if (c == '\r')
            return "Bare CR received; commands end with CRLF";
        if (c == '\0')
            return "NUL character in command";
        if (is_8bit(c))
            return "8-bit character in command; SMTPUTF8 is not offered";
        if (is_ctl(c) && c != '\t')
            return "Control character in command";
    }
    return "";
}

struct VerbName {
    std::string_view name;
    Verb verb;
};
constexpr std::array<VerbName, 12> verbs { {
    { "EHLO", Verb::ehlo },
    { "HELO", Verb::helo },
    { "MAIL", Verb::mail },
    { "RCPT", Verb::rcpt },
    { "DATA", Verb::data },
    { "RSET", Verb::rset },
    { "NOOP", Verb::noop },
    { "QUIT", Verb::quit },
    { "VRFY", Verb::vrfy },
    { "EXPN", Verb::expn },
    { "HELP", Verb::help },
    { "STARTTLS", Verb::starttls },
} };

bool is_keyword_char(char c)
{
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '-';
}
bool is_value_char(char c)
{
    return c > ' ' && c < 0x7f && c != '=';
}

// RFC 1870 SIZE: digits only; a number beyond 64 bits counts as larger than
// any limit rather than as a syntax error.
std::optional<Reply> parse_size(std::string_view value, const ParseOptions& options, Command& command)
{
    if (command.size)
        return bad_syntax("Duplicate SIZE parameter");
    if (value.empty() || !std::all_of(value.begin(), value.end(), is_ascii_digit))
        return bad_syntax("Bad SIZE parameter value");
    command.size = parse_decimal<std::uint64_t>(value).value_or(std::numeric_limits<std::uint64_t>::max());
    if (*command.size > options.max_message_size)
        return Reply { 552, "5.3.4", "Message size exceeds fixed maximum message size" };
    return std::nullopt;
}

std::optional<Reply> parse_body(std::string_view value, Command& command)
{
    if (command.body != Body::unspecified)
        return bad_syntax("Duplicate BODY parameter");
    if (equals_nocase(value, "7BIT"))
        command.body = Body::seven_bit;
    else if (equals_nocase(value, "8BITMIME"))
        command.body = Body::eight_bit_mime;
    else
        return bad_syntax("Bad BODY parameter value");
    return std::nullopt;
}

// The ESMTP parameters after a MAIL or RCPT path: " KEY[=VALUE]" ...
std::optional<Reply> parse_parameters(std::string_view text, const ParseOptions& options, Command& command)
{
    Cursor cur(text);
    while (true) {
        cur.skip_while(is_ascii_space);
        if (cur.at_end())
            return std::nullopt;
        if (!options.esmtp)
            return bad_parameter("Parameters are not allowed after HELO; use EHLO");
        std::string_view param = cur.take_while([](char c) { return !is_ascii_space(c); });
        Cursor p(param);
        std::string_view keyword = p.take_while(is_keyword_char);
        if (keyword.empty() || !is_keyword_char(keyword.front()) || keyword.front() == '-')
            return bad_syntax("Bad parameter syntax");
        bool has_value = p.consume('=');
        std::string_view value = p.take_while(is_value_char);
        if (!p.at_end() || (has_value && value.empty()))
            return bad_syntax("Bad parameter syntax");
        std::optional<Reply> refused;
        if (command.verb == Verb::mail && equals_nocase(keyword, "SIZE"))
            refused = parse_size(value, options, command);
        else if (command.verb == Verb::mail && equals_nocase(keyword, "BODY"))
            refused = parse_body(value, command);
        else
            refused = bad_parameter("Unsupported parameter");
        if (refused)
            return refused;
    }
}

// MAIL FROM:<path> [params] and RCPT TO:<path> [params]. As Postfix does,
// spaces are allowed between the colon and the path, never before the colon.
std::optional<Reply> parse_path_command(std::string_view arg, const ParseOptions& options, Command& command)
{
    const bool mail = command.verb == Verb::mail;
    const char* usage = mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>";
    const char* enhanced = mail ? "5.1.7" : "5.1.3";
    const char* what = mail ? "Bad sender address syntax: " : "Bad recipient address syntax: ";
    Cursor cur(arg);
    if (!cur.consume_nocase(mail ? "FROM:" : "TO:"))
        return bad_syntax(usage);
    cur.skip_while(is_ascii_space);
    std::string_view path = cur.rest();

    std::string_view rest;
    Result<Address> address
        = parse_smtp_path(path, AddressOptions { .qualify_domain = {}, .allow_null = mail }, rest);
    if (!address && !options.qualify_domain.empty()) {
        // Qualification is the only difference between the two parses, so
        // success now means the path had no domain.
        const AddressOptions qualify { .qualify_domain = options.qualify_domain, .allow_null = mail };
        if (Result<Address> qualified = parse_smtp_path(path, qualify, rest)) {
            command.unqualified = mail || !equals_nocase(qualified->local_part(), "postmaster");
            address = std::move(qualified);
        }
    }
    if (!address)
        return Reply { 501, enhanced, what + address.error().message() };
    command.address = std::move(address).value();
    if (!rest.empty() && !is_ascii_space(rest.front()))
        return bad_syntax(std::string(what) + "unexpected text after address");
    return parse_parameters(rest, options, command);
}

std::optional<Reply> parse_argument(
    Verb verb, std::string_view arg, const ParseOptions& options, Command& command)
{
    switch (verb) {
    case Verb::ehlo:
    case Verb::helo:
        if (arg.empty())
            return bad_syntax(verb == Verb::ehlo ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
        command.argument = arg;
        return std::nullopt;
    case Verb::vrfy:
    case Verb::expn:
        if (arg.empty())
            return bad_syntax(verb == Verb::vrfy ? "Syntax: VRFY address" : "Syntax: EXPN list");
        command.argument = arg;
        return std::nullopt;
    case Verb::noop:
    case Verb::help:
        command.argument = arg;
        return std::nullopt;
    case Verb::data:
    case Verb::rset:
    case Verb::quit:
    case Verb::starttls:
        if (!arg.empty())
            return bad_syntax("Syntax error: no argument allowed");
        return std::nullopt;
    case Verb::mail:
    case Verb::rcpt:
        return parse_path_command(arg, options, command);
    }
    return bad_syntax("Syntax error");
}

bool is_well_formed_enhanced(int code, std::string_view enhanced)
{
    Cursor cur(enhanced);
    if (cur.next() != static_cast<char>('0' + code / 100))
        return false;
    for (int part = 0; part < 2; ++part) {
        if (!cur.consume('.'))
            return false;
        std::string_view digits = cur.take_while(is_ascii_digit);
        if (digits.empty() || digits.size() > 3)
            return false;
    }
    return cur.at_end();
}

} // namespace

// --- command lines ---

CommandReader::Outcome CommandReader::next(std::string_view buffer)
{
    Outcome out;
    if (discarding_) {
        std::size_t lf = buffer.find('\n');
        if (lf == std::string_view::npos) {
            out.consumed = buffer.size();
            return out;
        }
        discarding_ = false;
        out.status = Status::refused;
        out.consumed = lf + 1;
        out.refusal = bad_line("Line too long");
        return out;
    }
    std::size_t lf = buffer.substr(0, max_line_).find('\n');
    if (lf == std::string_view::npos) {
        if (buffer.size() < max_line_)
            return out;
        discarding_ = true;
        return next(buffer);
    }
    out.consumed = lf + 1;
    out.status = Status::refused;
    if (lf == 0 || buffer[lf - 1] != '\r') {
        out.refusal = bad_line("Bare LF received; commands end with CRLF");
        return out;
    }
    std::string_view text = buffer.substr(0, lf - 1);
    if (const char* problem = line_problem(text); *problem != '\0') {
        out.refusal = bad_line(problem);
        return out;
    }
    out.status = Status::line;
    out.line = text;
    return out;
}

// --- commands ---

ParsedCommand parse_command(std::string_view line, const ParseOptions& options)
{
    ParsedCommand parsed;
    if (const char* problem = line_problem(line); *problem != '\0') {
        parsed.refused = bad_line(problem);
        return parsed;
    }
    Cursor cur(trim(line));
    if (cur.at_end()) {
        parsed.refused = bad_line("Empty command");
        return parsed;
    }
    std::string_view name = cur.take_while([](char c) { return !is_ascii_space(c); });
    auto known = std::find_if(
        verbs.begin(), verbs.end(), [name](const VerbName& v) { return equals_nocase(v.name, name); });
    if (known == verbs.end()) {
        parsed.refused = Reply { 500, "5.5.1", "Command unrecognized" };
        return parsed;
    }
    parsed.command.verb = known->verb;
    parsed.refused = parse_argument(known->verb, trim(cur.rest()), options, parsed.command);
    return parsed;
}

// --- DATA ---

DataReader::DataReader(const DataLimits& limits)
    : limits_(limits)
{
    limits_.max_line = std::clamp(limits_.max_line, limits::text_line, limits::text_line_accepted);
    limits_.max_message_size = std::min(limits_.max_message_size, limits::message_size_hard);
}

void DataReader::refuse(DataRefusal why)
{
    if (refusal_ == DataRefusal::none)
        refusal_ = why;
}

// One byte of a line that is not its leading dot. Counts it toward the
// message size and the line length, and stores it unless refused.
void DataReader::text_byte(char c, std::string& content)
{
    received_ = checked_add<std::uint64_t>(received_, 1).value_or(std::numeric_limits<std::uint64_t>::max());
    if (received_ > limits_.max_message_size)
        refuse(DataRefusal::too_big);
    if (++line_length_ > limits_.max_line)
        refuse(DataRefusal::line_too_long);

    if (state_ == State::cr) {
        if (c == '\n') {
            if (refusal_ == DataRefusal::none)
                content.push_back('\n');
            line_length_ = 0;
            state_ = State::line_start;
            return;
        }
        refuse(DataRefusal::bad_line_ending);
    }
    state_ = State::text;
    if (c == '\r') {
        state_ = State::cr;
    } else if (c == '\n') {
        refuse(DataRefusal::bad_line_ending);
    } else if (c == '\0') {
        refuse(DataRefusal::nul);
    } else if (refusal_ == DataRefusal::none) {
        content.push_back(c);
    }
}

// How many bytes at the front of `rest` text_byte() would only append: none
// of CR, LF, NUL, and all within the size and line limits (0 once refused).
std::size_t DataReader::plain_run(std::string_view rest) const
{
    if (refusal_ != DataRefusal::none)
        return 0;
    std::size_t room = std::min<std::uint64_t>(limits_.max_message_size - std::min(received_, limits_.max_message_size),
        limits_.max_line - std::min(line_length_, limits_.max_line));
    std::size_t n = 0;
    std::size_t end = std::min(rest.size(), room);
    while (n < end && rest[n] != '\r' && rest[n] != '\n' && rest[n] != '\0')
        ++n;
    return n;
}

DataReader::Progress DataReader::feed(std::string_view chunk, std::string& content)
{
    Progress progress;
    for (std::size_t i = 0; i < chunk.size() && state_ != State::done; ++i) {
        char c = chunk[i];
        progress.consumed = i + 1;
        switch (state_) {
        case State::line_start:
            if (c == '.')
                state_ = State::dot;
            else
                text_byte(c, content);
            break;
        case State::dot:
            if (c == '\r') {
                state_ = State::dot_cr;
                break;
            }
            // The leading dot is removed (RFC 5321 §4.5.2) and, as the RFC
            // says, not counted in the line, nor in the size (RFC 1870 §3).
            state_ = State::text;
            text_byte(c, content);
            break;
        case State::dot_cr:
            if (c == '\n') {
                state_ = State::done;
                break;
            }
            // ".<CR>" then anything but LF: the CR was bare.
            received_ = checked_add<std::uint64_t>(received_, 1)
                            .value_or(std::numeric_limits<std::uint64_t>::max());
            state_ = State::text;
            text_byte('\r', content);
            text_byte(c, content);
            break;
        case State::text:
            if (std::size_t run = plain_run(chunk.substr(i)); run > 1) {
                content.append(chunk.data() + i, run); // the common case: a stretch of ordinary bytes at once
                received_ += run;
                line_length_ += run;
                i += run - 1;
                progress.consumed = i + 1;
                break;
            }
            text_byte(c, content);
            break;
        case State::cr:
            text_byte(c, content);
            break;
        case State::done:
            break;
        }
    }
    progress.finished = state_ == State::done;
    return progress;
}

Reply DataReader::refusal_reply() const
{
    switch (refusal_) {
    case DataRefusal::none:
        break;
    case DataRefusal::bad_line_ending:
        return { 550, "5.5.2", "Bare CR or LF in message data; lines must end with CRLF" };
    case DataRefusal::nul:
        return { 554, "5.6.0", "NUL character in message data" };
    case DataRefusal::line_too_long:
        return { 552, "5.3.4",
            "Message has a line longer than " + std::to_string(limits_.max_line) + " octets" };
    case DataRefusal::too_big:
        return { 552, "5.3.4", "Message size exceeds fixed maximum message size" };
    }
    return {};
}

// --- replies ---

std::string format_reply(int code, std::string_view enhanced, const std::vector<std::string>& lines)
{
    if (code < 200 || code > 599)
        throw std::invalid_argument("SMTP reply code out of range");
    if (!is_well_formed_enhanced(code, enhanced))
        enhanced = {};
    const std::size_t count = std::max<std::size_t>(lines.size(), 1);
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        std::string line = std::to_string(code);
        line += i + 1 < count ? '-' : ' ';
        line += enhanced;
        std::string_view text = i < lines.size() ? std::string_view(lines[i]) : std::string_view();
        if (!enhanced.empty() && !text.empty())
            line += ' ';
        for (char c : text) {
            if (line.size() + 2 >= limits::reply_line)
                break;
            line += (is_ctl(c) || is_8bit(c)) ? '?' : c;
        }
        if (enhanced.empty() && text.empty() && i + 1 == count)
            line.pop_back(); // "250", not "250 "
        out += line;
        out += "\r\n";
    }
    return out;
}

std::string format_reply(const Reply& reply)
{
    return format_reply(reply.code, reply.enhanced, { reply.text });
}

} // namespace mm::smtp
