// SPDX-License-Identifier: GPL-2.0-or-later
// QueueId generation and the strict parser. Parsed text may come from a
// hostile directory listing or a peer. Linked by every process.
#include "mm/queue_id.hh"

#include "mm/cursor.hh"

#include <cerrno>
#include <ctime>
#include <sys/random.h>

namespace mm {

namespace {

bool is_lower_hex(char c)
{
    return is_ascii_digit(c) || (c >= 'a' && c <= 'f');
}

Result<std::uint64_t> random_u64()
{
    std::uint64_t value = 0;
    auto* bytes = reinterpret_cast<unsigned char*>(&value);
    std::size_t got = 0;
    while (got < sizeof value) {
        ssize_t n = ::getrandom(bytes + got, sizeof value - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return Error::from_errno("getrandom", errno);
        }
        got += static_cast<std::size_t>(n);
    }
    return value;
}

} // namespace

Result<QueueId> QueueId::generate()
{
    struct timespec now { };
    if (::clock_gettime(CLOCK_REALTIME, &now) != 0)
        return Error::from_errno("clock_gettime", errno);
    return generate_at(static_cast<std::int64_t>(now.tv_sec));
}

Result<QueueId> QueueId::generate_at(std::int64_t unix_seconds)
{
    auto random = random_u64();
    if (!random)
        return std::move(random).error();
    return from_parts(unix_seconds, *random);
}

Result<QueueId> QueueId::from_parts(std::int64_t unix_seconds, std::uint64_t random)
{
    if (unix_seconds < 0 || unix_seconds > max_seconds)
        return Error::internal("queue id: time " + std::to_string(unix_seconds) + " out of range");
    static constexpr char hex[] = "0123456789abcdef";
    std::string text(length, '0');
    auto secs = static_cast<std::uint64_t>(unix_seconds);
    for (std::size_t i = seconds_digits; i-- > 0; secs /= 10)
        text[i] = static_cast<char>('0' + secs % 10);
    text[seconds_digits] = '.';
    for (std::size_t i = length; i-- > seconds_digits + 1; random >>= 4)
        text[i] = hex[random & 0xf];
    return QueueId(std::move(text));
}

Result<QueueId> QueueId::parse(std::string_view text)
{
    bool ok = text.size() == length && text[seconds_digits] == '.';
    for (std::size_t i = 0; ok && i < length; ++i) {
        if (i < seconds_digits)
            ok = is_ascii_digit(text[i]);
        else if (i > seconds_digits)
            ok = is_lower_hex(text[i]);
    }
    if (!ok)
        return Error::permanent("not a queue id");
    return QueueId(std::string(text));
}

std::int64_t QueueId::unix_seconds() const
{
    std::int64_t secs = 0;
    for (std::size_t i = 0; i < seconds_digits; ++i)
        secs = secs * 10 + (text_[i] - '0');
    return secs;
}

} // namespace mm
