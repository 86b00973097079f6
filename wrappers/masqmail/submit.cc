// SPDX-License-Identifier: GPL-2.0-or-later
// Accept mode: recipients from argv (and with -t from the headers), the
// message from stdin under masqmail's dot rules, then the enqueue code path.
// Runs as the invoking user; stdin, argv and the environment are untrusted.
// With the daemons running the message goes to enqueue over public/submit
// (as a memfd; enqueue learns the user from SO_PEERCRED). Without them the
// owner of a private instance commits it in-process through the same
// enqueue code, and anyone else hands it to postdrop after the checks
// enqueue will make (prepare_message), so that sendmail still reports them.
#include "submit.hh"

#include "mm/caller.hh"
#include "mm/enqueue.hh"
#include "mm/ipc.hh"
#include "mm/log.hh"
#include "mm/maildrop.hh"
#include "mm/paths.hh"
#include "mm/message_input.hh"
#include "mm/queue_id.hh"
#include "mm/spool.hh"
#include "mm/protocol.hh"
#include "mm/sysexits.hh"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <vector>
#include <sys/stat.h>
#include <unistd.h>

namespace mm::frontend {

namespace {

protocol::SubmitRequest make_request(const Context& ctx)
{
    const cli::Invocation& inv = ctx.invocation;
    protocol::SubmitRequest q;
    q.sender = inv.sender;
    q.recipients = inv.recipients;
    q.extract_recipients = inv.extract_recipients;
    q.full_name = inv.full_name;
    q.queue_only = inv.queue_only;
    q.verbose = inv.verbose;
    return q;
}

Caller caller_of(const Context& ctx)
{
    return Caller{.uid = ctx.uid, .login = ctx.login, .full_name = ctx.full_name, .privileged = ctx.privileged};
}

// Committing in this process is right only for the spool's owner (a private
// instance): files written by anyone else, root included, would be unreadable
// for the queue's own user.
Result<std::string> commit_locally(const Context& ctx, const Submission& s, std::string_view content)
{
    auto spool = Spool::open(ctx.config.spool_dir, ctx.creates_spool);
    if (!spool && spool.error().sys_errno() == EACCES)
        return Error::permanent("the spool is not ours").exit_as(ex::noperm);
    if (!spool)
        return std::move(spool).error().with_context("cannot queue the message");
    struct stat st{};
    if (::fstat(spool->area(SpoolArea::tmp).get(), &st) != 0)
        return Error::from_errno("cannot queue the message: stat " + ctx.config.spool_dir + "/tmp", errno);
    if (st.st_uid != ctx.uid)
        return Error::permanent("the spool belongs to another user").exit_as(ex::noperm);
    auto accepted = accept_message(*spool, ctx.config, s, content);
    if (!accepted)
        return std::move(accepted).error();
    return accepted->id.str();
}

// enqueue checks a drop file again when it commits it, but by then this
// sendmail has exited 0 and a refusal would reach only the log: refuse here,
// with the same code and reason, what it would refuse. The id and time are
// only for the trial; enqueue makes its own.
Result<void> check_as_enqueue_will(const Context& ctx, const Submission& s, std::string_view content)
{
    auto id = QueueId::generate();
    if (!id)
        return std::move(id).error();
    auto prepared = prepare_message(ctx.config, s, content, *id, std::time(nullptr));
    if (!prepared)
        return std::move(prepared).error();
    return ok();
}

// No daemon, and the spool is not ours: the set-gid drop helper writes the
// message to maildrop/, where enqueue finds it when it runs.
Result<std::string> drop_with_postdrop(const Context& ctx, const protocol::SubmitRequest& request,
    const Submission& s, std::string_view content)
{
    if (auto checked = check_as_enqueue_will(ctx, s, content); !checked)
        return std::move(checked).error();
    auto file = maildrop::encode(request, content);
    if (!file)
        return std::move(file).error();
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0)
        return Error::from_errno("pipe", errno);
    std::string path = paths::daemon_path("postdrop");
    std::vector<std::string> args = {"postdrop"};
    if (ctx.invocation.config_path)
        args.insert(args.end(), {"-C", ctx.config_path});
    pid_t pid = ::fork();
    if (pid < 0)
        return Error::from_errno("fork", errno);
    if (pid == 0) {
        ::dup2(pipefd[0], STDIN_FILENO);
        std::vector<char*> argv;
        for (std::string& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        char* envp[] = {nullptr};
        ::execve(path.c_str(), argv.data(), envp);
        std::fprintf(stderr, "masqmail: cannot run %s: %s\n", path.c_str(), std::strerror(errno));
        ::_exit(ex::tempfail);
    }
    ::close(pipefd[0]);
    Fd to_child(pipefd[1]);
    std::string_view rest = *file;
    while (!rest.empty()) {
        ssize_t n = ::write(to_child.get(), rest.data(), rest.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; // postdrop gave up; its status says why
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    to_child = Fd();
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return std::string("maildrop");
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : ex::tempfail;
    return Error::temporary("postdrop failed (exit status " + std::to_string(code) + ")").exit_as(code);
}

// The message in an anonymous file, passed to enqueue as a descriptor.
Result<Fd> content_file(std::string_view content)
{
    Fd fd(::memfd_create("masqmail-submission", MFD_CLOEXEC));
    if (!fd.valid())
        return Error::from_errno("memfd_create", errno);
    while (!content.empty()) {
        ssize_t n = ::write(fd.get(), content.data(), content.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return Error::from_errno("write to memfd", errno);
        content.remove_prefix(static_cast<std::size_t>(n));
    }
    return fd;
}

// Hands the message to a running enqueue daemon: nothing when none listens.
std::optional<Result<std::string>> submit_to_daemon(
    const Context& ctx, const protocol::SubmitRequest& request, std::string_view content)
{
    auto sock = ipc::connect_seqpacket(ctx.config.spool_dir + "/public/submit");
    if (!sock)
        return std::nullopt; // no daemon: ENOENT, ECONNREFUSED
    // A submit frame carries at most limits::recipients: refuse more here as
    // enqueue would (EX_DATAERR), not as a broken frame (EX_TEMPFAIL, EX_SOFTWARE).
    // Fewer are left to enqueue, which counts them after removing duplicates.
    std::size_t max = std::min(ctx.config.max_recipients, limits::recipients);
    if (request.recipients.size() > limits::recipients)
        return Result<std::string>(Error::permanent("too many recipients (" +
            std::to_string(request.recipients.size()) + ", at most " + std::to_string(max) + ")"));
    auto fd = content_file(content);
    if (!fd)
        return Result<std::string>(std::move(fd).error().with_context("cannot queue the message"));
    auto frame = protocol::encode_submit(1, request);
    if (!frame)
        return Result<std::string>(std::move(frame).error());
    auto reply = protocol::call(*sock, *frame, &*fd, 120'000);
    if (!reply)
        return Result<std::string>(std::move(reply).error().with_context("cannot queue the message"));
    auto parsed = ipc::FrameReader::parse(reply->bytes);
    if (!parsed)
        return Result<std::string>(Error::temporary("cannot queue the message: bad reply from enqueue"));
    auto result = protocol::decode_submit_result(*parsed);
    if (!result)
        return Result<std::string>(Error::temporary("cannot queue the message: bad reply from enqueue"));
    return std::move(result).value();
}

} // namespace

Result<std::string> queue_message(const Context& ctx, const protocol::SubmitRequest& request,
    const Submission& submission, std::string_view content)
{
    // enqueue's answer is final: its refusal is never retried through postdrop.
    if (auto via_daemon = submit_to_daemon(ctx, request, content))
        return std::move(*via_daemon);
    auto queued = commit_locally(ctx, submission, content);
    if (!queued && queued.error().exit_code() == ex::noperm)
        return drop_with_postdrop(ctx, request, submission, content);
    return queued;
}

Result<Submission> check_submission(const Context& ctx, const protocol::SubmitRequest& request)
{
    return local_submission(request, caller_of(ctx), ctx.config);
}

int submit_from_stdin(const Context& ctx)
{
    protocol::SubmitRequest request = make_request(ctx);
    // Checked here too so that a refused -f or a bad address is reported
    // before stdin is read; enqueue checks again with the peer's credentials.
    auto submission = check_submission(ctx, request);
    if (!submission)
        return report(submission.error());
    Fd in(STDIN_FILENO);
    auto content = read_local_message(in, ctx.invocation.dot_terminates, max_message_size(ctx.config));
    (void)in.release(); // stdin stays open for the process
    if (!content)
        return report(content.error());
    auto queued = queue_message(ctx, request, *submission, *content);
    if (!queued) {
        log::error("message from %s not accepted: %s", ctx.login.c_str(), queued.error().message().c_str());
        return report(queued.error());
    }
    if (ctx.invocation.verbose)
        std::fprintf(stderr, "masqmail: queued as %s\n", queued->c_str());
    return ex::ok;
}

} // namespace mm::frontend
