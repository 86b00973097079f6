// SPDX-License-Identifier: GPL-2.0-or-later
// Log sinks. Linked by every process. Text may contain peer data; it is made
// printable before it reaches a file, syslog or a terminal.
#include "mm/log.hh"

#include "mm/limits.hh"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

namespace mm::log {

namespace {

enum class Target { stderr_stream, file, syslog };

struct State {
    Target target = Target::stderr_stream;
    Fd file;
    std::string ident = "masqmail";
    int debug_level = 0;
};

State& state()
{
    static State s;
    return s;
}

int syslog_priority(Priority p)
{
    switch (p) {
    case Priority::error: return LOG_ERR;
    case Priority::warning: return LOG_WARNING;
    case Priority::notice: return LOG_NOTICE;
    case Priority::info: return LOG_INFO;
    case Priority::debug: return LOG_DEBUG;
    }
    return LOG_INFO;
}

std::string printable(const char* text)
{
    std::string out;
    for (const char* p = text; *p != '\0'; ++p) {
        auto c = static_cast<unsigned char>(*p);
        out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
    }
    return out;
}

[[gnu::format(printf, 2, 0)]] void vwrite(Priority p, const char* fmt, va_list ap)
{
    char buf[limits::log_line];
    int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < 0)
        return;
    std::string text = printable(buf);
    State& s = state();
    int saved_errno = errno;
    switch (s.target) {
    case Target::syslog:
        ::syslog(syslog_priority(p), "%s", text.c_str());
        break;
    case Target::file: {
        std::string line = format_line(p, ::getpid(), static_cast<long>(std::time(nullptr)), text);
        // One write per line on an O_APPEND descriptor: lines of concurrent
        // processes never interleave. A failing log never stops mail.
        (void)!::write(s.file.get(), line.data(), line.size());
        break;
    }
    case Target::stderr_stream: {
        std::string line = s.ident + ": " + text + "\n";
        (void)!::write(STDERR_FILENO, line.data(), line.size());
        break;
    }
    }
    errno = saved_errno;
}

} // namespace

const char* priority_name(Priority p)
{
    switch (p) {
    case Priority::error: return "error";
    case Priority::warning: return "warning";
    case Priority::notice: return "notice";
    case Priority::info: return "info";
    case Priority::debug: return "debug";
    }
    return "info";
}

void set_ident(std::string ident) { state().ident = std::move(ident); }

Result<void> open_file(const std::string& log_dir)
{
    std::string path = log_dir + "/masqmail.log";
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return Error::from_errno("open log file " + path, errno);
    State& s = state();
    s.file.reset(fd);
    s.target = Target::file;
    return ok();
}

int file_descriptor()
{
    const State& s = state();
    return s.target == Target::file ? s.file.get() : -1;
}

void use_syslog()
{
    State& s = state();
    ::openlog(s.ident.c_str(), LOG_PID | LOG_NDELAY, LOG_MAIL);
    s.target = Target::syslog;
}

void use_stderr() { state().target = Target::stderr_stream; }

Result<void> configure(const Setup& setup)
{
    set_debug_level(setup.debug_level);
    if (setup.use_syslog) {
        use_syslog();
        return ok();
    }
    if (setup.log_dir.empty()) {
        use_stderr();
        return ok();
    }
    return open_file(setup.log_dir);
}

void set_debug_level(int level) { state().debug_level = level; }
int debug_level() { return state().debug_level; }

void write(Priority p, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite(p, fmt, ap);
    va_end(ap);
}

void debug(int level, const char* fmt, ...)
{
    if (level > state().debug_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vwrite(Priority::debug, fmt, ap);
    va_end(ap);
}

#define MM_LOG_DEFINE(name, prio)                                                            \
    void name(const char* fmt, ...)                                                          \
    {                                                                                        \
        va_list ap;                                                                          \
        va_start(ap, fmt);                                                                   \
        vwrite(prio, fmt, ap);                                                               \
        va_end(ap);                                                                          \
    }
MM_LOG_DEFINE(error, Priority::error)
MM_LOG_DEFINE(warning, Priority::warning)
MM_LOG_DEFINE(notice, Priority::notice)
MM_LOG_DEFINE(info, Priority::info)
#undef MM_LOG_DEFINE

std::string format_line(Priority p, long pid, long epoch_seconds, const std::string& text)
{
    std::time_t t = static_cast<std::time_t>(epoch_seconds);
    struct tm tm{};
    ::localtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    char head[96];
    std::snprintf(head, sizeof head, "%s [%ld] %s: ", stamp, pid, priority_name(p));
    std::string line = head;
    line += printable(text.c_str());
    line += '\n';
    return line;
}

} // namespace mm::log
