// SPDX-License-Identifier: GPL-2.0-or-later
// Program deliveries: argv expansion after splitting, a fixed environment,
// posix_spawn without a shell, the message fed through a pipe while the
// program's output is read back, and the exit status judged. Runs as the
// recipient; addresses and message content are untrusted and only ever
// become single argv words or stdin bytes. Linked by local-deliver.
#include "pipe.hh"

#include "mm/fs.hh"
#include "mm/limits.hh"
#include "mm/spawn.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace mm::local {

namespace {

using Clock = std::chrono::steady_clock;

// The expansion variables of masqmail §4.4; `uid` is masqmail's name for
// the message id.
std::string variable(std::string_view name, const LocalEnvelope& e)
{
    if (name == "uid")
        return e.message_id;
    if (name == "received_host")
        return e.received_host;
    if (name == "ident")
        return e.ident;
    if (name == "return_path")
        return e.return_path.str();
    if (name == "return_path_local")
        return e.return_path.local_part();
    if (name == "return_path_domain")
        return e.return_path.domain();
    if (name == "rcpt")
        return e.rcpt.str();
    if (name == "rcpt_local")
        return e.rcpt.local_part();
    if (name == "rcpt_domain")
        return e.rcpt.domain();
    return {};
}

bool is_name_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

Result<std::string> expand_word(std::string_view word, const LocalEnvelope& envelope)
{
    std::string out;
    std::size_t i = 0;
    while (i < word.size()) {
        char c = word[i++];
        if (c == '\\' && i < word.size()) {
            out += word[i++];
        } else if (c == '$' && i < word.size() && word[i] == '{') {
            std::size_t close = word.find('}', i);
            if (close == std::string_view::npos)
                return Error::permanent("unterminated ${ in command argument");
            out += variable(word.substr(i + 1, close - i - 1), envelope);
            i = close + 1;
        } else if (c == '$' && i < word.size() && is_name_byte(word[i])) {
            std::size_t start = i;
            while (i < word.size() && is_name_byte(word[i]))
                ++i;
            out += variable(word.substr(start, i - start), envelope);
        } else {
            out += c;
        }
        if (out.size() > limits::command_arg)
            return Error::permanent("command argument longer than " + std::to_string(limits::command_arg)
                + " bytes after expansion");
    }
    return out;
}

// "`/usr/bin/prog`", for reasons.
std::string shown(const PipeCommand& command)
{
    return "`" + command.argv.front().substr(0, 200) + "`";
}

} // namespace

Result<PipeCommand> literal_command(const std::vector<std::string>& words)
{
    if (words.empty() || words.front().empty() || words.front().front() != '/')
        return Error::permanent("command must start with an absolute path");
    if (words.size() > limits::command_args)
        return Error::permanent("command has more than " + std::to_string(limits::command_args) + " words");
    for (const std::string& w : words)
        if (w.size() > limits::command_arg || w.find('\0') != std::string::npos)
            return Error::permanent("command argument too long or holding a NUL byte");
    return PipeCommand { words };
}

Result<PipeCommand> expand_command(const std::vector<std::string>& words, const LocalEnvelope& envelope)
{
    Result<PipeCommand> cmd = literal_command(words);
    if (!cmd)
        return cmd;
    // The program itself is never chosen by message data.
    for (std::size_t i = 1; i < cmd->argv.size(); ++i) {
        Result<std::string> w = expand_word(cmd->argv[i], envelope);
        if (!w)
            return std::move(w).error();
        cmd->argv[i] = std::move(w).value();
    }
    return cmd;
}

std::vector<std::string> pipe_environment(const LocalEnvelope& e)
{
    const std::string sender = e.return_path.str();
    return {
        "RETURN_PATH=" + sender,
        "SENDER=" + sender,
        "SENDER_DOMAIN=" + e.return_path.domain(),
        "SENDER_LOCAL=" + e.return_path.local_part(),
        "RECEIVED_HOST=" + e.received_host,
        "DOMAIN=" + e.original_rcpt.domain(),
        "LOCAL_PART=" + e.original_rcpt.local_part(),
        "USER=" + e.original_rcpt.local_part(),
        "LOGNAME=" + e.original_rcpt.local_part(),
        "MESSAGE_ID=" + e.message_id,
        "QUALIFY_DOMAIN=" + e.qualify_domain,
    };
}

namespace {

struct Child {
    pid_t pid = -1;
    Fd pidfd; // readable once the child exits; invalid when pidfd_open is missing
    Fd input; // our end of its stdin
    Fd output; // our end of its stdout and stderr
};

// A pipe whose ends are both above 2, so that dup2 onto 0-2 in the child
// never overwrites one of them.
Result<std::pair<Fd, Fd>> make_pipe()
{
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        return Error::from_errno("pipe", errno);
    Fd ends[2] { Fd(p[0]), Fd(p[1]) };
    for (Fd& end : ends)
        if (end.get() <= 2) {
            int moved = ::fcntl(end.get(), F_DUPFD_CLOEXEC, 3);
            if (moved < 0)
                return Error::from_errno("fcntl", errno);
            end.reset(moved);
        }
    return std::pair { std::move(ends[0]), std::move(ends[1]) };
}

Result<Child> start(const PipeCommand& command, const std::vector<std::string>& env)
{
    Result<std::pair<Fd, Fd>> in = make_pipe();
    if (!in)
        return std::move(in).error();
    Result<std::pair<Fd, Fd>> out = make_pipe();
    if (!out)
        return std::move(out).error();
    Child child;
    int err = spawn_process(command.argv, env, in->first.get(), out->second.get(), out->second.get(), child.pid);
    if (err == EAGAIN || err == ENOMEM)
        return Error::from_errno("cannot start " + shown(command), err);
    if (err != 0)
        return Error::permanent("cannot run " + shown(command) + ": " + std::strerror(err));
    // Debian 12's <sys/pidfd.h> lacks extern "C"; the system call has no such trouble.
    child.pidfd = Fd(static_cast<int>(::syscall(SYS_pidfd_open, child.pid, 0)));
    child.input = std::move(in->second);
    child.output = std::move(out->first);
    ::fcntl(child.input.get(), F_SETFL, O_NONBLOCK);
    ::fcntl(child.output.get(), F_SETFL, O_NONBLOCK);
    return child;
}

// While alive, SIGPIPE is blocked so that writing to a program that stopped
// reading gives EPIPE; a SIGPIPE raised meanwhile is consumed, not delivered.
class SigpipeBlock {
public:
    SigpipeBlock()
    {
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        ::sigprocmask(SIG_BLOCK, &pipe, &old_);
        sigset_t pending;
        ::sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    }
    ~SigpipeBlock()
    {
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        struct timespec zero {};
        if (!was_pending_)
            while (::sigtimedwait(&pipe, nullptr, &zero) == SIGPIPE) {
            }
        ::sigprocmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeBlock(const SigpipeBlock&) = delete;
    SigpipeBlock& operator=(const SigpipeBlock&) = delete;

private:
    sigset_t old_ {};
    bool was_pending_ = false;
};

// Feeding stdin and collecting output, until the child exits.
class Exchange {
public:
    Exchange(Child& child, MessageRenderer& renderer, PipeOutcome& outcome, std::size_t limit)
        : child_(child), renderer_(renderer), outcome_(outcome), limit_(limit)
    {
    }
    // The wait status, or nothing at the deadline (the child still runs).
    Result<std::optional<int>> run(Clock::time_point deadline);

private:
    Result<void> feed();
    void collect();

    Child& child_;
    MessageRenderer& renderer_;
    PipeOutcome& outcome_;
    std::size_t limit_;
    std::string pending_;
    std::size_t sent_ = 0;
};

Result<void> Exchange::feed()
{
    for (;;) {
        if (sent_ == pending_.size()) {
            pending_.clear();
            sent_ = 0;
            Result<bool> more = renderer_.next(pending_);
            if (!more)
                return std::move(more).error();
            if (!*more) {
                child_.input.reset(); // EOF for the program
                return ok();
            }
            continue;
        }
        ssize_t n = ::write(child_.input.get(), pending_.data() + sent_, pending_.size() - sent_);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return ok();
        if (n < 0) { // EPIPE: it stopped reading; its exit status decides
            child_.input.reset();
            return ok();
        }
        sent_ += static_cast<std::size_t>(n);
    }
}

void Exchange::collect()
{
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(child_.output.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return; // EAGAIN: nothing more for now
        if (n == 0) {
            child_.output.reset();
            return;
        }
        std::size_t room = limit_ - std::min(limit_, outcome_.output.size());
        std::size_t got = static_cast<std::size_t>(n);
        outcome_.output.append(buf, std::min(room, got));
        if (got > room)
            outcome_.output_truncated = true;
    }
}

Result<std::optional<int>> Exchange::run(Clock::time_point deadline)
{
    for (;;) {
        int status = 0;
        if (::waitpid(child_.pid, &status, WNOHANG) == child_.pid) {
            if (child_.output.valid())
                collect(); // what it wrote before exiting; descendants are not waited for
            return std::optional<int>(status);
        }
        Clock::time_point now = Clock::now();
        if (now >= deadline)
            return std::optional<int>();
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
        pollfd fds[3] {};
        nfds_t n = 0;
        if (child_.input.valid())
            fds[n++] = { child_.input.get(), POLLOUT, 0 };
        if (child_.output.valid())
            fds[n++] = { child_.output.get(), POLLIN, 0 };
        if (child_.pidfd.valid())
            fds[n++] = { child_.pidfd.get(), POLLIN, 0 };
        else
            left = std::min<decltype(left)>(left, 20);
        if (::poll(fds, n, static_cast<int>(std::min<decltype(left)>(left, 60000))) < 0 && errno != EINTR)
            return Error::from_errno("poll", errno);
        if (child_.input.valid())
            if (auto r = feed(); !r)
                return std::move(r).error();
        if (child_.output.valid())
            collect();
    }
}

// SIGTERM to the program's process group, SIGKILL after the grace time.
void stop(const Child& child, std::chrono::milliseconds grace)
{
    ::kill(-child.pid, SIGTERM);
    Clock::time_point until = Clock::now() + grace;
    int status = 0;
    while (Clock::now() < until) {
        if (::waitpid(child.pid, &status, WNOHANG) == child.pid) {
            ::kill(-child.pid, SIGKILL); // descendants left in the group
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(-child.pid, SIGKILL);
    while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
    }
}

// The first line of the program's output, for the reason.
std::string output_hint(const std::string& output)
{
    std::string_view line(output);
    line = line.substr(0, std::min(line.find('\n'), std::size_t { 200 }));
    return line.empty() ? std::string() : ": " + std::string(line);
}

DeliveryStatus judge(const PipeCommand& command, int status, const std::string& output)
{
    if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        if (code == ex::ok)
            return DeliveryStatus::ok();
        std::string name = ex::name(code);
        std::string why = shown(command) + " returned " + std::to_string(code)
            + (name == "unknown" ? std::string() : " (" + name + ")") + output_hint(output);
        return code == ex::tempfail ? DeliveryStatus::defer(why) : DeliveryStatus::fail(why);
    }
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    const char* abbrev = ::sigabbrev_np(sig);
    return DeliveryStatus::fail(shown(command) + " killed by signal " + std::to_string(sig)
        + (abbrev != nullptr ? std::string(" (SIG") + abbrev + ")" : std::string()) + output_hint(output));
}

} // namespace

PipeOutcome run_pipe(const PipeCommand& command, const MessageSource& message, const LocalEnvelope& envelope,
    const PipeOptions& options)
{
    PipeOutcome outcome;
    if (command.argv.empty() || command.argv.front().empty() || command.argv.front().front() != '/') {
        outcome.status = DeliveryStatus::fail("command must start with an absolute path");
        return outcome;
    }
    Clock::time_point deadline = Clock::now() + options.timeout;
    Result<Child> child = start(command, pipe_environment(envelope));
    if (!child) {
        outcome.status = DeliveryStatus::from_error(child.error());
        return outcome;
    }
    std::time_t now = options.now != 0 ? options.now : std::time(nullptr);
    MessageRenderer renderer(message, envelope, { options.from_line, options.from_hack, false }, now);
    Result<std::optional<int>> status = [&] {
        SigpipeBlock no_sigpipe;
        return Exchange(*child, renderer, outcome, options.output_limit).run(deadline);
    }();
    if (status && status->has_value()) {
        outcome.status = judge(command, **status, outcome.output);
        return outcome;
    }
    stop(*child, options.kill_grace);
    if (!status)
        outcome.status = DeliveryStatus::defer(shown(command) + ": " + status.error().message());
    else
        outcome.status = DeliveryStatus::defer(shown(command) + " timed out after "
            + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options.timeout).count())
            + " s and was killed");
    return outcome;
}

} // namespace mm::local
