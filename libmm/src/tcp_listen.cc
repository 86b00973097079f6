// SPDX-License-Identifier: GPL-2.0-or-later
// Listening TCP sockets (mm/tcp_listen.hh).
#include "mm/tcp_listen.hh"

#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace mm::tcp {

namespace {

constexpr int backlog = 1024; // masqmail's was 1; the kernel caps it at somaxconn

Result<Fd> listen_one(const addrinfo& ai)
{
    Fd fd(::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
    if (!fd.valid())
        return Error::from_errno("socket", errno);
    int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (ai.ai_family == AF_INET6)
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (::bind(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0)
        return Error::from_errno("bind", errno);
    if (::listen(fd.get(), backlog) != 0)
        return Error::from_errno("listen", errno);
    return fd;
}

} // namespace

Result<std::vector<Fd>> listen(const std::string& host, std::uint16_t port)
{
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG;
    addrinfo* list = nullptr;
    std::string service = std::to_string(port);
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list);
    if (rc != 0)
        return Error::temporary("cannot resolve " + host + ": " + ::gai_strerror(rc));
    std::vector<Fd> socks;
    std::string last_error;
    for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
        auto fd = listen_one(*ai);
        if (fd)
            socks.push_back(std::move(fd).value());
        else
            last_error = fd.error().message();
    }
    ::freeaddrinfo(list);
    if (socks.empty())
        return Error::temporary(last_error.empty() ? "no address" : last_error);
    return socks;
}

} // namespace mm::tcp
