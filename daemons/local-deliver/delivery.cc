// SPDX-License-Identifier: GPL-2.0-or-later
// The delivered form of a message and the status of a delivery. Message
// content is untrusted bytes and passes through unchanged except for the
// >From quoting asked for. Linked by local-deliver.
#include "delivery.hh"

#include "mm/fs.hh"
#include "mm/limits.hh"

#include <cerrno>
#include <unistd.h>

namespace mm::local {

std::string DeliveryStatus::printable_reason(std::string_view why)
{
    std::string out;
    for (char c : why.substr(0, limits::error_text))
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
}

DeliveryStatus DeliveryStatus::from_error(const Error& error)
{
    return error.is_temporary() ? defer(error.message()) : fail(error.message());
}

const char* status_name(DeliveryStatus::Kind kind)
{
    switch (kind) {
    case DeliveryStatus::delivered: return "delivered";
    case DeliveryStatus::deferred: return "deferred";
    case DeliveryStatus::failed: return "failed";
    }
    return "unknown";
}

Result<void> MessageSource::read(std::uint64_t pos, std::size_t max, std::string& out) const
{
    if (pos >= length_)
        return ok();
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(max, length_ - pos));
    if (fd_ < 0) {
        out.append(text_.substr(static_cast<std::size_t>(pos), want));
        return ok();
    }
    std::size_t old = out.size();
    out.resize(old + want);
    std::size_t got = 0;
    while (got < want) {
        ssize_t n = ::pread(fd_, out.data() + old + got, want - got, static_cast<off_t>(offset_ + pos + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            out.resize(old);
            return n < 0 ? Error::from_errno("read message", errno)
                         : Error::temporary("read message: the spool file is shorter than its record says");
        }
        got += static_cast<std::size_t>(n);
    }
    return ok();
}

std::string from_line(const LocalEnvelope& envelope, std::time_t now)
{
    std::string sender = envelope.return_path.is_null() ? "MAILER-DAEMON" : envelope.return_path.str();
    // A quoted local part may hold spaces; mbox readers split the line at
    // spaces, so keep it one word.
    for (char& c : sender)
        if (c == ' ' || c == '\t')
            c = '_';
    struct tm tm {};
    ::localtime_r(&now, &tm);
    char date[64];
    std::size_t n = std::strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
    return "From " + sender + " " + std::string(date, n) + "\n";
}

std::string delivery_headers(const LocalEnvelope& envelope)
{
    return "Envelope-to: " + envelope.original_rcpt.path() + "\nReturn-path: " + envelope.return_path.path() + "\n";
}

MessageRenderer::MessageRenderer(const MessageSource& source, const LocalEnvelope& envelope,
    const RenderOptions& options, std::time_t now)
    : source_(source)
    , options_(options)
{
    if (options.from_line)
        prefix_ = from_line(envelope, now);
    prefix_ += delivery_headers(envelope);
}

// Copies `in`, putting '>' before each line that starts with "From ". A line
// start split between two pieces waits in pending_.
void MessageRenderer::quote(std::string_view in, std::string& out)
{
    static constexpr std::string_view from = "From ";
    std::size_t i = 0;
    while (i < in.size()) {
        if (at_line_start_) {
            while (i < in.size() && pending_.size() < from.size() && in[i] == from[pending_.size()])
                pending_ += in[i++];
            if (pending_.size() < from.size() && i == in.size())
                return;
            if (pending_.size() == from.size())
                out += '>';
            out += pending_;
            pending_.clear();
            at_line_start_ = false;
            continue;
        }
        std::size_t nl = in.find('\n', i);
        std::size_t end = nl == std::string_view::npos ? in.size() : nl + 1;
        out.append(in.substr(i, end - i));
        i = end;
        at_line_start_ = nl != std::string_view::npos;
    }
}

Result<bool> MessageRenderer::next(std::string& out)
{
    if (!prefix_done_) {
        prefix_done_ = true;
        out += prefix_;
        return true;
    }
    if (pos_ < source_.length()) {
        std::string piece;
        if (auto r = source_.read(pos_, chunk, piece); !r)
            return std::move(r).error();
        pos_ += piece.size();
        if (!piece.empty())
            last_ = piece.back();
        if (options_.from_hack)
            quote(piece, out);
        else
            out += piece;
        return true;
    }
    if (end_done_)
        return false;
    end_done_ = true;
    out += pending_; // a last line that was a prefix of "From " and no more
    pending_.clear();
    if (options_.mbox_end)
        out += last_ == '\n' ? "\n" : "\n\n";
    return true;
}

Result<void> write_rendered(MessageRenderer& renderer, const Fd& fd)
{
    std::string piece;
    for (;;) {
        piece.clear();
        Result<bool> more = renderer.next(piece);
        if (!more)
            return std::move(more).error();
        if (!*more)
            return ok();
        if (auto w = write_all(fd, piece); !w)
            return w;
    }
}

} // namespace mm::local
