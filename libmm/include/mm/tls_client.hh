// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP client's TLS (OpenSSL): a Transport over a connected socket that
// speaks TLS after STARTTLS, or from the first byte (implicit TLS, port
// 465). The server's certificate is verified by default: the chain against
// the system CAs or the route's tls_ca_file, and the host name; a route's
// tls_fingerprint pin replaces the chain check; tls_verify = no turns
// checking off explicitly. OpenSSL writes with write(2): the process must
// ignore SIGPIPE. Linked by remote-deliver.
#pragma once

#include "mm/smtp_client.hh"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace mm::smtp {

using Fingerprint = std::array<std::uint8_t, 32>; // SHA-256 of the certificate's DER form

// "sha256:HEX" or bare HEX: 64 hex digits in either case, colons allowed
// between them.
std::optional<Fingerprint> parse_fingerprint(std::string_view text);

struct TlsClientOptions {
    std::string server_name; // SNI and the name checked: mail_host, or the MX host's name
    bool verify = true;
    std::optional<std::string> ca_file; // unset: the system's CA store
    std::optional<Fingerprint> fingerprint; // set: the certificate must be this one
};

class TlsTransport : public SocketTransport {
public:
    // Borrows the connected socket `fd` (TLS not yet started).
    TlsTransport(int fd, TlsClientOptions options);
    ~TlsTransport() override;
    TlsTransport(const TlsTransport&) = delete;
    TlsTransport& operator=(const TlsTransport&) = delete;

    Result<std::size_t> read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) override;
    Result<void> write(std::string_view data, std::chrono::milliseconds timeout) override;
    // Handshake and verification; a failure says why (the certificate's
    // problem in OpenSSL's words, a pin mismatch with both fingerprints).
    Result<void> start_tls(std::chrono::milliseconds timeout) override;
    bool tls_active() const override { return ssl_ != nullptr && active_; }
    // "TLSv1.3 TLS_AES_256_GCM_SHA384" for the log; "" before TLS.
    std::string description() const;

private:
    Result<void> wait(int ssl_result, std::chrono::steady_clock::time_point deadline, const char* what);

    TlsClientOptions options_;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    bool active_ = false;
};

} // namespace mm::smtp
