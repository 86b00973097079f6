// SPDX-License-Identifier: GPL-2.0-or-later
// Per-leaf and per-batch delivery in a delivery child (leaf_delivery.hh).
// The child keeps CAP_SETUID/CAP_SETGID (system install) only to hand them
// to one short-lived worker per leaf (or per batch for one mailbox), which
// switches to the user, drops them, and only then touches a mailbox or
// starts a program. Linked by local-deliver.
#include "leaf_delivery.hh"

#include "maildir.hh"
#include "mbox.hh"
#include "pipe.hh"

#include "mm/cursor.hh"
#include "mm/fs.hh"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
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

// Debian's /var/mail is root:mail 2775: only group mail may create a
// mailbox or a lock file in it. The child that appends to a mailbox (our
// own code, never the user's) then also holds mail_dir's group, as the
// set-gid mail delivery agents do there. A world-writable mail_dir needs no
// group, and a root group is never handed out.
void add_mail_dir_group(priv::Identity& user, const std::string& mail_dir)
{
    struct stat st {};
    if (::stat(mail_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_gid == 0)
        return;
    if ((st.st_mode & S_IWGRP) == 0 || (st.st_mode & S_IWOTH) != 0)
        return;
    if (std::find(user.groups.begin(), user.groups.end(), st.st_gid) == user.groups.end())
        user.groups.push_back(st.st_gid);
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
// instance), delivers, reports through the pipe (one line per status: the
// kind digit, then the reason, which is printable) and exits.
[[noreturn]] void worker_main(const Target& target, std::size_t count,
    const std::function<std::vector<DeliveryStatus>()>& deliver, const Fd& report)
{
    std::vector<DeliveryStatus> statuses;
    try {
        Result<void> became = target.identity ? priv::become_recipient(*target.identity) : ok();
        if (became)
            statuses = deliver();
        else
            statuses.assign(count, DeliveryStatus::from_error(became.error()));
    } catch (...) {
    }
    std::string text;
    for (const DeliveryStatus& status : statuses)
        text += std::to_string(static_cast<int>(status.kind)) + status.reason + '\n';
    (void)write_all(report, text);
    ::_exit(0);
}

// Runs `deliver` (which gives `count` statuses) in a worker process as the target user.
std::vector<DeliveryStatus> run_in_worker(
    const Target& target, std::size_t count, const std::function<std::vector<DeliveryStatus>()>& deliver)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        return std::vector<DeliveryStatus>(count, DeliveryStatus::from_error(Error::from_errno("pipe", errno)));
    Fd read_end(fds[0]);
    Fd write_end(fds[1]);
    pid_t pid = ::fork();
    if (pid < 0)
        return std::vector<DeliveryStatus>(count, DeliveryStatus::from_error(Error::from_errno("fork", errno)));
    if (pid == 0) {
        read_end.reset();
        worker_main(target, count, deliver, write_end);
    }
    write_end.reset();
    Result<std::string> report = read_all(read_end, worker_report_max * count);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) { }
    std::vector<DeliveryStatus> statuses;
    std::string_view rest = report ? std::string_view(*report) : std::string_view();
    while (statuses.size() < count) {
        std::size_t end = rest.find('\n');
        if (end == std::string_view::npos || end == 0 || rest.front() < '0' || rest.front() > '2')
            break;
        auto kind = static_cast<DeliveryStatus::Kind>(rest.front() - '0');
        statuses.push_back({ kind, DeliveryStatus::printable_reason(rest.substr(1, end - 1)) });
        rest.remove_prefix(end + 1);
    }
    while (statuses.size() < count)
        statuses.push_back(
            DeliveryStatus::defer("delivery process " + describe_wait(status) + " without a result"));
    return statuses;
}

// In the worker: every item of a batch to one mailbox. An mbox takes them
// all under one lock with one fsync; other methods one after another.
std::vector<DeliveryStatus> deliver_all(const Target& target, const std::vector<BatchItem>& items,
    const std::vector<LocalEnvelope>& envelopes, const config::MainConfig& cfg)
{
    std::vector<DeliveryStatus> statuses;
    if (target.method == Method::mbox) {
        Result<Dir> mail_dir = open_dir(cfg.mail_dir);
        if (!mail_dir)
            return std::vector<DeliveryStatus>(items.size(), DeliveryStatus::defer(mail_dir.error().message()));
        std::vector<MboxItem> mbox_items;
        for (std::size_t i = 0; i < items.size(); ++i)
            mbox_items.push_back({ &items[i].message, &envelopes[i] });
        MboxOptions options;
        options.owner = target.owner;
        return deliver_mbox_batch(*mail_dir, target.mailbox, mbox_items, options);
    }
    for (std::size_t i = 0; i < items.size(); ++i)
        statuses.push_back(
            deliver_to(target, items[i].plan->to_deliver.front().leaf, items[i].message, envelopes[i], cfg));
    return statuses;
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
        ? run_in_worker(*target, 1,
            [&] { return std::vector { deliver_to(*target, planned.leaf, message, envelope, *ctx.cfg) }; })
              .front()
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
    if (target.method == Method::mbox)
        add_mail_dir_group(*user, cfg.mail_dir);
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

std::string batch_key(const DeliveryPlan& plan)
{
    if (plan.to_deliver.size() != 1)
        return {};
    const AliasLeaf& leaf = plan.to_deliver.front().leaf;
    if (!leaf.local || (leaf.kind != LeafKind::mailbox && leaf.kind != LeafKind::final_address))
        return {};
    return "mailbox " + leaf.address.local_part();
}

std::vector<LeafResult> deliver_batch(const std::vector<BatchItem>& items, const DeliveryContext& ctx)
{
    std::vector<LocalEnvelope> envelopes;
    for (const BatchItem& item : items) {
        envelopes.push_back(item.plan->envelope);
        envelopes.back().rcpt = item.plan->to_deliver.front().leaf.address;
    }
    const AliasLeaf& first = items.front().plan->to_deliver.front().leaf;
    Result<Target> target = choose_target(first, ctx);
    std::vector<DeliveryStatus> statuses = target
        ? run_in_worker(*target, items.size(), [&] { return deliver_all(*target, items, envelopes, *ctx.cfg); })
        : std::vector<DeliveryStatus>(items.size(), DeliveryStatus::from_error(target.error()));
    std::vector<LeafResult> results;
    for (std::size_t i = 0; i < items.size(); ++i) {
        const DeliveryPlan& plan = *items[i].plan;
        const PlannedLeaf& planned = plan.to_deliver.front();
        results.push_back({ planned.key, outcome_of(statuses[i].kind), statuses[i].reason });
        log_outcome(plan.queue_id, describe_leaf(planned.leaf, plan.envelope.original_rcpt),
            target ? method_name(target->method) : "-", results.back());
    }
    return results;
}

} // namespace mm::local
