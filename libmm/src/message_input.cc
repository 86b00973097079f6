// SPDX-License-Identifier: GPL-2.0-or-later
// Local submission reader: line endings, dot rules and limits of sendmail's
// stdin. The bytes are untrusted; memory stays within the size limit plus
// one line and one read buffer. Linked by the sendmail front end and enqueue.
#include "mm/message_input.hh"

#include "mm/limits.hh"

#include <array>
#include <cerrno>
#include <unistd.h>

namespace mm {

LocalMessageReader::LocalMessageReader(bool dot_terminates, std::uint64_t max_size)
    : dot_terminates_(dot_terminates)
    , max_size_(max_size)
{
}

Result<void> LocalMessageReader::end_line()
{
    std::string_view line(line_);
    if (dot_terminates_ && !line.empty() && line.front() == '.') {
        if (line.size() == 1) {
            done_ = true;
            line_.clear();
            return ok();
        }
        line.remove_prefix(1);
    }
    if (out_.size() + line.size() + 1 > max_size_)
        return Error::permanent("message too large (limit " + std::to_string(max_size_) + " bytes)");
    out_ += line;
    out_ += '\n';
    line_.clear();
    return ok();
}

Result<bool> LocalMessageReader::feed(std::string_view bytes)
{
    static constexpr std::string_view specials("\r\n\0", 3);
    while (!done_ && !bytes.empty()) {
        if (pending_cr_) {
            pending_cr_ = false;
            if (bytes.front() == '\n')
                bytes.remove_prefix(1);
            if (auto r = end_line(); !r)
                return std::move(r).error();
            continue;
        }
        std::size_t n = bytes.find_first_of(specials);
        std::string_view text = bytes.substr(0, n);
        if (line_.size() + text.size() > limits::text_line_accepted)
            return Error::permanent(
                "line longer than " + std::to_string(limits::text_line_accepted) + " bytes");
        line_ += text;
        if (n == std::string_view::npos)
            break;
        const char c = bytes[n];
        bytes.remove_prefix(n + 1);
        if (c == '\0')
            return Error::permanent("message contains NUL");
        if (c == '\r') {
            pending_cr_ = true;
        } else if (auto r = end_line(); !r) {
            return std::move(r).error();
        }
    }
    return done_;
}

Result<std::string> LocalMessageReader::finish()
{
    if (!done_ && (pending_cr_ || !line_.empty())) {
        pending_cr_ = false;
        if (auto r = end_line(); !r)
            return std::move(r).error();
    }
    done_ = true;
    return std::move(out_);
}

Result<std::string> read_local_message(const Fd& in, bool dot_terminates, std::uint64_t max_size)
{
    LocalMessageReader reader(dot_terminates, max_size);
    std::array<char, 64 * 1024> buf;
    for (;;) {
        ssize_t got = ::read(in.get(), buf.data(), buf.size());
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return Error::from_errno("reading the message", errno);
        if (got == 0)
            break;
        auto ended = reader.feed(std::string_view(buf.data(), static_cast<std::size_t>(got)));
        if (!ended)
            return std::move(ended).error();
        if (*ended)
            break;
    }
    return reader.finish();
}

} // namespace mm
