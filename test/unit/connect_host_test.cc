// SPDX-License-Identifier: GPL-2.0-or-later
// connect_host (mm/remote_send.hh): every address of a name in turn, the
// families alternating, the next started while the earlier still connect
// (RFC 8305), the first connected wins; a host where nothing answers is a
// temporary error naming every address. Loopback only.
#include "catch.hh"

#include "mm/remote_send.hh"

#include <arpa/inet.h>
#include <chrono>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace {

// A listening socket on 127.0.0.1 and a free port; `port` gets its number.
mm::Fd listen_v4(std::uint16_t& port)
{
    mm::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd.valid());
    sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd.get(), 8) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    return fd;
}

} // namespace

TEST_CASE("connect_host: an address literal connects and says where")
{
    std::uint16_t port = 0;
    mm::Fd server = listen_v4(port);
    std::string used;
    auto fd = mm::connect_host("127.0.0.1", port, std::chrono::seconds(5), &used);
    REQUIRE(fd);
    CHECK(used == "127.0.0.1:" + std::to_string(port));
}

TEST_CASE("connect_host: a refused address hands over to the next one (localhost: ::1, then 127.0.0.1)")
{
    std::uint16_t port = 0;
    mm::Fd server = listen_v4(port); // nothing on [::1]:port
    std::string used;
    auto start = std::chrono::steady_clock::now();
    auto fd = mm::connect_host("localhost", port, std::chrono::seconds(5), &used);
    REQUIRE(fd);
    CHECK(used == "127.0.0.1:" + std::to_string(port));
    // A refusal needs no wait for the attempt delay or the timeout.
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));
}

TEST_CASE("connect_host: nothing listening is temporary and names each address tried")
{
    std::uint16_t port = 0;
    {
        mm::Fd server = listen_v4(port);
    } // closed: the port refuses now
    std::string used;
    auto fd = mm::connect_host("127.0.0.1", port, std::chrono::seconds(5), &used);
    REQUIRE_FALSE(fd);
    CHECK(fd.error().is_temporary());
    CHECK(fd.error().message().find("127.0.0.1:" + std::to_string(port) + ": connect: Connection refused")
        != std::string::npos);
    CHECK(used.empty());
}
