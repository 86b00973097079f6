// SPDX-License-Identifier: GPL-2.0-or-later
// local-deliver's delivery children (server.hh): one forked child per
// request delivers its leaves (leaf_delivery.hh) and writes one
// delivery_result frame to a pipe, which the loop reads without blocking.
// A child's report is checked like any frame; a child that dies without one
// leaves its leaves deferred. Linked by local-deliver.
#include "server_impl.hh"

#include "leaf_delivery.hh"

#include "mm/fs.hh"
#include "mm/ipc.hh"
#include "mm/limits.hh"
#include "mm/log.hh"
#include "mm/sysexits.hh"

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

// The results in a child's report, if it is a well-formed delivery_result
// for this request.
std::optional<std::vector<LeafResult>> read_results(const Server::Impl::Child& child)
{
    if (child.too_long || child.bytes.empty())
        return std::nullopt;
    Result<ipc::FrameReader> reader = ipc::FrameReader::parse(child.bytes);
    if (!reader || reader->request_id() != child.job.request_id)
        return std::nullopt;
    Result<std::vector<LeafResult>> results = protocol::decode_delivery_result(*reader);
    if (!results)
        return std::nullopt;
    return std::move(results).value();
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
    while (!stopping && children.size() < limits.max_children && !waiting.empty()) {
        Job job = std::move(waiting.front());
        waiting.pop_front();
        start_child(std::move(job));
    }
}

void Server::Impl::start_child(Job job)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        refuse_job(job, Error::from_errno("cannot start a delivery process: pipe", errno));
        return;
    }
    Fd report(fds[0]);
    Fd report_end(fds[1]);
    pid_t pid = ::fork();
    if (pid < 0) {
        refuse_job(job, Error::from_errno("cannot start a delivery process: fork", errno));
        return;
    }
    if (pid == 0) {
        report.reset();
        child_main(job, report_end);
    }
    report_end.reset();
    ::fcntl(report.get(), F_SETFL, ::fcntl(report.get(), F_GETFL) | O_NONBLOCK);
    auto child = std::make_unique<Child>();
    child->impl = this;
    child->pid = pid;
    child->job = std::move(job);
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

// The child: drops what it inherited from the loop, delivers, reports, and
// exits without running the parent's destructors.
void Server::Impl::child_main(const Job& job, const Fd& report)
{
    int status = ex::ok;
    try {
        default_signals();
        close_inherited_descriptors();
        ::umask(077);
        MessageSource message = MessageSource::from_fd(job.message, job.content_offset, job.content_length);
        std::vector<LeafResult> results = deliver_leaves(job.plan, message, ctx);
        if (!write_all(report, encode_result(job.request_id, std::move(results))))
            status = ex::ioerr;
    } catch (const std::exception& e) {
        log::error("%s: delivery process: %s", job.plan.queue_id.c_str(), e.what());
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
    for (auto& [pid, child] : children)
        child->report.reset();
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
        if (child.bytes.size() + static_cast<std::size_t>(n) > limits::ipc_frame)
            child.too_long = true;
        else
            child.bytes.append(buffer, static_cast<std::size_t>(n));
    }
}

// The report is complete: answer qmgr, then start what waits.
void Server::Impl::finish_child(Child& child)
{
    const DeliveryPlan& plan = child.job.plan;
    std::vector<LeafResult> results = plan.answered;
    std::set<std::string> planned;
    for (const PlannedLeaf& leaf : plan.to_deliver)
        planned.insert(leaf.key);
    if (std::optional<std::vector<LeafResult>> reported = read_results(child)) {
        for (LeafResult& result : *reported)
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
    send_result(child.job.connection, child.job.request_id, plan.queue_id, std::move(results));

    forget_child(child);
    start_waiting_jobs();
    stop_if_idle();
}

void Server::Impl::forget_child(Child& child)
{
    event_del(child.readable.get());
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
    std::uint64_t connection = child.job.connection;
    forget_child(child);
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
