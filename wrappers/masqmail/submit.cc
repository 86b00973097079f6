// SPDX-License-Identifier: GPL-2.0-or-later
// Accept mode: recipients from argv (and with -t from the headers), the
// message from stdin under masqmail's dot rules, then the enqueue code path.
// Runs as the invoking user; stdin, argv and the environment are untrusted.
// Today the message is committed in-process, which a private instance's
// owner may do; submission through the enqueue daemon and the set-gid drop
// helper for ordinary users of a system install come with those programs.
#include "submit.hh"

#include "mm/enqueue.hh"
#include "mm/log.hh"
#include "mm/message_input.hh"
#include "mm/spool.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <sys/stat.h>
#include <unistd.h>

namespace mm::frontend {

namespace {

Result<Address> parse_sender(const Context& ctx)
{
    const auto& wanted = ctx.invocation.sender;
    AddressOptions opts{.qualify_domain = ctx.config.host_name, .allow_null = true};
    if (!wanted)
        return parse_address(ctx.login, opts);
    if (!ctx.privileged)
        return Error::permanent("must be root, mail or in group mail for setting return path.")
            .exit_as(ex::noperm);
    auto a = parse_address(*wanted, opts);
    if (!a)
        return Error::permanent("invalid return address '" + *wanted + "': " + a.error().message());
    return a;
}

Result<std::vector<Address>> parse_recipients(const Context& ctx)
{
    std::vector<Address> out;
    AddressOptions opts{.qualify_domain = ctx.config.host_name, .allow_null = false};
    for (const std::string& text : ctx.invocation.recipients) {
        auto a = parse_address(text, opts);
        if (a && a->local_part().starts_with('|'))
            a = Error::permanent("pipe addresses are not accepted from the command line");
        if (!a)
            return Error::permanent("invalid recipient address '" + text + "': " + a.error().message());
        out.push_back(std::move(a).value());
    }
    return out;
}

Result<Submission> build_submission(const Context& ctx)
{
    Submission s;
    auto sender = parse_sender(ctx);
    if (!sender)
        return std::move(sender).error();
    s.sender = std::move(sender).value();
    auto rcpts = parse_recipients(ctx);
    if (!rcpts)
        return std::move(rcpts).error();
    s.recipients = std::move(rcpts).value();
    s.extract_recipients = ctx.invocation.extract_recipients;
    s.full_name = ctx.invocation.full_name.value_or(ctx.full_name);
    s.ident = ctx.login;
    s.uid = static_cast<std::uint32_t>(ctx.uid);
    return s;
}

// Committing in this process is right only for the spool's owner (a private
// instance): files written by anyone else, root included, would be unreadable
// for the queue's own user.
Result<Accepted> commit_locally(const Context& ctx, const Submission& s, std::string_view content)
{
    auto spool = Spool::open(ctx.config.spool_dir, ctx.creates_spool);
    if (!spool)
        return std::move(spool).error().with_context("cannot queue the message");
    struct stat st{};
    if (::fstat(spool->area(SpoolArea::tmp).get(), &st) != 0)
        return Error::from_errno("cannot queue the message: stat " + ctx.config.spool_dir + "/tmp", errno);
    if (st.st_uid != ctx.uid)
        return Error::temporary("cannot queue the message: the spool " + ctx.config.spool_dir +
                                " belongs to another user and no masqmail daemon takes submissions yet");
    return accept_message(*spool, ctx.config, s, content);
}

} // namespace

int submit_from_stdin(const Context& ctx)
{
    auto submission = build_submission(ctx);
    if (!submission)
        return report(submission.error());
    Fd in(STDIN_FILENO);
    auto content = read_local_message(in, ctx.invocation.dot_terminates, max_message_size(ctx.config));
    (void)in.release(); // stdin stays open for the process
    if (!content)
        return report(content.error());
    auto accepted = commit_locally(ctx, *submission, *content);
    if (!accepted) {
        log::error("message from %s not accepted: %s", ctx.login.c_str(), accepted.error().message().c_str());
        return report(accepted.error());
    }
    if (ctx.invocation.verbose)
        std::fprintf(stderr, "masqmail: queued as %s\n", accepted->id.c_str());
    return ex::ok;
}

} // namespace mm::frontend
