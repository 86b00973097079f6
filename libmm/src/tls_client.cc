// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP client's TLS (mm/tls_client.hh).
#include "mm/tls_client.hh"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>

namespace mm::smtp {

namespace {

std::string openssl_errors()
{
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char text[256];
        ERR_error_string_n(e, text, sizeof text);
        if (!out.empty())
            out += "; ";
        out += text;
    }
    return out.empty() ? "unknown TLS error" : out;
}

std::string hex(const Fingerprint& f)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::uint8_t b : f) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

bool is_ip_literal(const std::string& name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

} // namespace

std::optional<Fingerprint> parse_fingerprint(std::string_view text)
{
    if (text.size() > 7 && (text.substr(0, 7) == "sha256:" || text.substr(0, 7) == "SHA256:"))
        text.remove_prefix(7);
    Fingerprint f {};
    std::size_t digits = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == ':') {
            if (digits == 0 || digits % 2 != 0 || i + 1 == text.size() || text[i + 1] == ':')
                return std::nullopt;
            continue;
        }
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0 || digits >= 64)
            return std::nullopt;
        f[digits / 2] = static_cast<std::uint8_t>(f[digits / 2] | (digits % 2 == 0 ? v << 4 : v));
        ++digits;
    }
    if (digits != 64)
        return std::nullopt;
    return f;
}

TlsTransport::TlsTransport(int fd, TlsClientOptions options) : SocketTransport(fd), options_(std::move(options)) {}

TlsTransport::~TlsTransport()
{
    if (ssl_ != nullptr) {
        if (active_)
            (void)SSL_shutdown(ssl_); // one close_notify, not waiting for the answer
        SSL_free(ssl_);
    }
    if (ctx_ != nullptr)
        SSL_CTX_free(ctx_);
}

std::string TlsTransport::description() const
{
    if (!tls_active())
        return {};
    return std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_);
}

Result<void> TlsTransport::wait(int ssl_result, std::chrono::steady_clock::time_point deadline, const char* what)
{
    int e = SSL_get_error(ssl_, ssl_result);
    short events = 0;
    if (e == SSL_ERROR_WANT_READ)
        events = POLLIN;
    else if (e == SSL_ERROR_WANT_WRITE)
        events = POLLOUT;
    else if (e == SSL_ERROR_ZERO_RETURN)
        return Error::temporary(std::string(what) + ": the server closed the TLS connection");
    else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return Error::temporary(std::string(what) + ": " + (errno != 0 ? std::strerror(errno) : "connection closed"));
    else
        return Error::temporary(std::string(what) + ": " + openssl_errors());
    return wait_ready(fd_, events, deadline, what);
}

Result<void> TlsTransport::start_tls(std::chrono::milliseconds timeout)
{
    if (ssl_ != nullptr)
        return Error::temporary("TLS was started already");
    // OpenSSL reads and writes the socket itself: it must never block past
    // the deadline.
    int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) != 0)
        return Error::from_errno("fcntl", errno);
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr)
        return Error::temporary("TLS: " + openssl_errors());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx_, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    const bool chain = options_.verify && !options_.fingerprint;
    if (chain) {
        int loaded = options_.ca_file ? SSL_CTX_load_verify_locations(ctx_, options_.ca_file->c_str(), nullptr)
                                      : SSL_CTX_set_default_verify_paths(ctx_);
        if (loaded != 1)
            return Error::temporary("TLS: cannot load the CA certificates"
                + (options_.ca_file ? " from " + *options_.ca_file : std::string()) + ": " + openssl_errors());
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    }
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1)
        return Error::temporary("TLS: " + openssl_errors());
    const std::string& name = options_.server_name;
    if (!name.empty() && !is_ip_literal(name))
        // SSL_set_tlsext_host_name() without its C cast.
        (void)SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str()));
    if (chain && !name.empty()) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int set = is_ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                                      : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
        if (set != 1)
            return Error::temporary("TLS: cannot check the name " + name);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_connect(ssl_);
        if (r == 1)
            break;
        long verified = SSL_get_verify_result(ssl_);
        if (chain && verified != X509_V_OK)
            return Error::temporary("TLS: the certificate of " + name + " does not verify: "
                + X509_verify_cert_error_string(verified));
        if (auto w = wait(r, deadline, "TLS handshake"); !w)
            return w;
    }
    if (options_.fingerprint) {
        X509* cert = SSL_get1_peer_certificate(ssl_);
        if (cert == nullptr)
            return Error::temporary("TLS: " + name + " sent no certificate");
        Fingerprint got {};
        unsigned int length = 0;
        int digested = X509_digest(cert, EVP_sha256(), got.data(), &length);
        X509_free(cert);
        if (digested != 1 || length != got.size())
            return Error::temporary("TLS: cannot take the certificate's fingerprint");
        if (got != *options_.fingerprint)
            return Error::temporary("TLS: the certificate of " + name + " has fingerprint sha256:" + hex(got)
                + ", not the pinned sha256:" + hex(*options_.fingerprint));
    }
    active_ = true;
    return ok();
}

Result<std::size_t> TlsTransport::read(char* buffer, std::size_t size, std::chrono::milliseconds timeout)
{
    if (!tls_active())
        return SocketTransport::read(buffer, size, timeout);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_read(ssl_, buffer, static_cast<int>(std::min<std::size_t>(size, 1 << 20)));
        if (r > 0)
            return static_cast<std::size_t>(r);
        if (SSL_get_error(ssl_, r) == SSL_ERROR_ZERO_RETURN)
            return std::size_t { 0 };
        if (auto w = wait(r, deadline, "reading from the server"); !w)
            return std::move(w).error();
    }
}

Result<void> TlsTransport::write(std::string_view data, std::chrono::milliseconds timeout)
{
    if (!tls_active())
        return SocketTransport::write(data, timeout);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!data.empty()) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_write(ssl_, data.data(), static_cast<int>(std::min<std::size_t>(data.size(), 1 << 20)));
        if (r > 0) {
            data.remove_prefix(static_cast<std::size_t>(r));
            continue;
        }
        if (auto w = wait(r, deadline, "sending to the server"); !w)
            return w;
    }
    return ok();
}

} // namespace mm::smtp
