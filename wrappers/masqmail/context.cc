// SPDX-License-Identifier: GPL-2.0-or-later
// Loading the front end's context. Runs as the invoking user.
#include "context.hh"

#include "mm/caller.hh"
#include "mm/log.hh"
#include "mm/paths.hh"
#include "mm/priv.hh"
#include "mm/sysexits.hh"

#include <algorithm>
#include <cstdio>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <sys/stat.h>

namespace mm::frontend {

namespace {

void open_log(const config::MainConfig& config)
{
    log::set_ident("masqmail");
    // An ordinary user may not write the system log file: syslog then.
    if (!log::configure({config.log_dir, config.use_syslog, config.debug_level}))
        log::use_syslog();
}

} // namespace

int report(const Error& error)
{
    std::fprintf(stderr, "masqmail: %s\n", error.message().c_str());
    return error.exit_code();
}

namespace {

// The user a private instance belongs to: the owner of its spool, or the
// caller when there is none yet (the caller creates it). Only that user is
// privileged in the instance; others are ordinary users of it.
uid_t instance_owner(const config::MainConfig& config, uid_t caller)
{
    struct stat st{};
    if (::stat(config.spool_dir.c_str(), &st) == 0)
        return st.st_uid;
    return caller;
}

} // namespace

Result<Context> load_context(cli::Invocation invocation)
{
    Context ctx;
    ctx.uid = ::getuid();
    ctx.config_path = invocation.config_path.value_or(paths::default_config());
    config::Diagnostics diag;
    auto config = config::read_main_config(ctx.config_path, diag);
    if (!config) {
        diag.print(stderr);
        return Error::permanent("cannot read configuration " + ctx.config_path).exit_as(ex::config);
    }
    ctx.config = std::move(config).value();
    if (invocation.config_path && ctx.uid != 0)
        ctx.config.run_as_user = true; // a private instance of this user
    if (invocation.debug_level) {
        if (ctx.uid != 0 && !ctx.config.run_as_user)
            return Error::permanent("only root may set the debug level.").exit_as(ex::noperm);
        ctx.config.debug_level = static_cast<int>(*invocation.debug_level);
    }
    std::optional<uid_t> owner;
    if (ctx.config.run_as_user)
        owner = instance_owner(ctx.config, ctx.uid);
    Caller caller = identify_caller(ctx.uid, owner);
    ctx.login = caller.login;
    ctx.full_name = caller.full_name;
    ctx.privileged = caller.privileged;
    ctx.creates_spool = ctx.config.run_as_user || invocation.config_path.has_value();
    ctx.invocation = std::move(invocation);
    open_log(ctx.config);
    return ctx;
}

} // namespace mm::frontend
