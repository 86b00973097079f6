// SPDX-License-Identifier: GPL-2.0-or-later
// Daemon modes of the front end (daemon_modes.hh). Runs as the invoking user.
#include "daemon_modes.hh"

#include "mm/ipc.hh"
#include "mm/log.hh"
#include "mm/paths.hh"
#include "mm/protocol.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

namespace mm::frontend {

namespace {

// A queue run may deliver a large queue: wait long for its answer.
constexpr int queue_run_timeout_ms = 6 * 3600 * 1000;

std::string absolute(const std::string& path)
{
    char buf[PATH_MAX];
    if (::realpath(path.c_str(), buf) != nullptr)
        return buf;
    return path;
}

[[noreturn]] int exec_supervisor(const Context& ctx, std::vector<std::string> extra)
{
    std::string path = paths::daemon_path("supervisor");
    std::vector<std::string> args = {"masqmail", "-C", absolute(ctx.config_path)};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    char* envp[] = {nullptr};
    ::execve(path.c_str(), argv.data(), envp);
    std::fprintf(stderr, "masqmail: cannot run %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(ex::oserr);
}

std::optional<Fd> connect_control(const Context& ctx)
{
    auto sock = ipc::connect_seqpacket(ctx.config.spool_dir + "/public/qmgr-ctl");
    if (!sock)
        return std::nullopt;
    return std::move(sock).value();
}

// Sends a control frame and reports qmgr's status answer.
int control_call(const Fd& sock, const Result<std::string>& frame, int timeout_ms)
{
    if (!frame)
        return report(frame.error());
    auto answer = protocol::call(sock, *frame, nullptr, timeout_ms);
    if (!answer)
        return report(answer.error().with_context("qmgr"));
    auto parsed = ipc::FrameReader::parse(answer->bytes);
    if (!parsed)
        return report(Error::temporary("bad answer from qmgr"));
    auto status = protocol::decode_status(*parsed);
    if (!status)
        return report(Error::temporary("bad answer from qmgr"));
    if (!*status)
        return report(status->error());
    return ex::ok;
}

} // namespace

int start_daemons(const Context& ctx, bool foreground)
{
    if (!ctx.privileged)
        return report(Error::permanent("must be root, mail or the instance's owner to start the daemon")
                          .exit_as(ex::noperm));
    std::vector<std::string> extra;
    if (ctx.invocation.queue_interval)
        extra.insert(extra.end(), {"-q", std::to_string(ctx.invocation.queue_interval->count())});
    if (foreground)
        extra.push_back("--foreground");
    exec_supervisor(ctx, extra);
}

int run_queue(const Context& ctx)
{
    if (auto sock = connect_control(ctx))
        return control_call(*sock, protocol::encode_run_queue(1), queue_run_timeout_ms);
    if (!ctx.privileged)
        return report(Error::permanent("must be root, mail or the instance's owner to run the queue")
                          .exit_as(ex::noperm));
    // No daemon: the same daemons for one pass (they wait for each other's lock).
    exec_supervisor(ctx, {"--once"});
}

int run_route(const Context& ctx)
{
    const std::string& name = ctx.invocation.route_name;
    if (auto sock = connect_control(ctx))
        return control_call(*sock, protocol::encode_run_route(1, name), queue_run_timeout_ms);
    if (!ctx.privileged)
        return report(Error::permanent("must be root, mail or the instance's owner to run the queue")
                          .exit_as(ex::noperm));
    exec_supervisor(ctx, {"--once", "--connection", name});
}

std::optional<int> remove_via_daemon(const Context& ctx)
{
    auto sock = connect_control(ctx);
    if (!sock)
        return std::nullopt;
    // One request per id, so that each gets its own line and status.
    int status = ex::ok;
    for (const std::string& id : ctx.invocation.message_ids) {
        int r = control_call(*sock, protocol::encode_remove(1, {id}), 60'000);
        if (r == ex::ok)
            std::printf("message %s deleted\n", id.c_str());
        else if (status == ex::ok)
            status = r;
    }
    return status;
}

} // namespace mm::frontend
