// SPDX-License-Identifier: GPL-2.0-or-later
// Per-leaf delivery in the request's child (leaf_delivery.hh). The child
// keeps CAP_SETUID/CAP_SETGID (system install) only to hand them to one
// short-lived worker per leaf, which switches to the user, drops them, and
// only then touches a mailbox or starts a program. Linked by local-deliver.
#include "leaf_delivery.hh"

#include "maildir.hh"
#include "mbox.hh"
#include "pipe.hh"

#include "mm/cursor.hh"
#include "mm/fs.hh"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <functional>
#include <sys/wait.h>
#include <unistd.h>

namespace mm::local {

namespace {

using protocol::LeafOutcome;
using protocol::LeafResult;

// The user whose uid Postfix's default_privs names: pipes of root's alias files run as it.
constexpr const char* unprivileged_user = "nobody";
// A worker's report: one digit (the DeliveryStatus kind), then the reason.
constexpr std::size_t worker_report_max = 4096;

bool in_user_list(const std::vector<std::string>& users, std::string_view name, bool caseless)
{
    return std::any_of(users.begin(), users.end(),
        [&](const std::string& user) { return caseless ? equals_nocase(user, name) : user == name; });
}

// masqmail §4.3: mbox_users, then mda_users, then (ours) maildir_users, else mbox_default.
Method mailbox_method(std::string_view name, const config::MainConfig& cfg)
{
    bool caseless = cfg.caseless_matching;
    if (in_user_list(cfg.mbox_users, name, caseless))
        return Method::mbox;
    if (in_user_list(cfg.mda_users, name, caseless))
        return Method::mda;
    if (in_user_list(cfg.maildir_users, name, caseless))
        return Method::maildir;
    switch (cfg.mbox_default) {
    case config::MboxMethod::mda:
        return Method::mda;
    case config::MboxMethod::maildir:
        return Method::maildir;
    case config::MboxMethod::mbox:
        break;
    }
    return Method::mbox;
}

// The owner of the alias file, or `nobody` for root's files. A missing
// account is our configuration trouble: the mail waits.
Result<priv::Identity> pipe_user(uid_t owner)
{
    Result<priv::Identity> user = owner == 0 ? priv::lookup_user(unprivileged_user) : priv::lookup_uid(owner);
    if (!user)
        return Error::temporary("no user to run the alias pipe as: " + user.error().message());
    return user;
}

Result<priv::Identity> mailbox_user(const std::string& name)
{
    Result<priv::Identity> user = priv::lookup_user(name);
    if (!user)
        return user.error().kind() == ErrorKind::permanent ? Error::permanent("no such user") : user.error();
    if (user->uid == 0)
        return Error::permanent("mail is never delivered as root; alias root to a user");
    return user;
}

// run_pipe's status names the program's exit and the first line of its output.
DeliveryStatus run_program(const Result<PipeCommand>& command, const MessageSource& message,
    const LocalEnvelope& envelope, bool from_line, bool from_hack)
{
    if (!command)
        return DeliveryStatus::from_error(command.error());
    PipeOptions options;
    options.from_line = from_line;
    options.from_hack = from_hack;
    return run_pipe(*command, message, envelope, options).status;
}

// Runs in the worker, already as the target user.
DeliveryStatus deliver_to(const Target& target, const AliasLeaf& leaf, const MessageSource& message,
    const LocalEnvelope& envelope, const config::MainConfig& cfg)
{
    switch (target.method) {
    case Method::pipe:
        return run_program(
            literal_command(leaf.command.argv), message, envelope, cfg.pipe_fromline, cfg.pipe_fromhack);
    case Method::mda:
        if (!cfg.mda)
            return DeliveryStatus::defer("no mda set in " + cfg.file);
        return run_program(
            expand_command(cfg.mda->argv, envelope), message, envelope, cfg.mda_fromline, cfg.mda_fromhack);
    case Method::mbox: {
        Result<Dir> mail_dir = open_dir(cfg.mail_dir);
        if (!mail_dir)
            return DeliveryStatus::defer(mail_dir.error().message());
        MboxOptions options;
        options.owner = target.owner;
        return deliver_mbox(*mail_dir, target.mailbox, message, envelope, options);
    }
    case Method::maildir: {
        // A system user's ~/Maildir; a private instance's mail_dir/LOCALPART.
        bool in_home = target.identity.has_value();
        Result<Dir> parent = open_dir(in_home ? target.identity->home : cfg.mail_dir);
        if (!parent)
            return DeliveryStatus::defer(parent.error().message());
        return deliver_maildir(*parent, in_home ? "Maildir" : target.mailbox, message, envelope,
            { target.owner, cfg.host_name });
    }
    }
    return DeliveryStatus::defer("unknown delivery method");
}

std::string describe_wait(int status)
{
    if (WIFEXITED(status))
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return "was killed by signal " + std::to_string(WTERMSIG(status));
    return "ended";
}

// The worker: becomes the target user (nothing to switch in a private
// instance), delivers, reports through the pipe and exits.
[[noreturn]] void worker_main(
    const Target& target, const std::function<DeliveryStatus()>& deliver, const Fd& report)
{
    DeliveryStatus status = DeliveryStatus::defer("internal error in the delivery process");
    try {
        Result<void> became = target.identity ? priv::become_recipient(*target.identity) : ok();
        status = became ? deliver() : DeliveryStatus::from_error(became.error());
    } catch (...) {
    }
    std::string text = std::to_string(static_cast<int>(status.kind)) + status.reason;
    (void)write_all(report, text);
    ::_exit(0);
}

DeliveryStatus run_in_worker(const Target& target, const std::function<DeliveryStatus()>& deliver)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        return DeliveryStatus::from_error(Error::from_errno("pipe", errno));
    Fd read_end(fds[0]);
    Fd write_end(fds[1]);
    pid_t pid = ::fork();
    if (pid < 0)
        return DeliveryStatus::from_error(Error::from_errno("fork", errno));
    if (pid == 0) {
        read_end.reset();
        worker_main(target, deliver, write_end);
    }
    write_end.reset();
    Result<std::string> report = read_all(read_end, worker_report_max);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) { }
    if (!report || report->empty() || report->front() < '0' || report->front() > '2')
        return DeliveryStatus::defer("delivery process " + describe_wait(status) + " without a result");
    auto kind = static_cast<DeliveryStatus::Kind>(report->front() - '0');
    return DeliveryStatus { kind, DeliveryStatus::printable_reason(std::string_view(*report).substr(1)) };
}

LeafOutcome outcome_of(DeliveryStatus::Kind kind)
{
    switch (kind) {
    case DeliveryStatus::delivered:
        return LeafOutcome::delivered;
    case DeliveryStatus::failed:
        return LeafOutcome::failed;
    case DeliveryStatus::deferred:
        break;
    }
    return LeafOutcome::deferred;
}

LeafResult deliver_leaf(const DeliveryPlan& plan, const PlannedLeaf& planned, const MessageSource& message,
    const DeliveryContext& ctx)
{
    LocalEnvelope envelope = plan.envelope;
    envelope.rcpt = planned.leaf.address;
    std::string what = describe_leaf(planned.leaf, envelope.original_rcpt);
    Result<Target> target = choose_target(planned.leaf, ctx);
    DeliveryStatus status = target
        ? run_in_worker(
            *target, [&] { return deliver_to(*target, planned.leaf, message, envelope, *ctx.cfg); })
        : DeliveryStatus::from_error(target.error());
    LeafResult result { planned.key, outcome_of(status.kind), status.reason };
    log_outcome(plan.queue_id, what, target ? method_name(target->method) : "-", result);
    return result;
}

} // namespace

const char* method_name(Method method)
{
    switch (method) {
    case Method::mbox:
        return "mbox";
    case Method::maildir:
        return "maildir";
    case Method::mda:
        return "mda";
    case Method::pipe:
        return "pipe";
    }
    return "?";
}

Result<Target> choose_target(const AliasLeaf& leaf, const DeliveryContext& ctx)
{
    const config::MainConfig& cfg = *ctx.cfg;
    Target target;
    target.owner = ctx.instance_uid;
    if (leaf.kind == LeafKind::pipe) {
        target.method = Method::pipe;
        if (ctx.private_instance)
            return target;
        Result<priv::Identity> user = pipe_user(ctx.aliases->pipe_owner(leaf, cfg.caseless_matching));
        if (!user)
            return std::move(user).error();
        target.owner = user->uid;
        target.identity = std::move(user).value();
        return target;
    }
    if (!leaf.local || leaf.kind == LeafKind::remote)
        return Error::permanent("not a local leaf");
    target.mailbox = leaf.address.local_part();
    if (!is_safe_mailbox_name(target.mailbox))
        return Error::permanent("unsafe mailbox name");
    target.method = mailbox_method(target.mailbox, cfg);
    if (ctx.private_instance)
        return target;
    Result<priv::Identity> user = mailbox_user(target.mailbox);
    if (!user)
        return std::move(user).error();
    target.owner = user->uid;
    target.identity = std::move(user).value();
    return target;
}

std::vector<LeafResult> deliver_leaves(
    const DeliveryPlan& plan, const MessageSource& message, const DeliveryContext& ctx)
{
    std::vector<LeafResult> results;
    for (const PlannedLeaf& planned : plan.to_deliver)
        results.push_back(deliver_leaf(plan, planned, message, ctx));
    return results;
}

} // namespace mm::local
