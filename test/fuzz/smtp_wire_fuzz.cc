// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for the SMTP wire layer, whose input is raw network bytes. The
// first byte picks options (bit 0: EHLO, bit 1: a qualify domain, bits 2-7:
// the chunking); the rest goes through the command reader and parser and
// through the DATA reader, each fed whole and in two other chunkings, which
// must agree. Replies must be well formed, memory bounded, accepted content
// canonical and round-trip; a broken property calls abort().
#include "mm/limits.hh"
#include "mm/smtp_wire.hh"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using mm::smtp::CommandReader;
using mm::smtp::DataReader;

void require(bool condition)
{
    if (!condition)
        std::abort();
}

// Each line ends with CRLF, holds no other CR or LF, no NUL, control or
// 8-bit byte, fits in 512 octets and starts with the code.
void check_reply_text(std::string_view out, int code)
{
    require(out.size() >= 5);
    const std::string prefix = std::to_string(code);
    std::size_t start = 0;
    while (start < out.size()) {
        std::size_t end = out.find("\r\n", start);
        require(end != std::string_view::npos);
        std::string_view line = out.substr(start, end - start);
        require(line.size() + 2 <= mm::limits::reply_line);
        require(line.substr(0, 3) == prefix);
        for (char c : line) {
            auto u = static_cast<unsigned char>(c);
            require(u >= 0x20 && u < 0x7f);
        }
        start = end + 2;
    }
}

void check_reply(const mm::smtp::Reply& reply)
{
    require(reply.code >= 500 && reply.code <= 599);
    require(!reply.text.empty());
    check_reply_text(mm::smtp::format_reply(reply), reply.code);
}

// A summary of what the parser made of a line, to compare chunkings.
std::string parse_summary(std::string_view line, const mm::smtp::ParseOptions& options)
{
    mm::smtp::ParsedCommand parsed = mm::smtp::parse_command(line, options);
    if (parsed.refused) {
        check_reply(*parsed.refused);
        return "R" + std::to_string(parsed.refused->code) + parsed.refused->enhanced;
    }
    const mm::smtp::Command& c = parsed.command;
    const std::string path = c.address.path();
    require(path.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
    require(path.size() <= mm::limits::path);
    if (c.verb == mm::smtp::Verb::rcpt)
        require(!c.address.is_null());
    if (c.size)
        require(*c.size <= options.max_message_size);
    return "C" + std::to_string(static_cast<int>(c.verb)) + c.argument + path + (c.unqualified ? "u" : "");
}

std::vector<std::string> read_commands(
    std::string_view input, std::size_t step, const mm::smtp::ParseOptions& options)
{
    CommandReader reader;
    std::vector<std::string> events;
    std::string buffer;
    for (std::size_t pos = 0; pos < input.size();) {
        std::size_t n = std::min(step == 0 ? input.size() : 1 + (pos * 7 + step) % step, input.size() - pos);
        buffer.append(input.substr(pos, n));
        pos += n;
        while (true) {
            CommandReader::Outcome o = reader.next(buffer);
            require(o.consumed <= buffer.size());
            std::string event;
            if (o.status == CommandReader::Status::line) {
                require(o.line.size() + 2 <= mm::limits::command_line);
                event = parse_summary(o.line, options);
            } else if (o.status == CommandReader::Status::refused) {
                check_reply(o.refusal);
                event = "X" + o.refusal.text;
            }
            buffer.erase(0, o.consumed);
            if (o.status == CommandReader::Status::need_more)
                break;
            events.push_back(std::move(event));
        }
        require(buffer.size() < mm::limits::command_line);
    }
    return events;
}

struct DataRun {
    std::string content;
    std::size_t consumed = 0;
    bool finished = false;
    mm::smtp::DataRefusal refusal = mm::smtp::DataRefusal::none;
    std::uint64_t received = 0;
    bool operator==(const DataRun&) const = default;
};

DataRun read_data(std::string_view input, std::size_t step, const mm::smtp::DataLimits& limits)
{
    DataReader reader(limits);
    DataRun run;
    for (std::size_t pos = 0; pos < input.size() && !reader.finished();) {
        std::size_t n = std::min(step == 0 ? input.size() : 1 + (pos * 13 + step) % step, input.size() - pos);
        DataReader::Progress p = reader.feed(input.substr(pos, n), run.content);
        require(p.consumed <= n && (p.finished || p.consumed == n));
        run.consumed += p.consumed;
        pos += n;
        require(run.content.size() <= limits.max_message_size);
    }
    run.finished = reader.finished();
    run.refusal = reader.refusal();
    run.received = reader.received();
    require(run.content.size() <= run.received);
    if (run.refusal != mm::smtp::DataRefusal::none)
        check_reply(reader.refusal_reply());
    return run;
}

// Accepted content is canonical (LF line ends, no CR or NUL), and sending it
// again the way a client must gives it back unchanged.
void check_round_trip(const DataRun& run, const mm::smtp::DataLimits& limits)
{
    if (!run.finished || run.refusal != mm::smtp::DataRefusal::none)
        return;
    require(run.content.find_first_of(std::string_view("\r\0", 2)) == std::string::npos);
    require(run.content.empty() || run.content.back() == '\n');
    std::string wire;
    bool line_start = true;
    for (char c : run.content) {
        if (line_start && c == '.')
            wire += '.';
        if (c == '\n')
            wire += '\r';
        wire += c;
        line_start = c == '\n';
    }
    wire += ".\r\n";
    DataRun again = read_data(wire, 0, limits);
    require(again.finished && again.consumed == wire.size() && again.content == run.content);
    require(again.refusal == mm::smtp::DataRefusal::none);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return 0;
    const std::uint8_t flags = data[0];
    std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

    mm::smtp::ParseOptions options;
    options.esmtp = (flags & 1) != 0;
    options.qualify_domain = (flags & 2) != 0 ? "example.org" : "";
    options.max_message_size = 100000;
    const std::size_t step = 1 + (flags >> 2);

    const std::vector<std::string> whole = read_commands(input, 0, options);
    require(read_commands(input, 1, options) == whole);
    require(read_commands(input, step, options) == whole);

    // A small size limit and the default line limit, so both are reached.
    const mm::smtp::DataLimits limits { .max_message_size = 4096, .max_line = mm::limits::text_line };
    const DataRun data_whole = read_data(input, 0, limits);
    require(read_data(input, 1, limits) == data_whole);
    require(read_data(input, step, limits) == data_whole);
    check_round_trip(data_whole, limits);

    // Reply formatting of hostile text, one line per input line.
    std::vector<std::string> lines;
    for (std::size_t pos = 0; pos <= input.size() && lines.size() < 64;) {
        std::size_t end = std::min(input.find('\n', pos), input.size());
        lines.emplace_back(input.substr(pos, end - pos));
        pos = end + 1;
    }
    check_reply_text(mm::smtp::format_reply(250, input.substr(0, 8), lines), 250);
    return 0;
}
