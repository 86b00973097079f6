// SPDX-License-Identifier: GPL-2.0-or-later
// Where direct delivery to a domain goes (mm/mx_resolve.hh). Queries go out
// through glibc's resolver on a private state, so dns_server never touches
// the process's global one; answers come back through parse_dns_answer.
#include "mm/mx_resolve.hh"

#include "mm/address.hh"
#include "mm/cursor.hh"
#include "mm/limits.hh"

#include <algorithm>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <netdb.h>
#include <netinet/in.h>
#include <random>
#include <resolv.h>
#include <sys/socket.h>

namespace mm {

namespace {

Error dns_trouble(const std::string& message)
{
    return Error::temporary(message).status_as("4.4.3");
}

std::string join(const std::vector<std::string>& parts, const char* separator)
{
    std::string out;
    for (const std::string& p : parts)
        out += (out.empty() ? "" : separator) + p;
    return out;
}

void note(std::vector<std::string>& problems, std::string problem)
{
    if (std::find(problems.begin(), problems.end(), problem) == problems.end())
        problems.push_back(std::move(problem));
}

bool is_ipv6(const std::string& address)
{
    return address.find(':') != std::string::npos;
}

void add_address(MailExchanger& mx, const std::string& address)
{
    if (address.empty() || mx.addresses.size() >= limits::mx_host_addresses
        || std::find(mx.addresses.begin(), mx.addresses.end(), address) != mx.addresses.end())
        return;
    mx.addresses.push_back(address);
}

// IPv6 first, each family in the order it came.
void order_addresses(MailExchanger& mx)
{
    std::stable_partition(mx.addresses.begin(), mx.addresses.end(), is_ipv6);
}

const char* type_name(int qtype)
{
    return qtype == dns_type_mx ? "MX" : qtype == dns_type_aaaa ? "AAAA" : "A";
}

std::string rcode_text(int rcode)
{
    switch (rcode) {
    case dns_rcode_servfail: return "the name server failed (SERVFAIL)";
    case dns_rcode_nxdomain: return "no such domain (NXDOMAIN)";
    case 5: return "the name server refused (REFUSED)";
    default: return "DNS error " + std::to_string(rcode);
    }
}

// ---- the name server: glibc's resolver on a private state ----

// "struct": glibc also has a function named __res_state.
using Resolver = struct __res_state;

struct ResStateCloser {
    void operator()(Resolver* state) const
    {
        if ((state->options & RES_INIT) != 0)
            ::res_nclose(state); // frees the name server addresses too
        delete state;
    }
};
using ResState = std::unique_ptr<Resolver, ResStateCloser>;

// Replaces the state's name servers (from /etc/resolv.conf) with `server`.
// glibc reads an IPv4 server from nsaddr_list; an IPv6 one from
// _u._ext.nsaddrs (malloc'ed, freed by res_nclose) when nsaddr_list's
// family is 0. res_nclose frees only the first nscount of those, so the
// others are freed here.
Result<void> use_name_server(Resolver& state, const config::DnsServer& server)
{
    for (int i = 1; i < MAXNS; ++i) {
        std::free(state._u._ext.nsaddrs[i]);
        state._u._ext.nsaddrs[i] = nullptr;
    }
    if (server.family == AF_INET) {
        sockaddr_in sa {};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(server.port);
        if (::inet_pton(AF_INET, server.address.c_str(), &sa.sin_addr) != 1)
            return Error::internal("dns_server: not an IPv4 address: " + server.address);
        state.nsaddr_list[0] = sa;
    } else {
        auto* sa6 = static_cast<sockaddr_in6*>(std::malloc(sizeof(sockaddr_in6)));
        if (sa6 == nullptr)
            return Error::from_errno("malloc", ENOMEM);
        *sa6 = sockaddr_in6 {};
        sa6->sin6_family = AF_INET6;
        sa6->sin6_port = htons(server.port);
        if (::inet_pton(AF_INET6, server.address.c_str(), &sa6->sin6_addr) != 1) {
            std::free(sa6);
            return Error::internal("dns_server: not an IPv6 address: " + server.address);
        }
        std::free(state._u._ext.nsaddrs[0]);
        state._u._ext.nsaddrs[0] = sa6;
        state.nsaddr_list[0] = sockaddr_in {}; // family 0: glibc takes nsaddrs[0]
    }
    state._u._ext.nssocks[0] = -1;
    state.nscount = 1;
    state._u._ext.nscount = 0; // glibc rebuilds its copy of the list at the next query
    return ok();
}

class NameServer {
public:
    static Result<NameServer> open(const std::optional<config::DnsServer>& server, std::chrono::milliseconds timeout)
    {
        ResState state(new Resolver {});
        if (::res_ninit(state.get()) != 0)
            return dns_trouble("cannot read the resolver configuration (/etc/resolv.conf)");
        // One try per name server, each waiting `timeout` (glibc: whole seconds).
        auto seconds = std::clamp<std::chrono::milliseconds::rep>((timeout.count() + 999) / 1000, 1, 300);
        state->retrans = static_cast<int>(seconds);
        state->retry = 1;
        if (server)
            if (Result<void> r = use_name_server(*state, *server); !r)
                return r.error();
        return NameServer(std::move(state), server ? "the name server " + server->str() : "the name servers");
    }

    // The answer to one question; no answer, a garbled or truncated one, or
    // one about another name is an error. Reply codes are the caller's.
    Result<DnsAnswer> query(const std::string& name, int qtype)
    {
        std::string what = name + " " + type_name(qtype) + ": ";
        unsigned char question[NS_PACKETSZ];
        int length = ::res_nmkquery(state_.get(), ns_o_query, name.c_str(), ns_c_in, qtype, nullptr, 0, nullptr,
            question, sizeof question);
        if (length <= 0)
            return dns_trouble(what + "cannot make a DNS query of it");
        std::vector<unsigned char> buffer(limits::dns_message);
        errno = 0;
        int n = ::res_nsend(state_.get(), question, length, buffer.data(), static_cast<int>(buffer.size()));
        if (n < 0)
            return dns_trouble(what + "no answer from " + who_
                + (errno == ECONNREFUSED ? " (connection refused)" : " (none in time, or SERVFAIL or REFUSED)"));
        std::string_view bytes(reinterpret_cast<const char*>(buffer.data()),
            std::min(static_cast<std::size_t>(n), buffer.size()));
        Result<DnsAnswer> answer = parse_dns_answer(bytes, qtype);
        if (!answer)
            return dns_trouble(what + answer.error().message());
        if (answer->truncated)
            return dns_trouble(what + "a truncated DNS answer");
        if (!answer->question.empty() && !equals_nocase(answer->question, name))
            return dns_trouble(what + "a DNS answer about another name");
        return answer;
    }

private:
    NameServer(ResState state, std::string who) : state_(std::move(state)), who_(std::move(who)) {}

    ResState state_;
    std::string who_;
};

// ---- the methods ----

// Adds the host's AAAA and A addresses unless the additional section gave
// some of that family already; trouble is noted, not fatal (another host
// may do).
void add_dns_addresses(MailExchanger& mx, NameServer& ns, std::vector<std::string>& problems)
{
    for (int type : { dns_type_aaaa, dns_type_a }) {
        bool v6 = type == dns_type_aaaa;
        if (std::any_of(mx.addresses.begin(), mx.addresses.end(),
                [v6](const std::string& a) { return is_ipv6(a) == v6; }))
            continue;
        Result<DnsAnswer> answer = ns.query(mx.host, type);
        if (!answer) {
            note(problems, answer.error().message());
            continue;
        }
        if (answer->rcode != dns_rcode_noerror) {
            note(problems, mx.host + " " + type_name(type) + ": " + rcode_text(answer->rcode));
            if (answer->rcode == dns_rcode_nxdomain)
                break; // the name has no records of any type
            continue;
        }
        for (const DnsRecord& r : answer->records)
            add_address(mx, r.data);
    }
    order_addresses(mx);
}

std::uint64_t random_seed()
{
    std::random_device device;
    return static_cast<std::uint64_t>(device()) << 32 | device();
}

Result<std::vector<MailExchanger>> by_dns(const std::string& name, bool mx_lookup, NameServer& ns)
{
    std::vector<MailExchanger> hosts;
    if (mx_lookup) {
        Result<DnsAnswer> answer = ns.query(name, dns_type_mx);
        if (!answer)
            return answer.error();
        if (answer->rcode != dns_rcode_noerror)
            return dns_trouble(name + " MX: " + rcode_text(answer->rcode));
        Result<std::vector<MailExchanger>> listed = mail_exchangers_of(*answer, random_seed());
        if (!listed)
            return listed.error();
        hosts = std::move(listed).value();
        // MX records that all name no usable host never make the domain its own MX.
        if (hosts.empty() && !answer->records.empty())
            return dns_trouble(name + " MX: no MX record names a usable host");
    }
    bool implicit = hosts.empty();
    if (implicit)
        hosts.push_back(MailExchanger { name, 0, {} }); // RFC 5321 §5.1: the domain itself
    if (hosts.size() > limits::mx_hosts)
        hosts.resize(limits::mx_hosts);
    std::vector<std::string> problems;
    for (MailExchanger& mx : hosts)
        add_dns_addresses(mx, ns, problems);
    std::erase_if(hosts, [](const MailExchanger& mx) { return mx.addresses.empty(); });
    if (hosts.empty())
        return dns_trouble(name + ": no address for " + (implicit ? "it" : "its MX hosts")
            + (problems.empty() ? "" : " (" + join(problems, "; ") + ")"));
    return hosts;
}

struct AddrinfoFree {
    void operator()(addrinfo* list) const { ::freeaddrinfo(list); }
};

// getaddrinfo: the hosts file, then whatever nsswitch.conf says.
Result<std::vector<MailExchanger>> by_name(const std::string& host)
{
    addrinfo hints {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* raw = nullptr;
    int r = ::getaddrinfo(host.c_str(), nullptr, &hints, &raw);
    std::unique_ptr<addrinfo, AddrinfoFree> list(raw);
    if (r != 0)
        return dns_trouble("getaddrinfo(" + host + "): " + ::gai_strerror(r));
    MailExchanger mx { host, 0, {} };
    for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
        char text[NI_MAXHOST];
        if (::getnameinfo(ai->ai_addr, ai->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) == 0)
            add_address(mx, text);
    }
    order_addresses(mx);
    if (mx.addresses.empty())
        return dns_trouble("getaddrinfo(" + host + "): no address");
    return std::vector<MailExchanger> { std::move(mx) };
}

// ---- the domain as written ----

struct Destination {
    std::string host; // what to look up
    bool mx_lookup = true; // false for "[host]"
    std::optional<std::string> address; // a domain literal's address
};

Error bad_destination(const std::string& domain)
{
    return Error::permanent("not a valid mail domain: " + domain).status_as("5.1.2");
}

// A host name as DNS may hold it: a valid domain whose last label is not
// all digits (RFC 3696 §2; "192.0.2.1" is a literal missing its brackets).
bool is_host_name(std::string_view name)
{
    std::string_view last = name.substr(name.rfind('.') + 1);
    return !name.empty() && name.front() != '[' && is_valid_domain(name)
        && !std::all_of(last.begin(), last.end(), is_ascii_digit);
}

Result<Destination> destination_of(const std::string& domain)
{
    if (domain.empty() || domain.front() != '[') {
        if (!is_host_name(domain))
            return bad_destination(domain);
        return Destination { domain, true, std::nullopt };
    }
    if (domain.size() < 3 || domain.back() != ']')
        return bad_destination(domain);
    std::string inner = domain.substr(1, domain.size() - 2);
    if (is_valid_domain(domain)) { // "[192.0.2.1]" or "[IPv6:...]"
        bool v6 = inner.size() > 5 && equals_nocase(std::string_view(inner).substr(0, 5), "IPv6:");
        std::string text = v6 ? inner.substr(5) : inner;
        unsigned char bytes[16];
        char normal[INET6_ADDRSTRLEN];
        int family = v6 ? AF_INET6 : AF_INET;
        if (::inet_pton(family, text.c_str(), bytes) != 1
            || ::inet_ntop(family, bytes, normal, sizeof normal) == nullptr)
            return bad_destination(domain);
        return Destination { domain, false, std::string(normal) };
    }
    if (!is_host_name(inner))
        return bad_destination(domain);
    return Destination { inner, false, std::nullopt };
}

} // namespace

Result<std::vector<MailExchanger>> mail_exchangers_of(const DnsAnswer& answer, std::uint64_t seed)
{
    const std::vector<DnsRecord>& records = answer.records;
    if (records.size() == 1 && records.front().type == dns_type_mx && records.front().data == ".")
        return Error::permanent(answer.question + " accepts no mail (null MX, RFC 7505)").status_as("5.1.10");
    std::vector<MailExchanger> hosts;
    for (const DnsRecord& r : records) {
        // A "." among other MX records is a broken null MX: that host is skipped.
        if (r.type != dns_type_mx || !is_host_name(r.data))
            continue;
        auto same = std::find_if(hosts.begin(), hosts.end(),
            [&r](const MailExchanger& mx) { return equals_nocase(mx.host, r.data); });
        if (same != hosts.end())
            same->preference = std::min(same->preference, r.preference);
        else
            hosts.push_back(MailExchanger { r.data, r.preference, {} });
    }
    std::mt19937_64 random(seed);
    std::shuffle(hosts.begin(), hosts.end(), random);
    std::stable_sort(hosts.begin(), hosts.end(),
        [](const MailExchanger& a, const MailExchanger& b) { return a.preference < b.preference; });
    for (MailExchanger& mx : hosts) {
        for (const DnsRecord& r : answer.additional)
            if (equals_nocase(r.name, mx.host))
                add_address(mx, r.data);
        order_addresses(mx);
    }
    return hosts;
}

Result<std::vector<MailExchanger>> resolve_mail_exchangers(const std::string& domain,
    const std::vector<config::ResolveMethod>& methods, const std::optional<config::DnsServer>& server,
    std::chrono::milliseconds timeout)
{
    Result<Destination> destination = destination_of(domain);
    if (!destination)
        return destination.error();
    if (destination->address)
        return std::vector<MailExchanger> { MailExchanger { domain, 0, { *destination->address } } };
    std::vector<std::string> failures;
    std::optional<NameServer> ns;
    for (config::ResolveMethod method : methods) {
        if (method == config::ResolveMethod::dns_mx && !ns) {
            Result<NameServer> opened = NameServer::open(server, timeout);
            if (!opened) {
                failures.push_back(opened.error().message());
                continue;
            }
            ns.emplace(std::move(opened).value());
        }
        Result<std::vector<MailExchanger>> found = method == config::ResolveMethod::dns_mx
            ? by_dns(destination->host, destination->mx_lookup, *ns)
            : by_name(destination->host);
        if (found || found.error().kind() == ErrorKind::permanent)
            return found;
        failures.push_back(found.error().message());
    }
    if (failures.empty())
        failures.emplace_back("no resolve method");
    return dns_trouble("cannot resolve " + domain + ": " + join(failures, "; "));
}

} // namespace mm
