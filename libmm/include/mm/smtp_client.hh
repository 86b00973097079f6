// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP client session (masqmail §6.2, RFC 5321, 2920, 3207, 4954): one
// connection to a smarthost or MX host, carrying any number of messages.
// It runs in a remote-deliver worker with blocking I/O bounded by deadlines
// over a Transport (a TCP socket or a wrapper's socketpair, optionally under
// TLS), and reads every reply as hostile. Linked by remote-deliver.
#pragma once

#include "mm/result.hh"
#include "mm/smtp_client_wire.hh"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mm::smtp {

// The byte stream to one server. read() returns 0 at end of stream; both
// fail with a temporary error when their timeout passes.
class Transport {
public:
    virtual ~Transport() = default;
    virtual Result<std::size_t> read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) = 0;
    virtual Result<void> write(std::string_view data, std::chrono::milliseconds timeout) = 0;
    // The TLS handshake over this stream, with the route's verification.
    virtual Result<void> start_tls(std::chrono::milliseconds timeout) = 0;
    virtual bool tls_active() const = 0;
};

// Waits with poll() until `fd` is ready for `events` (POLLIN, POLLOUT), or
// fails with a temporary error naming `what` once `deadline` has passed.
Result<void> wait_ready(int fd, short events, std::chrono::steady_clock::time_point deadline, const char* what);

// A connected stream socket (or a wrapper's socketpair) without TLS; reads
// and writes wait with poll() for at most their timeout. Borrows the fd.
class SocketTransport : public Transport {
public:
    explicit SocketTransport(int fd) : fd_(fd) {}
    Result<std::size_t> read(char* buffer, std::size_t size, std::chrono::milliseconds timeout) override;
    Result<void> write(std::string_view data, std::chrono::milliseconds timeout) override;
    Result<void> start_tls(std::chrono::milliseconds timeout) override;
    bool tls_active() const override { return false; }

protected:
    int fd_;
};

enum class TlsPolicy {
    none,          // never STARTTLS
    opportunistic, // STARTTLS when offered (a route without a tls line)
    required,      // STARTTLS or no mail (tls = starttls); implicit TLS is the Transport's
};

// AUTH mechanisms we speak; xoauth2 and oauthbearer only when the route names them.
enum class AuthMechanism { plain, login, cram_md5, xoauth2, oauthbearer };

struct Credentials {
    std::optional<AuthMechanism> mechanism; // unset: the best the server offers
    std::string login;
    std::string secret; // the password, or the OAuth2 access token
};

struct ClientOptions {
    std::string helo_name;
    std::string server_name; // for messages and logs ("smtp.example.net:587")
    bool instant_helo = false; // send EHLO without waiting for the greeting
    bool pipelining = true; // use PIPELINING when offered (do_pipelining)
    TlsPolicy tls = TlsPolicy::opportunistic;
    std::optional<Credentials> credentials;
    bool auth_plaintext = false; // credentials may go over a connection without TLS
    // RFC 5321 §4.5.3.2.
    std::chrono::milliseconds greeting_timeout { std::chrono::minutes(5) };
    std::chrono::milliseconds command_timeout { std::chrono::minutes(5) };
    std::chrono::milliseconds data_timeout { std::chrono::minutes(3) };   // each block sent
    std::chrono::milliseconds final_timeout { std::chrono::minutes(10) }; // the reply to "."
};

struct OutgoingMessage {
    std::string return_path; // "" for the null sender
    std::vector<std::string> recipients; // addr-specs
    std::uint64_t size = 0; // DataEncoder::wire_size of the content
    bool eight_bit_mime = false;
    // Appends the next piece of the canonical content (LF line ends) to its
    // argument; false once the content is complete.
    std::function<Result<bool>(std::string&)> next_chunk;
};

struct RecipientOutcome {
    enum class Kind { delivered, deferred, failed };
    Kind kind = Kind::deferred;
    std::string reply; // the server's reply, or what went wrong
    std::string enhanced; // RFC 3463 code, from the server or ours
};

struct MessageOutcome {
    std::vector<RecipientOutcome> recipients; // one per OutgoingMessage::recipients
    // False when the connection can carry no further message (lost, timed
    // out, or a failed RSET); the rest of the batch stays queued.
    bool connection_usable = true;
};

class ClientSession {
public:
    ClientSession(Transport& transport, ClientOptions options);

    // Greeting, EHLO (HELO when EHLO gets 5xx), STARTTLS as the policy asks
    // (EHLO again under TLS), AUTH when credentials are set. A temporary
    // error defers every message meant for this server; a permanent one (a
    // 5xx greeting or HELO) fails them.
    Result<void> open();
    // One transaction; after a failed one, RSET before the next.
    MessageOutcome send(const OutgoingMessage& message);
    // QUIT, without waiting long for its reply.
    void quit();

    const Capabilities& capabilities() const { return capabilities_; }
    bool tls_active() const { return transport_.tls_active(); }
    // The mechanism AUTH succeeded with, "" when none was used.
    const std::string& authenticated_with() const { return auth_used_; }

private:
    Result<ServerReply> read_reply(std::chrono::milliseconds timeout);
    Result<ServerReply> command(std::string_view line, std::chrono::milliseconds timeout);
    Result<void> hello();
    Result<void> start_tls();
    Result<void> authenticate();
    Result<ServerReply> auth_exchange(std::string_view first, const std::vector<std::string>& answers);
    MessageOutcome all(const OutgoingMessage& message, RecipientOutcome outcome, bool usable);
    Result<void> send_content(const OutgoingMessage& message);

    Transport& transport_;
    ClientOptions options_;
    ReplyReader replies_;
    Capabilities capabilities_;
    std::string auth_used_;
    bool need_rset_ = false;
    bool broken_ = false;
    bool greeted_ = false; // instant_helo: the banner has been read
};

// The outcome for every recipient when a session could not be opened or a
// transaction failed as a whole: temporary errors defer, permanent ones fail.
RecipientOutcome outcome_of(const Error& error);

} // namespace mm::smtp
