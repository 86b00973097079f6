// SPDX-License-Identifier: GPL-2.0-or-later
// local-deliver's delivery children (server.hh): one forked child per
// request delivers its leaves (leaf_delivery.hh), or one child per batch of
// requests for one mailbox (never two children for one mailbox at once), and
// writes one delivery_result frame per request to a pipe, which the loop
// reads without blocking.
// A child's report is checked like any frame; a child that dies without one
// leaves its leaves deferred. Linked by local-deliver.
#include "server_impl.hh"

#include "leaf_delivery.hh"

#include "mm/fs.hh"
#include "mm/ipc.hh"
#include "mm/limits.hh"
#include "mm/log.hh"
#include "mm/sysexits.hh"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace mm::local {

namespace {

using protocol::LeafOutcome;
using protocol::LeafResult;

constexpr const char* reason_no_result = "the delivery process ended without a result";

void on_report(evutil_socket_t, short, void* arg)
{
    auto* child = static_cast<Server::Impl::Child*>(arg);
    Server::Impl* impl = child->impl;
    bool done = false;
    guarded("delivery report", [&] {
        impl->collect_garbage();
        impl->read_report(*child);
        done = true;
    });
    if (!done)
        impl->abandon_child(*child);
}

// The signals the loop handles go back to their defaults in a child, which
// runs no loop (and run_pipe needs SIGCHLD at its default).
void default_signals()
{
    struct sigaction dfl { };
    dfl.sa_handler = SIG_DFL;
    for (int signo : { SIGTERM, SIGINT, SIGHUP, SIGCHLD })
        ::sigaction(signo, &dfl, nullptr);
}

// The frames of a child's report, one per job in the order of its jobs:
// each the delivery_result frame for that job's request, or nothing where
// the report is short or malformed from there on.
std::vector<std::optional<std::vector<LeafResult>>> read_results(const Server::Impl::Child& child)
{
    std::vector<std::optional<std::vector<LeafResult>>> out(child.jobs.size());
    if (child.too_long)
        return out;
    std::string_view rest = child.bytes;
    for (std::size_t i = 0; i < child.jobs.size() && rest.size() >= ipc::header_size; ++i) {
        std::uint32_t payload = 0;
        for (int b = 3; b >= 0; --b)
            payload = payload << 8 | static_cast<unsigned char>(rest[4 + static_cast<std::size_t>(b)]);
        if (payload > rest.size() - ipc::header_size)
            break;
        std::string_view frame = rest.substr(0, ipc::header_size + payload);
        rest.remove_prefix(frame.size());
        Result<ipc::FrameReader> reader = ipc::FrameReader::parse(frame);
        if (!reader || reader->request_id() != child.jobs[i].request_id)
            break;
        Result<std::vector<LeafResult>> results = protocol::decode_delivery_result(*reader);
        if (!results)
            break;
        out[i] = std::move(results).value();
    }
    return out;
}

std::string describe_exit(int status)
{
    if (WIFSIGNALED(status))
        return "was killed by signal " + std::to_string(WTERMSIG(status));
    return "exited with status " + std::to_string(WEXITSTATUS(status));
}

} // namespace

void Server::Impl::start_waiting_jobs()
{
    while (!stopping && children.size() < limits.max_children) {
        std::vector<Job> batch = take_batch();
        if (batch.empty())
            return;
        start_child(std::move(batch));
    }
}

std::vector<Server::Impl::Job> Server::Impl::take_batch()
{
    auto first = std::find_if(waiting.begin(), waiting.end(),
        [&](const Job& job) { return job.batch_key.empty() || !busy_keys.contains(job.batch_key); });
    std::vector<Job> batch;
    if (first == waiting.end())
        return batch;
    std::string key = first->batch_key;
    batch.push_back(std::move(*first));
    auto kept = waiting.erase(first);
    if (key.empty())
        return batch;
    kept = std::remove_if(kept, waiting.end(), [&](Job& job) {
        if (job.batch_key != key || batch.size() >= limits.max_batch)
            return false;
        batch.push_back(std::move(job));
        return true;
    });
    waiting.erase(kept, waiting.end());
    return batch;
}

void Server::Impl::start_child(std::vector<Job> jobs)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        for (const Job& job : jobs)
            refuse_job(job, Error::from_errno("cannot start a delivery process: pipe", errno));
        return;
    }
    Fd report(fds[0]);
    Fd report_end(fds[1]);
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        for (const Job& job : jobs)
            refuse_job(job, Error::from_errno("cannot start a delivery process: fork", err));
        return;
    }
    if (pid == 0) {
        report.reset();
        child_main(jobs, report_end);
    }
    report_end.reset();
    ::fcntl(report.get(), F_SETFL, ::fcntl(report.get(), F_GETFL) | O_NONBLOCK);
    auto child = std::make_unique<Child>();
    child->impl = this;
    child->pid = pid;
    child->jobs = std::move(jobs);
    if (!child->jobs.front().batch_key.empty())
        busy_keys.insert(child->jobs.front().batch_key);
    child->report = std::move(report);
    child->readable = new_event(child->report.get(), EV_READ | EV_PERSIST, on_report, child.get());
    event_add(child->readable.get(), nullptr);
    children.emplace(pid, std::move(child));
}

void Server::Impl::refuse_job(const Job& job, const Error& error)
{
    log::warning("%s: %s", job.plan.queue_id.c_str(), error.message().c_str());
    send_result(job.connection, job.request_id, job.plan.queue_id, defer_planned(job.plan, error.message()));
}

// The child: drops what it inherited from the loop, delivers, reports (one
// frame per job, in order), and exits without running the parent's destructors.
void Server::Impl::child_main(const std::vector<Job>& jobs, const Fd& report)
{
    int status = ex::ok;
    try {
        default_signals();
        close_inherited_descriptors();
        ::umask(077);
        std::vector<std::vector<LeafResult>> results;
        if (jobs.size() == 1) {
            const Job& job = jobs.front();
            MessageSource message = MessageSource::from_fd(job.message, job.content_offset, job.content_length);
            results.push_back(deliver_leaves(job.plan, message, ctx));
        } else {
            std::vector<BatchItem> items;
            for (const Job& job : jobs)
                items.push_back(
                    { &job.plan, MessageSource::from_fd(job.message, job.content_offset, job.content_length) });
            for (LeafResult& result : deliver_batch(items, ctx))
                results.push_back({ std::move(result) });
        }
        std::string frames;
        for (std::size_t i = 0; i < jobs.size(); ++i)
            frames += encode_result(jobs[i].request_id, std::move(results[i]));
        if (!write_all(report, frames))
            status = ex::ioerr;
    } catch (const std::exception& e) {
        log::error("%s: delivery process: %s", jobs.front().plan.queue_id.c_str(), e.what());
        status = ex::software;
    } catch (...) {
        status = ex::software;
    }
    ::_exit(status);
}

// The listener, qmgr's connections, other children's pipes and other
// requests' messages are none of a delivery child's business.
void Server::Impl::close_inherited_descriptors()
{
    listener.reset();
    for (auto& [id, connection] : connections)
        connection->sock.reset();
    for (auto& [pid, child] : children) {
        child->report.reset();
        for (Job& other : child->jobs)
            other.message.reset();
    }
    for (Job& other : waiting)
        other.message.reset();
}

void Server::Impl::read_report(Child& child)
{
    char buffer[16 * 1024];
    for (;;) {
        ssize_t n = ::read(child.report.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            finish_child(child);
            return;
        }
        if (child.bytes.size() + static_cast<std::size_t>(n) > limits::ipc_frame * child.jobs.size())
            child.too_long = true;
        else
            child.bytes.append(buffer, static_cast<std::size_t>(n));
    }
}

// The report is complete: answer qmgr for every job, then start what waits.
void Server::Impl::finish_child(Child& child)
{
    std::vector<std::optional<std::vector<LeafResult>>> reports = read_results(child);
    for (std::size_t i = 0; i < child.jobs.size(); ++i) {
        const Job& job = child.jobs[i];
        const DeliveryPlan& plan = job.plan;
        std::vector<LeafResult> results = plan.answered;
        std::set<std::string> planned;
        for (const PlannedLeaf& leaf : plan.to_deliver)
            planned.insert(leaf.key);
        if (reports[i]) {
            for (LeafResult& result : *reports[i])
                if (planned.erase(result.key) == 1)
                    results.push_back(std::move(result));
        }
        for (const PlannedLeaf& leaf : plan.to_deliver) {
            if (!planned.contains(leaf.key))
                continue;
            results.push_back({ leaf.key, LeafOutcome::deferred, reason_no_result });
            log_outcome(
                plan.queue_id, describe_leaf(leaf.leaf, plan.envelope.original_rcpt), "-", results.back());
        }
        send_result(job.connection, job.request_id, plan.queue_id, std::move(results));
    }

    forget_child(child);
    start_waiting_jobs();
    stop_if_idle();
}

void Server::Impl::forget_child(Child& child)
{
    event_del(child.readable.get());
    if (!child.jobs.front().batch_key.empty())
        busy_keys.erase(child.jobs.front().batch_key);
    auto found = children.find(child.pid);
    dead_children.push_back(std::move(found->second));
    children.erase(found);
}

// After an exception while handling a child's report: its request cannot
// be answered properly, so its connection is closed (qmgr then defers
// every leaf it waits for) rather than left waiting for an answer.
void Server::Impl::abandon_child(Child& child)
{
    if (!children.contains(child.pid))
        return;
    std::set<std::uint64_t> connections_of_child;
    for (const Job& job : child.jobs)
        connections_of_child.insert(job.connection);
    forget_child(child);
    for (std::uint64_t connection : connections_of_child)
        close_connection(connection, "internal error while reading a delivery report");
    start_waiting_jobs();
    stop_if_idle();
}

void Server::Impl::reap_children()
{
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            log::warning("delivery process %ld %s", static_cast<long>(pid), describe_exit(status).c_str());
}

} // namespace mm::local
