// SPDX-License-Identifier: GPL-2.0-or-later
// Move-only owners of file descriptors (Fd) and directory descriptors (Dir).
// Linked by every process.
#pragma once

#include "mm/result.hh"

#include <string>
#include <utility>

namespace mm {

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept
    {
        if (this != &other)
            reset(other.release());
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    int release() { return std::exchange(fd_, -1); }
    // Closes the current descriptor (ignoring errors) and owns `fd` instead.
    void reset(int fd = -1);
    // Closes and reports the error: after writing, close() can be the call
    // that tells about a failed write-back.
    [[nodiscard]] Result<void> close();

private:
    int fd_ = -1;
};

// An open directory, used as the base of every *at() call. Keeps the path it
// was opened by for error messages only; the path is never used to reach files.
class Dir {
public:
    Dir() = default;
    Dir(Fd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}

    int get() const { return fd_.get(); }
    bool valid() const { return fd_.valid(); }
    const std::string& path() const { return path_; }
    // "path/name", for messages.
    std::string describe(std::string_view name) const;

private:
    Fd fd_;
    std::string path_;
};

} // namespace mm
