// SPDX-License-Identifier: GPL-2.0-or-later
// Result<T>: the value of an operation that can fail in an expected way, and
// Error, whose kind decides the SMTP reply class and the sysexits code.
// Linked by every process; holds no input of its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace mm {

// temporary: try again later (4xx, EX_TEMPFAIL). Local trouble such as a full
// disk or an I/O error is always temporary: it must never bounce mail.
// permanent: the input can never succeed (5xx, EX_DATAERR).
// protocol: the peer broke the protocol (501/500, EX_PROTOCOL).
// internal: a bug or an impossible state on our side (451, EX_SOFTWARE).
enum class ErrorKind : std::uint8_t { temporary, permanent, protocol, internal };

const char* error_kind_name(ErrorKind kind);

class Error {
public:
    Error(ErrorKind kind, std::string message, int sys_errno = 0)
        : kind_(kind), sys_errno_(sys_errno), message_(std::move(message)) {}

    static Error temporary(std::string message) { return {ErrorKind::temporary, std::move(message)}; }
    static Error permanent(std::string message) { return {ErrorKind::permanent, std::move(message)}; }
    static Error protocol(std::string message) { return {ErrorKind::protocol, std::move(message)}; }
    static Error internal(std::string message) { return {ErrorKind::internal, std::move(message)}; }
    // A failed system call: "what: strerror(err)", kind temporary (local trouble).
    static Error from_errno(std::string_view what, int err);

    ErrorKind kind() const { return kind_; }
    const std::string& message() const { return message_; }
    int sys_errno() const { return sys_errno_; }
    bool is_temporary() const { return kind_ == ErrorKind::temporary || kind_ == ErrorKind::internal; }

    // SMTP basic reply code for this error: 451, 550, 501 or 451.
    int smtp_code() const;
    // RFC 3463 enhanced status code matching smtp_code(), e.g. "4.3.0", or
    // the one set with status_as().
    const char* enhanced_code() const;
    // Names the precise RFC 3463 status ("5.4.6" for a mail loop); a string
    // literal, or one of status_codes() when rebuilt from a frame.
    Error& status_as(const char* enhanced) & { status_override_ = enhanced; return *this; }
    Error&& status_as(const char* enhanced) && { status_override_ = enhanced; return std::move(*this); }
    // The status_as() value, or nullptr.
    const char* status_override() const { return status_override_; }
    // sysexits(3) status: 75, 65, 76 or 70 by kind, unless set with exit_as().
    int exit_code() const;
    // Overrides the exit status where the kind alone is not precise enough
    // (EX_USAGE for a bad option, EX_CONFIG for a bad configuration).
    Error& exit_as(int code) & { exit_override_ = code; return *this; }
    Error&& exit_as(int code) && { exit_override_ = code; return std::move(*this); }
    // Prefixes the message: "context: message".
    Error with_context(std::string_view context) const;

private:
    ErrorKind kind_;
    int sys_errno_;
    std::optional<int> exit_override_;
    const char* status_override_ = nullptr;
    std::string message_;
};

// The enhanced codes status_as() is used with, for decoding them from a frame
// back into a string with static storage; nullptr for any other.
const char* known_status_code(std::string_view code);

template <class T>
class [[nodiscard]] Result {
    static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>, "Result<Error> is ambiguous");

public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool has_value() const { return v_.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const& { return std::get<1>(v_); }
    Error&& error() && { return std::get<1>(std::move(v_)); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)) {}

    bool has_value() const { return !error_.has_value(); }
    explicit operator bool() const { return has_value(); }
    const Error& error() const& { return *error_; }
    Error&& error() && { return std::move(*error_); }

private:
    std::optional<Error> error_;
};

inline Result<void> ok() { return {}; }

} // namespace mm
