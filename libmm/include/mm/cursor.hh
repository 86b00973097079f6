// SPDX-License-Identifier: GPL-2.0-or-later
// A bounded read cursor over a string_view, and strict integer parsing: the
// base of every parser in libmm. Never reads past the end; no exceptions.
#pragma once

#include <charconv>
#include <cstddef>
#include <optional>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace mm {

class Cursor {
public:
    explicit Cursor(std::string_view text) : text_(text) {}

    bool at_end() const { return pos_ >= text_.size(); }
    std::size_t pos() const { return pos_; }
    std::size_t remaining() const { return text_.size() - pos_; }
    std::string_view rest() const { return text_.substr(pos_); }
    // The next byte, or '\0' at the end (callers that care check at_end()).
    char peek() const { return at_end() ? '\0' : text_[pos_]; }
    char peek_at(std::size_t offset) const
    {
        return offset < remaining() ? text_[pos_ + offset] : '\0';
    }
    // Advances one byte and returns it ('\0' at the end, without advancing).
    char next() { return at_end() ? '\0' : text_[pos_++]; }
    void skip(std::size_t n) { pos_ += n < remaining() ? n : remaining(); }

    bool consume(char c)
    {
        if (at_end() || text_[pos_] != c)
            return false;
        ++pos_;
        return true;
    }
    bool consume(std::string_view s)
    {
        if (rest().substr(0, s.size()) != s)
            return false;
        pos_ += s.size();
        return true;
    }
    // Case-insensitive (ASCII) match of `s`.
    bool consume_nocase(std::string_view s);

    template <class Pred>
    std::string_view take_while(Pred pred)
    {
        std::size_t start = pos_;
        while (!at_end() && pred(text_[pos_]))
            ++pos_;
        return text_.substr(start, pos_ - start);
    }
    template <class Pred>
    void skip_while(Pred pred) { (void)take_while(pred); }
    // Everything up to (not including) `c`, or the rest when `c` is absent.
    std::string_view take_until(char c)
    {
        return take_while([c](char x) { return x != c; });
    }

private:
    std::string_view text_;
    std::size_t pos_ = 0;
};

// The whole of `text` as a decimal number of type T; nothing else accepted
// (no sign unless T is signed, no spaces, no trailing bytes, no overflow).
template <class T>
    requires std::is_integral_v<T>
std::optional<T> parse_decimal(std::string_view text)
{
    if (text.empty() || text.front() == '+')
        return std::nullopt;
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
    if (ec != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

inline bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_ascii_space(char c) { return c == ' ' || c == '\t'; }
inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
bool equals_nocase(std::string_view a, std::string_view b);
// Strips spaces and tabs at both ends.
std::string_view trim(std::string_view s);

} // namespace mm
