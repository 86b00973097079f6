// SPDX-License-Identifier: GPL-2.0-or-later
// Route choice and online detection (mm/route_select.hh).
#include "mm/route_select.hh"

#include "mm/fd.hh"
#include "mm/spawn.hh"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace mm {

namespace {

using config::AddressGlob;
using config::RouteConfig;

bool any_matches(const std::vector<AddressGlob>& globs, const Address& a, bool caseless)
{
    return std::any_of(globs.begin(), globs.end(), [&](const AddressGlob& g) { return g.matches(a, caseless); });
}

// allow list empty or matching, deny list not matching.
bool passes(const std::vector<AddressGlob>& allowed, const std::vector<AddressGlob>& denied, const Address& a,
    bool caseless)
{
    return (allowed.empty() || any_matches(allowed, a, caseless)) && !any_matches(denied, a, caseless);
}

// Why the whole message stays off this route, or "".
std::string message_refusal(const RouteConfig& r, const MessageFacts& m, bool caseless)
{
    if (!passes(r.allowed_senders, r.denied_senders, m.sender, caseless))
        return "the sender <" + m.sender.str() + "> is not allowed on this route";
    if (!r.allowed_from_hdrs.empty() || !r.denied_from_hdrs.empty()) {
        if (m.from_header_unparsable)
            return "the From: header does not parse, and this route filters on it";
        if (m.from_header && !passes(r.allowed_from_hdrs, r.denied_from_hdrs, *m.from_header, caseless))
            return "the From: address " + m.from_header->str() + " is not allowed on this route";
    }
    return {};
}

// masqmail 0.3's local_net_route took only the recipients of local_nets.
void limit_to_local_nets(const config::MainConfig& main, RouteConfig& route)
{
    if (main.local_nets.empty() || !route.allowed_recipients.empty())
        return;
    if (std::find(main.local_net_routes.begin(), main.local_net_routes.end(), route.file)
        != main.local_net_routes.end())
        route.allowed_recipients = main.local_nets;
}

} // namespace

RoutePlan plan_routes(const config::MainConfig& main, const std::optional<std::string>& connection,
    config::Diagnostics& diag)
{
    RoutePlan plan;
    plan.connection = connection;
    auto add = [&](const std::string& path) {
        std::size_t errors = diag.error_count();
        if (auto route = config::read_route_config(path, diag); route && diag.error_count() == errors) {
            limit_to_local_nets(main, *route);
            plan.routes.push_back(std::move(*route));
        } else
            plan.unreadable.push_back(path);
    };
    for (const std::string& path : main.permanent_routes)
        add(path);
    if (connection) {
        auto it = main.query_routes.find(*connection);
        if (it == main.query_routes.end())
            plan.unknown_connection = true;
        else
            for (const std::string& path : it->second)
                add(path);
    }
    return plan;
}

std::vector<RouteOffer> offer_routes(const std::vector<config::RouteConfig>& routes, const MessageFacts& message,
    const std::vector<Address>& recipients, bool caseless_local)
{
    std::vector<RouteOffer> offers;
    std::vector<bool> claimed(recipients.size(), false);
    for (const RouteConfig& route : routes) {
        if (!message_refusal(route, message, caseless_local).empty())
            continue;
        RouteOffer offer { &route, {} };
        for (std::size_t i = 0; i < recipients.size(); ++i)
            if (!claimed[i] && passes(route.allowed_recipients, route.denied_recipients, recipients[i], caseless_local))
                offer.recipients.push_back(i);
        if (offer.recipients.empty())
            continue;
        if (route.last_route)
            for (std::size_t i : offer.recipients)
                claimed[i] = true;
        offers.push_back(std::move(offer));
    }
    return offers;
}

std::string route_refusal(const config::RouteConfig& route, const MessageFacts& message, const Address& recipient,
    bool caseless_local)
{
    if (std::string why = message_refusal(route, message, caseless_local); !why.empty())
        return why;
    if (!passes(route.allowed_recipients, route.denied_recipients, recipient, caseless_local))
        return "the recipient <" + recipient.str() + "> is not allowed on this route";
    return {};
}

std::optional<std::string> query_online(const config::Command& query, std::chrono::milliseconds timeout, std::string* why)
{
    std::optional<std::string> name = first_output_line(query, timeout, why);
    if (!name && why != nullptr)
        *why += ": offline";
    return name;
}

std::optional<std::string> first_output_line(
    const config::Command& query, std::chrono::milliseconds timeout, std::string* why)
{
    auto offline = [&](std::string reason) -> std::optional<std::string> {
        if (why != nullptr)
            *why = std::move(reason);
        return std::nullopt;
    };
    if (query.argv.empty() || query.argv.front().empty() || query.argv.front()[0] != '/')
        return offline("the command is not an absolute path");
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0)
        return offline(std::string("pipe: ") + std::strerror(errno));
    Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!null.valid())
        return offline(std::string("/dev/null: ") + std::strerror(errno));
    pid_t pid = -1;
    int spawned = spawn_process(query.argv, { "PATH=/usr/local/bin:/usr/bin:/bin" }, null.get(), out[1], null.get(), pid);
    ::close(out[1]);
    if (spawned != 0) {
        ::close(out[0]);
        return offline("cannot run " + query.argv.front() + ": " + std::strerror(spawned));
    }
    std::string output;
    bool timed_out = false;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p { out[0], POLLIN, 0 };
        int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        char buf[1024];
        ssize_t got = ::read(out[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (output.size() < 4096)
            output.append(buf, static_cast<std::size_t>(std::min<ssize_t>(got, 4096)));
    }
    ::close(out[0]);
    if (timed_out)
        ::kill(-pid, SIGKILL), ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out)
        return offline(query.argv.front() + " did not answer within "
            + std::to_string(timeout.count() / 1000) + " s");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return offline(query.argv.front() + " failed (" + (WIFEXITED(status)
            ? "exit " + std::to_string(WEXITSTATUS(status)) : "signal " + std::to_string(WTERMSIG(status))) + ")");
    std::string line = output.substr(0, output.find('\n'));
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (!line.empty() && space(line.back()))
        line.pop_back();
    std::size_t first = 0;
    while (first < line.size() && space(line[first]))
        ++first;
    line.erase(0, first);
    if (line.empty())
        return offline(query.argv.front() + " printed nothing");
    for (char c : line)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            return offline(query.argv.front() + " printed a name with control characters");
    return line;
}

} // namespace mm
