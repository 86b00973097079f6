// SPDX-License-Identifier: GPL-2.0-or-later
// The supervisor (supervisor.hh): sockets, pid file, children, signals.
#include "supervisor.hh"

#include "mm/config.hh"
#include "mm/fs.hh"
#include "mm/ipc.hh"
#include "mm/log.hh"
#include "mm/paths.hh"
#include "mm/priv.hh"
#include "mm/spool.hh"
#include "mm/tcp_listen.hh"
#include "mm/sysexits.hh"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <event2/event.h>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace mm::supervisor {

namespace {

constexpr int stop_grace_seconds = 10;

struct SocketSpec {
    const char* path;       // under spool_dir
    bool is_public;         // 0666 for every user; else 0660
    const char* owner;      // the serving daemon's user in a system install
    const char* client;     // the group of this user may connect (private sockets)
};

struct Child {
    const char* name;
    std::vector<int> sockets; // indexes into the socket table, passed as fd 3, 4, ...
    pid_t pid = 0;
    std::time_t started = 0;
    int failures = 0; // quick deaths in a row: restart backoff
    int status = 0;   // last exit status
};

// qmgr reaches private/enqueue as its owner; smtp-listener through the group.
const SocketSpec socket_table[] = {
    {"private/enqueue", false, daemon::queue_user, daemon::smtp_user},
    {"public/submit", true, daemon::queue_user, daemon::queue_user},
    {"public/pickup", true, daemon::queue_user, daemon::queue_user},
    {"private/qmgr", false, daemon::queue_user, daemon::queue_user},
    {"public/qmgr-ctl", true, daemon::queue_user, daemon::queue_user},
    {"private/local", false, daemon::local_user, daemon::queue_user},
    {"private/route", false, daemon::route_user, daemon::queue_user},
    {"private/remote", false, daemon::remote_user, daemon::queue_user},
};

class Supervisor {
public:
    explicit Supervisor(const daemon::Started& s) : started_(s), cfg_(s.config) {}

    int run()
    {
        if (!started_.private_instance)
            if (auto prepared = prepare_system_dirs(); !prepared)
                return fail(prepared.error());
        if (auto spool = Spool::open(cfg_.spool_dir, started_.private_instance); !spool)
            return fail(spool.error().with_context("cannot open the spool"));
        if (auto locked = lock_instance(); !locked)
            return fail(locked.error());
        for (const SocketSpec& spec : socket_table) {
            auto sock = make_socket(spec);
            if (!sock)
                return fail(sock.error());
            sockets_.push_back(std::move(sock).value());
        }
        children_ = {
            Child{"enqueue", {0, 1, 2}},
            Child{"local-deliver", {5}},
            Child{"route-selector", {6}},
            Child{"remote-deliver", {7}},
            Child{"qmgr", {3, 4}},
        };
        if (!started_.options.once)
            listen_tcp(); // a queue run without daemons takes no SMTP
        int ready_fd = -1;
        if (!started_.options.foreground && !started_.options.once)
            ready_fd = detach();
        base_ = event_base_new();
        std::vector<event*> events;
        for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) {
            event* e = evsignal_new(base_, sig, &Supervisor::on_signal, this);
            event_add(e, nullptr);
            events.push_back(e);
        }
        // Only now: whoever reads the pid file may signal us at once, and a
        // SIGTERM before the handlers above would kill us without stopping
        // the daemons.
        if (!started_.options.once)
            write_pid();
        for (Child& c : children_)
            spawn(c);
        if (ready_fd >= 0) {
            (void)!::write(ready_fd, "1", 1);
            ::close(ready_fd);
        }
        log::info("masqmail started%s", started_.options.once ? " for one queue run" : "");
        event_base_dispatch(base_);
        for (event* e : events)
            event_free(e);
        if (kill_timer_ != nullptr)
            event_free(kill_timer_);
        event_base_free(base_);
        if (!started_.options.once)
            ::unlink(pid_path().c_str());
        log::info("masqmail stopped");
        return exit_status_;
    }

private:
    int fail(const Error& e)
    {
        log::error("%s", e.message().c_str());
        std::fprintf(stderr, "masqmail: %s\n", e.message().c_str());
        return e.exit_code();
    }

    // A system install needs no set-up step: the spool gets its owners and
    // modes here (mended if an admin changed them), and the log and pid
    // folders are made when missing (their parents must exist).
    Result<void> prepare_system_dirs()
    {
        auto queue = priv::lookup_user(daemon::queue_user);
        auto drop = priv::lookup_group(daemon::drop_group);
        if (!queue || !drop)
            return Error::permanent(std::string("missing system user ") + daemon::queue_user + " or group "
                + daemon::drop_group + " (see packaging/sysusers.d)").exit_as(ex::nouser);
        if (auto r = Spool::prepare_system(cfg_.spool_dir, { queue->uid, queue->gid, *drop }); !r)
            return std::move(r).error().with_context("cannot prepare the spool");
        for (const std::string* dir : { &cfg_.log_dir, &cfg_.pid_dir })
            if (!dir->empty() && ::mkdir(dir->c_str(), dir == &cfg_.log_dir ? 0750 : 0755) != 0 && errno != EEXIST)
                return Error::from_errno("mkdir " + *dir, errno).exit_as(ex::cantcreat);
        return {};
    }

    std::string pid_path() const { return cfg_.pid_dir + "/masqmail.pid"; }
    std::string lock_path() const { return cfg_.pid_dir + "/masqmail.lock"; }

    // One supervisor per instance: it holds a flock on pid_dir/masqmail.lock
    // (never removed, so that no one locks a file already unlinked) while
    // it runs; a second -bd is refused, a queue run without a daemon
    // (--once) waits for the lock instead and writes no pid file.
    Result<void> lock_instance()
    {
        lock_fd_ = Fd(::open(lock_path().c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!lock_fd_.valid())
            return Error::from_errno("cannot open " + lock_path(), errno).exit_as(ex::cantcreat);
        int how = started_.options.once ? LOCK_EX : LOCK_EX | LOCK_NB;
        while (::flock(lock_fd_.get(), how) != 0) {
            if (errno == EINTR)
                continue;
            if (errno == EWOULDBLOCK)
                return Error::temporary("masqmail is already running for this configuration" + running_pid());
            return Error::from_errno("cannot lock " + lock_path(), errno);
        }
        return {};
    }

    // " (pid N)" from the pid file of the running supervisor, if it says.
    std::string running_pid() const
    {
        Fd fd(::open(pid_path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
        char buf[32] = {};
        if (!fd.valid() || ::read(fd.get(), buf, sizeof buf - 1) <= 0)
            return {};
        std::string text(buf, strcspn(buf, "\n"));
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
            return {};
        return " (pid " + text + ")";
    }

    // Written under the lock: replaced whole (a new file renamed over the
    // old one), so a reader never sees it half-written.
    void write_pid()
    {
        std::string text = std::to_string(::getpid()) + "\n";
        Result<Dir> dir = open_dir(cfg_.pid_dir);
        Result<void> written = dir ? replace_file_at(*dir, "masqmail.pid", text, 0644) : Result<void>(dir.error());
        if (!written)
            log::warning("cannot write %s: %s", pid_path().c_str(), written.error().message().c_str());
    }

    Result<Fd> make_socket(const SocketSpec& spec)
    {
        std::string path = cfg_.spool_dir + "/" + spec.path;
        mode_t mode = spec.is_public ? 0666 : (started_.private_instance ? 0600 : 0660);
        auto sock = ipc::listen_seqpacket(path, mode, ipc::IoMode::nonblocking);
        if (!sock)
            return std::move(sock).error().with_context(path);
        if (!started_.private_instance) {
            auto owner = priv::lookup_user(spec.owner);
            auto client = priv::lookup_user(spec.client);
            if (!owner || !client)
                return Error::permanent(std::string("missing system user ") + spec.owner + " or " +
                                        spec.client + " (see packaging/sysusers.d)").exit_as(ex::nouser);
            if (::chown(path.c_str(), owner->uid, client->gid) != 0)
                return Error::from_errno("chown " + path, errno);
        }
        return sock;
    }

    // One listening TCP socket per listen_addresses entry (each address a
    // name resolves to), bound here because port 25 needs root; passed to
    // smtp-listener. As masqmail did, an address that cannot be bound is
    // logged and left out; with none, no SMTP listener runs.
    void listen_tcp()
    {
        std::vector<int> indexes;
        for (const config::HostPort& hp : cfg_.listen_addresses) {
            auto bound = tcp::listen(hp.host, hp.port);
            if (!bound) {
                log::error("cannot listen on %s: %s", hp.str().c_str(), bound.error().message().c_str());
                continue;
            }
            for (Fd& fd : *bound) {
                indexes.push_back(static_cast<int>(sockets_.size()));
                sockets_.push_back(std::move(fd));
            }
            log::info("listening on interface %s", hp.str().c_str());
        }
        if (!indexes.empty())
            children_.push_back(Child{"smtp-listener", indexes});
        else if (!cfg_.listen_addresses.empty())
            log::error("no SMTP listener: none of listen_addresses could be bound");
    }

    // Forks into the background; the parent exits once the children run.
    int detach()
    {
        int pipefd[2];
        if (::pipe2(pipefd, O_CLOEXEC) != 0)
            return -1;
        pid_t pid = ::fork();
        if (pid < 0)
            return -1;
        if (pid > 0) {
            ::close(pipefd[1]);
            char c = 0;
            ssize_t n;
            do
                n = ::read(pipefd[0], &c, 1);
            while (n < 0 && errno == EINTR);
            ::_exit(n == 1 ? ex::ok : ex::oserr);
        }
        ::close(pipefd[0]);
        ::setsid();
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            ::dup2(null, STDIN_FILENO);
            ::dup2(null, STDOUT_FILENO);
            ::dup2(null, STDERR_FILENO);
            ::close(null);
        }
        return pipefd[1];
    }

    void spawn(Child& c)
    {
        std::string path = paths::sibling_daemon_path(c.name);
        std::vector<std::string> args = {c.name, "-C", started_.options.config_path};
        if (std::string_view(c.name) == "qmgr") {
            if (started_.options.once)
                args.push_back("--once");
            if (started_.options.connection)
                args.insert(args.end(), {"--connection", *started_.options.connection});
            else if (started_.options.queue_interval > 0)
                args.insert(args.end(), {"-q", std::to_string(started_.options.queue_interval)});
        }
        std::vector<int> fds;
        for (int index : c.sockets)
            fds.push_back(sockets_[static_cast<std::size_t>(index)].get());
        pid_t pid = ::fork();
        if (pid < 0) {
            log::error("cannot start %s: %s", c.name, std::strerror(errno));
            return;
        }
        if (pid == 0)
            exec_child(path, args, fds);
        c.pid = pid;
        c.started = std::time(nullptr);
        log::debug(1, "started %s, pid %ld", c.name, static_cast<long>(pid));
    }

    [[noreturn]] static void exec_child(const std::string& path, const std::vector<std::string>& args,
        const std::vector<int>& fds)
    {
        // Move the sockets above the target range first, then into 3, 4, ...
        std::vector<int> high;
        for (int fd : fds)
            high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 64));
        for (std::size_t i = 0; i < high.size(); ++i)
            ::dup2(high[i], daemon::first_listen_fd + static_cast<int>(i)); // dup2 clears close-on-exec
        ::close_range(static_cast<unsigned>(daemon::first_listen_fd) + static_cast<unsigned>(fds.size()), ~0u, 0);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE})
            ::signal(sig, SIG_DFL);
        std::vector<char*> argv;
        for (const std::string& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        char* envp[] = {nullptr};
        ::execve(path.c_str(), argv.data(), envp);
        std::fprintf(stderr, "masqmail: cannot run %s: %s\n", path.c_str(), std::strerror(errno));
        ::_exit(ex::oserr);
    }

    static void on_signal(evutil_socket_t sig, short, void* self)
    {
        auto* s = static_cast<Supervisor*>(self);
        switch (sig) {
        case SIGCHLD: s->reap(); break;
        case SIGHUP: s->reload(); break;
        default: s->stop(); break;
        }
    }

    void reap()
    {
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            auto it = std::find_if(children_.begin(), children_.end(), [&](const Child& c) { return c.pid == pid; });
            if (it == children_.end())
                continue;
            it->pid = 0;
            it->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            child_exited(*it, status);
        }
        if (stopping_ && std::all_of(children_.begin(), children_.end(), [](const Child& c) { return c.pid == 0; }))
            event_base_loopexit(base_, nullptr);
    }

    void child_exited(Child& c, int status)
    {
        if (stopping_)
            return;
        if (started_.options.once && std::string_view(c.name) == "qmgr") {
            exit_status_ = c.status;
            stop();
            return;
        }
        if (restarting_ > 0) {
            --restarting_;
            spawn(c);
            return;
        }
        bool quick = std::time(nullptr) - c.started < 10;
        c.failures = quick ? c.failures + 1 : 0;
        if (WIFSIGNALED(status))
            log::error("%s died of signal %d; restarting", c.name, WTERMSIG(status));
        else
            log::error("%s exited with status %d; restarting", c.name, WEXITSTATUS(status));
        // Back off when a daemon dies at once again and again (bad install).
        int delay = c.failures == 0 ? 0 : std::min(60, 1 << std::min(c.failures, 6));
        restart_later(c, delay);
    }

    struct Restart {
        Supervisor* self;
        Child* child;
        event* ev;
    };

    void restart_later(Child& c, int seconds)
    {
        auto* r = new Restart{this, &c, nullptr};
        r->ev = evtimer_new(base_, &Supervisor::on_restart, r);
        timeval tv{seconds, 0};
        evtimer_add(r->ev, &tv);
    }

    static void on_restart(evutil_socket_t, short, void* arg)
    {
        auto* r = static_cast<Restart*>(arg);
        if (!r->self->stopping_ && r->child->pid == 0)
            r->self->spawn(*r->child);
        event_free(r->ev);
        delete r;
    }

    void reload()
    {
        config::Diagnostics diag;
        auto cfg = config::read_main_config(started_.options.config_path, diag);
        if (!cfg || diag.has_errors()) {
            log::error("SIGHUP: %s has errors; keeping the running configuration",
                started_.options.config_path.c_str());
            return;
        }
        log::info("SIGHUP: restarting the daemons with the new configuration");
        for (Child& c : children_)
            if (c.pid > 0 && ::kill(c.pid, SIGTERM) == 0)
                ++restarting_;
    }

    void stop()
    {
        if (stopping_)
            return;
        stopping_ = true;
        log::info("masqmail stopping");
        bool any = false;
        for (Child& c : children_)
            if (c.pid > 0) {
                ::kill(c.pid, SIGTERM);
                any = true;
            }
        if (!any) {
            event_base_loopexit(base_, nullptr);
            return;
        }
        kill_timer_ = evtimer_new(base_, &Supervisor::on_kill_timer, this);
        timeval tv{stop_grace_seconds, 0};
        evtimer_add(kill_timer_, &tv);
    }

    static void on_kill_timer(evutil_socket_t, short, void* self)
    {
        auto* s = static_cast<Supervisor*>(self);
        for (Child& c : s->children_)
            if (c.pid > 0) {
                log::warning("%s did not stop in time; killing it", c.name);
                ::kill(c.pid, SIGKILL);
            }
    }

    const daemon::Started& started_;
    const config::MainConfig& cfg_;
    Fd lock_fd_;
    std::vector<Fd> sockets_;
    std::vector<Child> children_;
    event_base* base_ = nullptr;
    event* kill_timer_ = nullptr;
    bool stopping_ = false;
    int restarting_ = 0; // daemons stopped by SIGHUP, to start again at once
    int exit_status_ = ex::ok;
};

} // namespace

int run(const daemon::Started& started)
{
    Supervisor s(started);
    return s.run();
}

} // namespace mm::supervisor
