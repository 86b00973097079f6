// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP client's TLS: fingerprints, and handshakes against an OpenSSL
// server on a socketpair with a certificate made by the openssl command:
// chain and name verified, a wrong name or an unknown CA refused, a pin
// instead of the chain, tls_verify = no.
#include "catch.hh"

#include "mm/tls_client.hh"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <openssl/ssl.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace {

struct Certificate {
    std::string dir, cert, key;
    mm::smtp::Fingerprint fingerprint {};
};

// A self-signed certificate for localhost and 127.0.0.1 (its own CA).
const Certificate& certificate()
{
    static Certificate c = [] {
        Certificate made;
        char dir[] = "/tmp/mm-tls-XXXXXX";
        REQUIRE(::mkdtemp(dir) != nullptr);
        made.dir = dir;
        made.cert = made.dir + "/cert.pem";
        made.key = made.dir + "/key.pem";
        std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost"
                          " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "
            + made.key + " -out " + made.cert + " >/dev/null 2>&1";
        REQUIRE(std::system(cmd.c_str()) == 0);
        std::string fp_cmd = "openssl x509 -noout -fingerprint -sha256 -in " + made.cert;
        FILE* p = ::popen(fp_cmd.c_str(), "r");
        REQUIRE(p != nullptr);
        char line[256] {};
        REQUIRE(std::fgets(line, sizeof line, p) != nullptr);
        ::pclose(p);
        std::string text(line);
        auto fp = mm::smtp::parse_fingerprint(text.substr(text.find('=') + 1, 95));
        REQUIRE(fp);
        made.fingerprint = *fp;
        return made;
    }();
    return c;
}

// One TLS server connection on a socketpair: handshakes, reads a line,
// answers it back, and closes.
class Server {
public:
    Server()
    {
        std::signal(SIGPIPE, SIG_IGN); // as in remote-deliver: OpenSSL writes with write(2)
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        client_fd = sv[0];
        server_fd_ = sv[1];
        ctx_ = SSL_CTX_new(TLS_server_method());
        REQUIRE(SSL_CTX_use_certificate_chain_file(ctx_, certificate().cert.c_str()) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey_file(ctx_, certificate().key.c_str(), SSL_FILETYPE_PEM) == 1);
        thread_ = std::thread([this] {
            SSL* ssl = SSL_new(ctx_);
            SSL_set_fd(ssl, server_fd_);
            if (SSL_accept(ssl) == 1) {
                char buf[256];
                int n = SSL_read(ssl, buf, sizeof buf);
                if (n > 0)
                    SSL_write(ssl, buf, n);
                SSL_shutdown(ssl);
            }
            SSL_free(ssl);
            ::shutdown(server_fd_, SHUT_RDWR);
        });
    }
    ~Server()
    {
        ::shutdown(client_fd, SHUT_RDWR);
        thread_.join();
        ::close(client_fd);
        ::close(server_fd_);
        SSL_CTX_free(ctx_);
    }
    int client_fd = -1;

private:
    int server_fd_ = -1;
    SSL_CTX* ctx_ = nullptr;
    std::thread thread_;
};

mm::Result<std::string> echo(mm::smtp::TlsClientOptions options)
{
    Server server;
    mm::smtp::TlsTransport t(server.client_fd, std::move(options));
    if (auto r = t.start_tls(std::chrono::seconds(10)); !r)
        return std::move(r).error();
    REQUIRE(t.tls_active());
    REQUIRE(t.description().starts_with("TLSv1."));
    REQUIRE(t.write("EHLO x\r\n", std::chrono::seconds(10)));
    char buf[64];
    auto n = t.read(buf, sizeof buf, std::chrono::seconds(10));
    REQUIRE(n);
    return std::string(buf, *n);
}

} // namespace

TEST_CASE("fingerprints: 64 hex digits, either case, colons allowed, sha256: prefix")
{
    const std::string hex64 = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    auto f = mm::smtp::parse_fingerprint("sha256:" + hex64);
    REQUIRE(f);
    CHECK((*f)[0] == 0x00);
    CHECK((*f)[1] == 0x11);
    CHECK((*f)[31] == 0xff);
    std::string colons;
    for (std::size_t i = 0; i < hex64.size(); i += 2)
        colons += (i ? ":" : "") + hex64.substr(i, 2);
    CHECK(mm::smtp::parse_fingerprint(colons) == f);
    CHECK(mm::smtp::parse_fingerprint(hex64) == f);
    CHECK_FALSE(mm::smtp::parse_fingerprint(hex64.substr(1)));
    CHECK_FALSE(mm::smtp::parse_fingerprint(hex64 + "0"));
    CHECK_FALSE(mm::smtp::parse_fingerprint("sha256:" + hex64.substr(0, 62) + "zz"));
    CHECK_FALSE(mm::smtp::parse_fingerprint(":" + colons));
    CHECK_FALSE(mm::smtp::parse_fingerprint(colons + ":"));
    CHECK_FALSE(mm::smtp::parse_fingerprint("0" + colons.substr(1, 2) + colons.substr(2)));
    CHECK_FALSE(mm::smtp::parse_fingerprint(""));
}

TEST_CASE("TLS: a certificate that verifies for the name")
{
    auto r = echo({ .server_name = "localhost", .verify = true, .ca_file = certificate().cert, .fingerprint = {} });
    REQUIRE(r);
    CHECK(*r == "EHLO x\r\n");
    r = echo({ .server_name = "127.0.0.1", .verify = true, .ca_file = certificate().cert, .fingerprint = {} });
    CHECK(r);
}

TEST_CASE("TLS: a wrong name, an unknown CA and a wrong pin are refused; a right pin or verify = no pass")
{
    auto wrong_name
        = echo({ .server_name = "mail.example.net", .verify = true, .ca_file = certificate().cert, .fingerprint = {} });
    REQUIRE_FALSE(wrong_name);
    CHECK(wrong_name.error().is_temporary());
    CHECK_THAT(wrong_name.error().message(), Catch::Contains("does not verify"));

    auto unknown_ca = echo({ .server_name = "localhost", .verify = true, .ca_file = std::nullopt, .fingerprint = {} });
    REQUIRE_FALSE(unknown_ca);
    CHECK_THAT(unknown_ca.error().message(), Catch::Contains("does not verify"));

    mm::smtp::Fingerprint other = certificate().fingerprint;
    other[0] ^= 1;
    auto wrong_pin = echo({ .server_name = "mail.example.net", .verify = true, .ca_file = {}, .fingerprint = other });
    REQUIRE_FALSE(wrong_pin);
    CHECK_THAT(wrong_pin.error().message(), Catch::Contains("not the pinned"));

    auto pinned = echo(
        { .server_name = "mail.example.net", .verify = true, .ca_file = {}, .fingerprint = certificate().fingerprint });
    CHECK(pinned);

    auto unchecked = echo({ .server_name = "mail.example.net", .verify = false, .ca_file = {}, .fingerprint = {} });
    CHECK(unchecked);
}
