// SPDX-License-Identifier: GPL-2.0-or-later
// One connection's work for remote-deliver (mm/remote_send.hh).
#include "mm/remote_send.hh"

#include "mm/mx_resolve.hh"
#include "mm/remote_route.hh"
#include "mm/route_rewrite.hh"
#include "mm/spawn.hh"
#include "mm/tls_client.hh"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace mm {

namespace {

constexpr auto dns_timeout = std::chrono::seconds(10);

std::string address_text(const sockaddr* sa, std::uint16_t port)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET)
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, host, sizeof host);
    else if (sa->sa_family == AF_INET6)
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, host, sizeof host);
    std::string h = host;
    return (sa->sa_family == AF_INET6 ? "[" + h + "]" : h) + ":" + std::to_string(port);
}

smtp::MessageOutcome all_of(const SendItem& item, const smtp::RecipientOutcome& outcome)
{
    smtp::MessageOutcome out;
    out.recipients.assign(item.recipients.size(), outcome);
    out.connection_usable = false;
    return out;
}

// do_correct_helo (masqmail §3.3): the name our end of the connection
// resolves to (hosts file or DNS), or "[address]" when none; nullopt for a
// socket that has no IP address (a wrapper's socketpair).
std::optional<std::string> name_of_our_end(int fd)
{
    sockaddr_storage ss {};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0
        || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return std::nullopt;
    char host[NI_MAXHOST];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, nullptr, 0, NI_NAMEREQD) == 0) {
        std::string name = host;
        bool clean = !name.empty() && name.size() <= 255
            && name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == std::string::npos;
        if (clean)
            return name;
    }
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0)
        return std::nullopt;
    return std::string(ss.ss_family == AF_INET6 ? "[IPv6:" : "[") + host + "]";
}

} // namespace

Result<Fd> connect_host(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout,
    std::string* used)
{
    addrinfo hints {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* list = nullptr;
    std::string service = std::to_string(port);
    int r = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
    if (r != 0)
        return Error::temporary("cannot resolve " + host + ": " + ::gai_strerror(r)).status_as("4.4.3");
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> owner(list, ::freeaddrinfo);
    // RFC 8305 §4: the families alternate, the first as getaddrinfo sorted them.
    std::vector<const addrinfo*> first, second;
    for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next)
        (ai->ai_family == list->ai_family ? first : second).push_back(ai);
    std::vector<const addrinfo*> order;
    for (std::size_t k = 0; k < std::max(first.size(), second.size()); ++k) {
        if (k < first.size())
            order.push_back(first[k]);
        if (k < second.size())
            order.push_back(second[k]);
    }

    // Happy eyeballs (RFC 8305 §5): the next address is tried when the
    // earlier ones have not connected within 250 ms, the earlier attempts
    // going on; the first to connect wins. Each attempt has `timeout`.
    using Clock = std::chrono::steady_clock;
    constexpr auto attempt_delay = std::chrono::milliseconds(250);
    struct Attempt {
        Fd fd;
        const addrinfo* ai;
        Clock::time_point deadline;
    };
    std::vector<Attempt> pending;
    std::string failures;
    auto failed = [&](const addrinfo* ai, const std::string& why) {
        failures += (failures.empty() ? "" : "; ") + address_text(ai->ai_addr, port) + ": " + why;
    };
    std::size_t next = 0;
    auto next_start = Clock::now();
    for (;;) {
        auto now = Clock::now();
        if (next < order.size() && (pending.empty() || now >= next_start)) {
            const addrinfo* ai = order[next++];
            Fd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
            if (!fd.valid()) {
                failed(ai, std::strerror(errno));
            } else if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) {
                if (used != nullptr)
                    *used = address_text(ai->ai_addr, port);
                return fd;
            } else if (errno != EINPROGRESS) {
                failed(ai, std::string("connect: ") + std::strerror(errno));
            } else {
                pending.push_back({ std::move(fd), ai, now + timeout });
                next_start = now + attempt_delay;
            }
            continue;
        }
        if (pending.empty())
            break;
        auto wake = pending.front().deadline;
        for (const Attempt& a : pending)
            wake = std::min(wake, a.deadline);
        if (next < order.size())
            wake = std::min(wake, next_start);
        std::vector<pollfd> polls;
        for (const Attempt& a : pending)
            polls.push_back({ a.fd.get(), POLLOUT, 0 });
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count();
        int n = ::poll(polls.data(), polls.size(), static_cast<int>(std::max<long long>(0, wait)));
        if (n < 0 && errno != EINTR)
            return Error::from_errno("poll", errno);
        now = Clock::now();
        for (std::size_t k = polls.size(); k-- > 0;) {
            Attempt& a = pending[k];
            if (polls[k].revents != 0) {
                int err = 0;
                socklen_t len = sizeof err;
                if (::getsockopt(a.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                    err = errno;
                if (err == 0) {
                    if (used != nullptr)
                        *used = address_text(a.ai->ai_addr, port);
                    return std::move(a.fd);
                }
                failed(a.ai, std::string("connect: ") + std::strerror(err));
            } else if (now >= a.deadline) {
                failed(a.ai, "connect: timed out");
            } else {
                continue;
            }
            pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(k));
            if (pending.empty())
                next_start = now; // nothing left running: the next address at once
        }
    }
    return Error::temporary("cannot connect to " + host + " (" + failures + ")").status_as("4.4.1");
}

Result<Fd> spawn_wrapper(const config::Command& wrapper, pid_t* child)
{
    if (wrapper.argv.empty() || wrapper.argv.front().empty() || wrapper.argv.front()[0] != '/')
        return Error::temporary("the wrapper is not an absolute command");
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return Error::from_errno("socketpair", errno);
    Fd ours(sv[0]), theirs(sv[1]);
    Fd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    if (!null.valid())
        return Error::from_errno("/dev/null", errno);
    pid_t pid = -1;
    int r = spawn_process(wrapper.argv, { "PATH=/usr/local/bin:/usr/bin:/bin" }, theirs.get(), theirs.get(), null.get(), pid);
    if (r != 0)
        return Error::temporary("cannot start the wrapper " + wrapper.argv.front() + ": " + std::strerror(r));
    if (child != nullptr)
        *child = pid;
    return ours;
}

RouteConnection::RouteConnection(const config::RouteConfig& route, const config::MainConfig& main,
    std::string next_hop, std::chrono::milliseconds connect_timeout)
    : route_(route), main_(main), next_hop_(std::move(next_hop)), connect_timeout_(connect_timeout)
{
}

RouteConnection::~RouteConnection()
{
    close();
}

void RouteConnection::drop()
{
    session_.reset();
    transport_.reset();
    sock_ = Fd();
    if (wrapper_pid_ > 0) {
        ::kill(wrapper_pid_, SIGTERM);
        while (::waitpid(wrapper_pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
        wrapper_pid_ = -1;
    }
}

void RouteConnection::close()
{
    if (session_)
        session_->quit();
    drop();
}

Result<void> RouteConnection::open()
{
    if (route_.wrapper) {
        auto sock = spawn_wrapper(*route_.wrapper, &wrapper_pid_);
        server_ = "wrapper " + route_.wrapper->text;
        if (!sock)
            return connect_error(sock.error());
        return start_session(std::move(sock).value(), "localhost", 25, false);
    }
    if (!route_.mail_host)
        return open_direct();
    std::vector<Target> hosts { { route_.mail_host->host, route_.mail_host->port, route_.mail_host->host } };
    for (const config::HostPort& h : route_.more_mail_hosts)
        hosts.push_back({ h.host, h.port, h.host });
    return open_first(hosts, false);
}

// Direct delivery: the next hop is the recipient domain; its mail
// exchangers in RFC 5321 order, each of their addresses in turn.
Result<void> RouteConnection::open_direct()
{
    server_ = next_hop_;
    auto exchangers = resolve_mail_exchangers(next_hop_, route_.resolve_list, main_.dns_server, dns_timeout);
    if (!exchangers)
        return connect_error(exchangers.error()); // a null MX or a malformed domain stays permanent
    std::vector<Target> targets;
    for (const MailExchanger& mx : *exchangers)
        for (const std::string& address : mx.addresses)
            targets.push_back({ address, route_.smtp_port, mx.host });
    if (targets.empty())
        return connect_error(Error::temporary("no mail exchanger of " + next_hop_ + " has an address").status_as("4.4.3"));
    return open_first(targets, true);
}

// The first target that can be reached and takes the session (greeting,
// EHLO, TLS and login as the route says); the next when one cannot be
// reached or refuses. All failing: the last one's kind, every reason.
Result<void> RouteConnection::open_first(const std::vector<Target>& targets, bool direct)
{
    std::string failures;
    std::optional<Error> last;
    for (const Target& t : targets) {
        std::string used;
        auto sock = connect_host(t.connect, t.port, connect_timeout_, &used);
        server_ = t.name + "[" + (used.empty() ? t.connect + ":" + std::to_string(t.port) : used) + "]";
        Result<void> opened = sock ? start_session(std::move(sock).value(), t.name, t.port, direct)
                                   : Result<void>(connect_error(sock.error()));
        if (opened || targets.size() == 1)
            return opened;
        failures += (failures.empty() ? "" : "; ") + server_ + ": " + opened.error().message();
        last = opened.error();
        drop();
    }
    return last->is_temporary() ? Error::temporary(failures).status_as("4.4.1") : Error::permanent(failures);
}

// connect_error_fail (masqmail): errors of reaching the server fail at once.
Error RouteConnection::connect_error(const Error& e) const
{
    if (route_.connect_error_fail && e.is_temporary())
        return Error::permanent(e.message()).status_as("5.4.4");
    return e;
}

Result<void> RouteConnection::start_session(Fd sock, const std::string& host, std::uint16_t port, bool direct)
{
    sock_ = std::move(sock);
    auto tls = tls_options(route_, host);
    if (!tls)
        return std::move(tls).error();
    // Opportunistic TLS to a domain's mail exchangers encrypts without
    // checking the certificate (RFC 7435; Postfix's "may"): MX host names
    // are not authenticated by DNS anyway. A route that sets tls checks.
    if (direct && route_.tls == config::TlsMode::opportunistic && !route_.tls_fingerprint)
        tls->verify = false;
    transport_.emplace(sock_.get(), *tls);
    if (implicit_tls(route_))
        if (auto r = transport_->start_tls(std::chrono::minutes(5)); !r)
            return Error::temporary(host + ": TLS: " + r.error().message()).status_as("4.7.0");
    smtp::ClientOptions options = client_options(route_, main_, host + ":" + std::to_string(port));
    if (route_.do_correct_helo)
        if (std::optional<std::string> name = name_of_our_end(sock_.get()))
            options.helo_name = *name;
    auto credentials = route_credentials(route_);
    if (!credentials)
        return std::move(credentials).error();
    options.credentials = *credentials;
    session_.emplace(*transport_, options);
    if (auto opened = session_->open(); !opened)
        return opened;
    tls_ = transport_->description();
    auth_ = session_->authenticated_with();
    return {};
}

smtp::MessageOutcome RouteConnection::send(const SendItem& item)
{
    if (failure_)
        return all_of(item, smtp::outcome_of(*failure_));
    if (!session_) {
        if (auto opened = open(); !opened) {
            // Every later message of this connection gets the same answer
            // at once: a dead smarthost is not dialled once per message.
            failure_ = opened.error();
            close();
            return all_of(item, smtp::outcome_of(*failure_));
        }
        ++connections_;
    }
    auto copy = rewrite_for_route(route_, main_, item.content, item.return_path);
    if (!copy) {
        smtp::MessageOutcome out = all_of(item, smtp::outcome_of(copy.error()));
        out.connection_usable = true;
        return out;
    }
    smtp::OutgoingMessage m;
    m.return_path = copy->return_path.is_null() ? "" : copy->return_path.str();
    for (const Address& r : item.recipients)
        m.recipients.push_back(r.str());
    m.size = smtp::DataEncoder::wire_size(copy->message);
    m.eight_bit_mime = item.eight_bit_mime;
    const std::string& text = copy->message;
    std::size_t at = 0;
    m.next_chunk = [&text, &at](std::string& out) -> Result<bool> {
        std::size_t n = std::min<std::size_t>(64 * 1024, text.size() - at);
        out.append(text, at, n);
        at += n;
        return at < text.size();
    };
    smtp::MessageOutcome outcome = session_->send(m);
    if (!outcome.connection_usable)
        drop(); // the next message dials again
    return outcome;
}

SendReport send_via_route(const config::RouteConfig& route, const config::MainConfig& main,
    const std::vector<SendItem>& items, std::chrono::milliseconds connect_timeout)
{
    SendReport report;
    RouteConnection connection(route, main, "", connect_timeout);
    bool usable = true;
    for (const SendItem& item : items) {
        if (!usable) {
            report.outcomes.push_back(all_of(item, { smtp::RecipientOutcome::Kind::deferred,
                "not sent: the connection was lost before this message", "4.4.2" }));
            continue;
        }
        report.outcomes.push_back(connection.send(item));
        usable = report.outcomes.back().connection_usable;
    }
    report.server = connection.server();
    report.tls = connection.tls();
    report.auth = connection.auth();
    return report;
}

} // namespace mm
