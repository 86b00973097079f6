// SPDX-License-Identifier: GPL-2.0-or-later
// sysexits(3) status codes, as named constants of our own (no macros).
#pragma once

namespace mm::ex {
inline constexpr int ok = 0;
inline constexpr int usage = 64;       // bad command line
inline constexpr int dataerr = 65;     // bad input data
inline constexpr int noinput = 66;     // input file missing or unreadable
inline constexpr int nouser = 67;      // addressee unknown
inline constexpr int nohost = 68;      // host name unknown
inline constexpr int unavailable = 69; // service unavailable
inline constexpr int software = 70;    // internal software error
inline constexpr int oserr = 71;       // system error (fork failed, ...)
inline constexpr int osfile = 72;      // critical OS file missing
inline constexpr int cantcreat = 73;   // can't create output file
inline constexpr int ioerr = 74;       // input/output error
inline constexpr int tempfail = 75;    // temporary failure, try again
inline constexpr int protocol = 76;    // remote error in protocol
inline constexpr int noperm = 77;      // permission denied
inline constexpr int config = 78;      // configuration error

// "EX_TEMPFAIL" etc., for log lines about a child's exit status.
const char* name(int status);
} // namespace mm::ex
