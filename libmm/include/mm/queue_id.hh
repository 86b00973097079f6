// SPDX-License-Identifier: GPL-2.0-or-later
// QueueId: the name of a message in the spool, "<10 decimal digits of Unix
// seconds>.<16 lowercase hex digits from getrandom>" (27 bytes). Built only by
// generate() or by the strict parser, which every name from a directory
// listing, a peer or the command line must pass. Linked by every process.
#pragma once

#include "mm/result.hh"

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace mm {

class QueueId {
public:
    static constexpr std::size_t seconds_digits = 10;
    static constexpr std::size_t random_digits = 16;
    static constexpr std::size_t length = seconds_digits + 1 + random_digits;
    static constexpr std::int64_t max_seconds = 9'999'999'999; // year 2286

    // A fresh id for a message received now: the clock plus 64 random bits,
    // so that processes need no coordination to stay unique.
    static Result<QueueId> generate();
    // Same, at a given time (tests, and callers that already read the clock).
    static Result<QueueId> generate_at(std::int64_t unix_seconds);
    // The id with exactly these parts; seconds must be 0..max_seconds.
    static Result<QueueId> from_parts(std::int64_t unix_seconds, std::uint64_t random);
    // Exactly `length` bytes: 10 digits, '.', 16 lowercase hex digits.
    // Anything else ("../x", "ID.st", upper case, spaces) is refused.
    static Result<QueueId> parse(std::string_view text);

    const std::string& str() const { return text_; }
    const char* c_str() const { return text_.c_str(); }
    // When the message was received (the seconds part).
    std::int64_t unix_seconds() const;

    // Ordered by time, then by the random part: a sorted list is in order of arrival.
    friend std::strong_ordering operator<=>(const QueueId& a, const QueueId& b)
    {
        return a.text_.compare(b.text_) <=> 0;
    }
    friend bool operator==(const QueueId&, const QueueId&) = default;

private:
    explicit QueueId(std::string text)
        : text_(std::move(text))
    {
    }
    std::string text_;
};

} // namespace mm

template <> struct std::hash<mm::QueueId> {
    std::size_t operator()(const mm::QueueId& id) const noexcept
    {
        return std::hash<std::string> {}(id.str());
    }
};
