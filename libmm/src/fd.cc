// SPDX-License-Identifier: GPL-2.0-or-later
// Fd and Dir. Linked by every process.
#include "mm/fd.hh"

#include <cerrno>
#include <unistd.h>

namespace mm {

void Fd::reset(int fd)
{
    if (fd_ >= 0 && fd_ != fd)
        ::close(fd_);
    fd_ = fd;
}

Result<void> Fd::close()
{
    int fd = release();
    if (fd < 0)
        return ok();
    // On Linux the descriptor is gone even when close() fails; never retry.
    if (::close(fd) != 0 && errno != EINTR)
        return Error::from_errno("close", errno);
    return ok();
}

std::string Dir::describe(std::string_view name) const
{
    std::string s = path_;
    if (!s.empty() && s.back() != '/')
        s += '/';
    s += name;
    return s;
}

} // namespace mm
