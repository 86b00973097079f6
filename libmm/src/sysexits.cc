// SPDX-License-Identifier: GPL-2.0-or-later
// Names of sysexits(3) codes for log lines. Linked by every process.
#include "mm/sysexits.hh"

namespace mm::ex {

const char* name(int status)
{
    switch (status) {
    case ok: return "EX_OK";
    case usage: return "EX_USAGE";
    case dataerr: return "EX_DATAERR";
    case noinput: return "EX_NOINPUT";
    case nouser: return "EX_NOUSER";
    case nohost: return "EX_NOHOST";
    case unavailable: return "EX_UNAVAILABLE";
    case software: return "EX_SOFTWARE";
    case oserr: return "EX_OSERR";
    case osfile: return "EX_OSFILE";
    case cantcreat: return "EX_CANTCREAT";
    case ioerr: return "EX_IOERR";
    case tempfail: return "EX_TEMPFAIL";
    case protocol: return "EX_PROTOCOL";
    case noperm: return "EX_NOPERM";
    case config: return "EX_CONFIG";
    default: return "unknown";
    }
}

} // namespace mm::ex
