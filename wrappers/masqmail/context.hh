// SPDX-License-Identifier: GPL-2.0-or-later
// What every mode of the front end needs: the parsed command line, the
// configuration, who is calling and whether that caller is privileged for
// this instance. Runs as the invoking user; argv and environment untrusted.
#pragma once

#include "cli.hh"
#include "mm/config.hh"
#include "mm/result.hh"

#include <string>
#include <sys/types.h>

namespace mm::frontend {

struct Context {
    cli::Invocation invocation;
    std::string config_path;
    config::MainConfig config;
    uid_t uid = 0;
    std::string login;
    std::string full_name; // from GECOS, "" when none
    // root, the mail or masqmail user, a member of group mail, or anyone in
    // a run_as_user (private) instance (masqmail §1.6).
    bool privileged = false;
    // A private instance (-C or run_as_user) creates its spool on first use;
    // a system spool is created by the package (tmpfiles.d).
    bool creates_spool = false;
};

// Reads the configuration (errors: file:line lines on stderr, exit 78),
// identifies the caller and opens the log. A non-root caller naming a
// configuration with -C gets a private instance: run_as_user is forced, as
// masqmail does.
Result<Context> load_context(cli::Invocation invocation);

// Prints "masqmail: MESSAGE" on stderr and returns the error's exit code.
int report(const Error& error);

} // namespace mm::frontend
