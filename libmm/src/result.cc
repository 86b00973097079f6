// SPDX-License-Identifier: GPL-2.0-or-later
// Error: kind to SMTP reply and sysexits mapping. Linked by every process.
#include "mm/result.hh"

#include "mm/sysexits.hh"

#include <cerrno>
#include <cstring>

namespace mm {

const char* error_kind_name(ErrorKind kind)
{
    switch (kind) {
    case ErrorKind::temporary: return "temporary";
    case ErrorKind::permanent: return "permanent";
    case ErrorKind::protocol: return "protocol";
    case ErrorKind::internal: return "internal";
    }
    return "internal";
}

Error Error::from_errno(std::string_view what, int err)
{
    std::string msg(what);
    msg += ": ";
    msg += std::strerror(err);
    return {ErrorKind::temporary, std::move(msg), err};
}

int Error::smtp_code() const
{
    switch (kind_) {
    case ErrorKind::temporary: return sys_errno_ == ENOSPC || sys_errno_ == EDQUOT ? 452 : 451;
    case ErrorKind::permanent: return 550;
    case ErrorKind::protocol: return 501;
    case ErrorKind::internal: return 451;
    }
    return 451;
}

const char* known_status_code(std::string_view code)
{
    static constexpr const char* known[] = {"5.4.6", "5.3.4", "5.5.3", "5.1.3", "5.1.7", "5.6.0", "5.7.1"};
    for (const char* k : known)
        if (code == k)
            return k;
    return nullptr;
}

const char* Error::enhanced_code() const
{
    if (status_override_ != nullptr)
        return status_override_;
    switch (kind_) {
    case ErrorKind::temporary: return sys_errno_ == ENOSPC || sys_errno_ == EDQUOT ? "4.3.1" : "4.3.0";
    case ErrorKind::permanent: return "5.0.0";
    case ErrorKind::protocol: return "5.5.2";
    case ErrorKind::internal: return "4.3.0";
    }
    return "4.3.0";
}

int Error::exit_code() const
{
    if (exit_override_)
        return *exit_override_;
    switch (kind_) {
    case ErrorKind::temporary: return ex::tempfail;
    case ErrorKind::permanent: return ex::dataerr;
    case ErrorKind::protocol: return ex::protocol;
    case ErrorKind::internal: return ex::software;
    }
    return ex::software;
}

Error Error::with_context(std::string_view context) const
{
    Error e = *this;
    std::string msg(context);
    msg += ": ";
    msg += message_;
    e.message_ = std::move(msg);
    return e;
}

} // namespace mm
