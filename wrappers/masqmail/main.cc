// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail, the front end of the legacy command line. Runs as the invoking
// user with no privilege (no set-uid bit); argv, stdin and the environment
// are untrusted. The name it is called by (sendmail, mailq, runq, ...)
// selects the default mode; cli.cc parses, this file dispatches.
#include "cli.hh"
#include "context.hh"
#include "daemon_modes.hh"
#include "explain.hh"
#include "mm/config_check.hh"
#include "mm/log.hh"
#include "mm/paths.hh"
#include "mm/sysexits.hh"
#include "mm_build_config.h"
#include "queue_tools.hh"
#include "smtp_stdio.hh"
#include "submit.hh"

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::string_view program_name(const char* argv0)
{
    std::string_view name(argv0 != nullptr ? argv0 : "masqmail");
    auto slash = name.rfind('/');
    return slash == std::string_view::npos ? name : name.substr(slash + 1);
}

int not_yet(mm::cli::Mode mode)
{
    std::fprintf(stderr, "masqmail: %s is not available in this build yet\n", mm::cli::mode_name(mode));
    return mm::ex::unavailable;
}

// Modes that read no configuration.
std::optional<int> run_without_config(const mm::cli::Invocation& inv)
{
    using mm::cli::Mode;
    switch (inv.mode) {
    case Mode::version:
        std::printf("MasqMail %s\n", MM_VERSION);
        return mm::ex::ok;
    case Mode::help:
        std::fputs(mm::cli::usage_text().data(), stdout);
        return mm::ex::ok;
    case Mode::daemon_dir:
        // Like postconf daemon_directory: where this binary finds its daemons.
        std::printf("%s\n", mm::paths::daemon_dir().c_str());
        return mm::ex::ok;
    case Mode::check_config:
        return mm::config::check_config(inv.config_path.value_or(mm::paths::default_config()), stdout);
    default:
        return std::nullopt;
    }
}

int run(const mm::frontend::Context& ctx)
{
    using mm::cli::Mode;
    for (const std::string& ignored : ctx.invocation.ignored_options)
        mm::log::info("ignored option %s", ignored.c_str());
    switch (ctx.invocation.mode) {
    case Mode::accept: return mm::frontend::submit_from_stdin(ctx);
    case Mode::list_queue: return mm::frontend::list_queue(ctx, false);
    case Mode::list_queue_json: return mm::frontend::list_queue(ctx, true);
    case Mode::remove:
        if (auto done = mm::frontend::remove_via_daemon(ctx))
            return *done;
        return mm::frontend::remove_messages(ctx);
    case Mode::daemon:
    case Mode::queue_daemon: return mm::frontend::start_daemons(ctx, false);
    case Mode::foreground_daemon: return mm::frontend::start_daemons(ctx, true);
    case Mode::queue_run: return mm::frontend::run_queue(ctx);
    case Mode::route_run: return mm::frontend::run_route(ctx);
    case Mode::rebuild_aliases: return mm::frontend::check_aliases(ctx);
    case Mode::smtp_stdio: return mm::frontend::smtp_on_stdio(ctx);
    case Mode::explain: return mm::frontend::explain_address(ctx);
    default: return not_yet(ctx.invocation.mode);
    }
}

} // namespace

int main(int argc, char* argv[])
{
    std::vector<std::string_view> args(argv + (argc > 0 ? 1 : 0), argv + argc);
    auto inv = mm::cli::parse_command_line(program_name(argc > 0 ? argv[0] : nullptr), args);
    if (!inv)
        return mm::frontend::report(inv.error());
    if (auto status = run_without_config(*inv))
        return *status;
    auto ctx = mm::frontend::load_context(std::move(inv).value());
    if (!ctx)
        return mm::frontend::report(ctx.error());
    return run(*ctx);
}
