// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP client session (mm/smtp_client.hh).
#include "mm/smtp_client.hh"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cerrno>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mm::smtp {

namespace {

using Kind = RecipientOutcome::Kind;

std::string base64(std::string_view in)
{
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
        reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
}

std::optional<std::string> unbase64(std::string_view in)
{
    if (in.size() % 4 != 0 || in.size() > 4096)
        return std::nullopt;
    std::string out(in.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
        reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
    if (n < 0)
        return std::nullopt;
    std::size_t size = static_cast<std::size_t>(n);
    for (std::size_t i = in.size(); i > 0 && in[i - 1] == '='; --i)
        --size; // EVP_DecodeBlock counts padding as data
    out.resize(size);
    return out;
}

const char* mechanism_name(AuthMechanism m)
{
    switch (m) {
    case AuthMechanism::plain: return "PLAIN";
    case AuthMechanism::login: return "LOGIN";
    case AuthMechanism::cram_md5: return "CRAM-MD5";
    case AuthMechanism::xoauth2: return "XOAUTH2";
    case AuthMechanism::oauthbearer: return "OAUTHBEARER";
    }
    return "";
}

// A server's reply as the error of a step: 4xx temporary, 5xx permanent.
Error reply_error(std::string_view what, const ServerReply& reply)
{
    std::string text = std::string(what) + ": " + reply.summary();
    return reply.kind() == 5 ? Error::permanent(std::move(text)) : Error::temporary(std::move(text));
}

RecipientOutcome from_reply(const ServerReply& reply)
{
    Kind kind = reply.kind() == 2 ? Kind::delivered : reply.kind() == 5 ? Kind::failed : Kind::deferred;
    std::string enhanced = reply.enhanced;
    if (enhanced.empty())
        enhanced = reply.kind() == 2 ? "2.0.0" : reply.kind() == 5 ? "5.0.0" : "4.0.0";
    return { kind, reply.summary(), enhanced };
}

bool has_line_break(std::string_view s)
{
    return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

} // namespace

Result<void> wait_ready(int fd, short events, std::chrono::steady_clock::time_point deadline, const char* what)
{
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return Error::temporary(std::string("timed out: ") + what);
        pollfd p { fd, events, 0 };
        int n = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 60'000)));
        if (n > 0)
            return ok();
        if (n < 0 && errno != EINTR)
            return Error::from_errno("poll", errno);
    }
}

Result<std::size_t> SocketTransport::read(char* buffer, std::size_t size, std::chrono::milliseconds timeout)
{
    for (;;) {
        ssize_t n = ::recv(fd_, buffer, size, MSG_DONTWAIT);
        if (n >= 0)
            return static_cast<std::size_t>(n);
        if (errno == ENOTSOCK)
            n = ::read(fd_, buffer, size);
        if (n >= 0)
            return static_cast<std::size_t>(n);
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return Error::from_errno("read from the server", errno);
        if (auto r = wait_ready(fd_, POLLIN, std::chrono::steady_clock::now() + timeout, "waiting for the server's reply"); !r)
            return std::move(r).error();
    }
}

Result<void> SocketTransport::write(std::string_view data, std::chrono::milliseconds timeout)
{
    while (!data.empty()) {
        ssize_t n = ::send(fd_, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = ::write(fd_, data.data(), data.size());
        if (n > 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return Error::from_errno("write to the server", errno);
        if (auto r = wait_ready(fd_, POLLOUT, std::chrono::steady_clock::now() + timeout, "sending to the server"); !r)
            return r;
    }
    return ok();
}

Result<void> SocketTransport::start_tls(std::chrono::milliseconds)
{
    return Error::temporary("this connection cannot do TLS");
}

RecipientOutcome outcome_of(const Error& error)
{
    bool failed = error.kind() == ErrorKind::permanent;
    const char* status = error.status_override();
    return { failed ? Kind::failed : Kind::deferred, error.message(),
        status != nullptr ? status : (failed ? "5.0.0" : "4.4.0") };
}

ClientSession::ClientSession(Transport& transport, ClientOptions options)
    : transport_(transport), options_(std::move(options))
{
}

Result<ServerReply> ClientSession::read_reply(std::chrono::milliseconds timeout)
{
    for (;;) {
        auto reply = replies_.next();
        if (!reply) {
            broken_ = true;
            return Error::temporary(options_.server_name + ": " + reply.error().message());
        }
        if (*reply)
            return std::move(**reply);
        std::array<char, 16 * 1024> buffer;
        auto n = transport_.read(buffer.data(), buffer.size(), timeout);
        if (!n || *n == 0) {
            broken_ = true;
            return Error::temporary(options_.server_name + ": "
                + (n ? std::string("the server closed the connection") : n.error().message()));
        }
        if (auto fed = replies_.feed(std::string_view(buffer.data(), *n)); !fed) {
            broken_ = true;
            return Error::temporary(options_.server_name + ": " + fed.error().message());
        }
    }
}

Result<ServerReply> ClientSession::command(std::string_view line, std::chrono::milliseconds timeout)
{
    std::string out(line);
    out += "\r\n";
    if (auto w = transport_.write(out, options_.command_timeout); !w) {
        broken_ = true;
        return Error::temporary(options_.server_name + ": " + w.error().message());
    }
    return read_reply(timeout);
}

Result<void> ClientSession::hello()
{
    auto reply = command("EHLO " + options_.helo_name, options_.command_timeout);
    // instant_helo (masqmail §6.2): the banner we did not wait for comes
    // first; the EHLO reply follows it.
    if (reply && reply->code == 220 && options_.instant_helo && !greeted_) {
        greeted_ = true;
        reply = read_reply(options_.command_timeout);
    }
    if (!reply)
        return std::move(reply).error();
    if (reply->kind() == 2) {
        capabilities_ = parse_ehlo(*reply);
        return ok();
    }
    if (reply->kind() != 5)
        return reply_error("EHLO", *reply);
    capabilities_ = Capabilities();
    reply = command("HELO " + options_.helo_name, options_.command_timeout);
    if (!reply)
        return std::move(reply).error();
    if (reply->kind() != 2)
        return reply_error("HELO", *reply);
    return ok();
}

Result<void> ClientSession::open()
{
    if (has_line_break(options_.helo_name) || options_.helo_name.empty())
        return Error::permanent("bad HELO name");
    if (!options_.instant_helo) {
        auto greeting = read_reply(options_.greeting_timeout);
        if (!greeting)
            return std::move(greeting).error();
        if (greeting->code != 220)
            return reply_error("greeting", *greeting);
    }
    if (auto r = hello(); !r)
        return r;
    if (!transport_.tls_active()) {
        if (capabilities_.starttls && options_.tls != TlsPolicy::none) {
            if (auto r = start_tls(); !r)
                return r;
        } else if (options_.tls == TlsPolicy::required) {
            return Error::temporary(options_.server_name
                + " offers no STARTTLS, and the route requires TLS").status_as("4.7.0");
        }
    }
    if (options_.credentials)
        return authenticate();
    return ok();
}

Result<void> ClientSession::start_tls()
{
    auto reply = command("STARTTLS", options_.command_timeout);
    if (!reply)
        return std::move(reply).error();
    if (reply->code != 220) {
        if (options_.tls == TlsPolicy::required || options_.credentials)
            return Error::temporary(options_.server_name + ": STARTTLS refused: " + reply->summary())
                .status_as("4.7.0");
        return ok(); // opportunistic: go on without TLS
    }
    // Nothing the server sent before the handshake may count after it
    // (CVE-2011-0411's mirror image): drop it.
    replies_.discard();
    if (auto r = transport_.start_tls(options_.command_timeout); !r) {
        broken_ = true;
        return Error::temporary(options_.server_name + ": TLS: " + r.error().message()).status_as("4.7.0");
    }
    capabilities_ = Capabilities();
    return hello();
}

Result<ServerReply> ClientSession::auth_exchange(std::string_view first, const std::vector<std::string>& answers)
{
    auto reply = command(first, options_.command_timeout);
    for (const std::string& answer : answers) {
        if (!reply || reply->code != 334)
            return reply;
        reply = command(answer, options_.command_timeout);
    }
    return reply;
}

Result<void> ClientSession::authenticate()
{
    const Credentials& c = *options_.credentials;
    if (!transport_.tls_active() && !options_.auth_plaintext)
        return Error::temporary(options_.server_name
            + ": no TLS, and the route does not allow credentials in clear text (auth_plaintext)")
            .status_as("4.7.0");
    if (capabilities_.auth.empty())
        return Error::temporary(options_.server_name + " offers no AUTH").status_as("4.7.0");
    std::optional<AuthMechanism> mech = c.mechanism;
    if (mech) {
        if (!capabilities_.offers_auth(mechanism_name(*mech)))
            return Error::temporary(options_.server_name + " does not offer AUTH " + mechanism_name(*mech))
                .status_as("4.7.0");
    } else {
        // Under TLS the simplest; in clear text (auth_plaintext) the one
        // that does not show the password first.
        std::vector<AuthMechanism> order = transport_.tls_active()
            ? std::vector<AuthMechanism> { AuthMechanism::plain, AuthMechanism::login, AuthMechanism::cram_md5 }
            : std::vector<AuthMechanism> { AuthMechanism::cram_md5, AuthMechanism::plain, AuthMechanism::login };
        for (AuthMechanism m : order)
            if (capabilities_.offers_auth(mechanism_name(m))) {
                mech = m;
                break;
            }
        if (!mech)
            return Error::temporary(options_.server_name + " offers none of PLAIN, LOGIN, CRAM-MD5")
                .status_as("4.7.0");
    }
    if (has_line_break(c.login) || has_line_break(c.secret))
        return Error::permanent("the route's credentials contain a line break");
    Result<ServerReply> reply = Error::internal("no AUTH exchange");
    switch (*mech) {
    case AuthMechanism::plain:
        reply = command("AUTH PLAIN " + base64(std::string(1, '\0') + c.login + '\0' + c.secret),
            options_.command_timeout);
        break;
    case AuthMechanism::login:
        reply = auth_exchange("AUTH LOGIN", { base64(c.login), base64(c.secret) });
        break;
    case AuthMechanism::cram_md5: {
        reply = command("AUTH CRAM-MD5", options_.command_timeout);
        if (!reply || reply->code != 334)
            break;
        auto challenge = unbase64(reply->lines.front());
        if (!challenge) {
            (void)command("*", options_.command_timeout);
            return Error::temporary(options_.server_name + ": bad CRAM-MD5 challenge");
        }
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        if (HMAC(EVP_md5(), c.secret.data(), static_cast<int>(c.secret.size()),
                reinterpret_cast<const unsigned char*>(challenge->data()), challenge->size(), digest, &length)
            == nullptr)
            return Error::internal("HMAC-MD5 failed");
        static constexpr char hex[] = "0123456789abcdef";
        std::string answer = c.login + ' ';
        for (unsigned int i = 0; i < length; ++i) {
            answer += hex[digest[i] >> 4];
            answer += hex[digest[i] & 15];
        }
        reply = command(base64(answer), options_.command_timeout);
        break;
    }
    case AuthMechanism::xoauth2:
        reply = command("AUTH XOAUTH2 " + base64("user=" + c.login + "\1auth=Bearer " + c.secret + "\1\1"),
            options_.command_timeout);
        if (reply && reply->code == 334) // an error in JSON: the empty answer ends it
            reply = command("", options_.command_timeout);
        break;
    case AuthMechanism::oauthbearer:
        reply = command("AUTH OAUTHBEARER " + base64("n,a=" + c.login + ",\1auth=Bearer " + c.secret + "\1\1"),
            options_.command_timeout);
        if (reply && reply->code == 334)
            reply = command(base64("\1"), options_.command_timeout);
        break;
    }
    if (!reply)
        return std::move(reply).error();
    if (reply->code != 235) // never a bounce: the route's secret is wrong, not the mail
        return Error::temporary(options_.server_name + ": authentication (" + mechanism_name(*mech)
            + ") failed: " + reply->summary()).status_as("4.7.0");
    auth_used_ = mechanism_name(*mech);
    return ok();
}

MessageOutcome ClientSession::all(const OutgoingMessage& message, RecipientOutcome outcome, bool usable)
{
    MessageOutcome out;
    out.recipients.assign(message.recipients.size(), outcome);
    out.connection_usable = usable && !broken_;
    return out;
}

Result<void> ClientSession::send_content(const OutgoingMessage& message)
{
    DataEncoder encoder;
    std::string content, wire;
    for (;;) {
        content.clear();
        auto more = message.next_chunk(content);
        if (!more)
            return std::move(more).error();
        encoder.encode(content, wire);
        if (!*more)
            encoder.finish(wire);
        if (wire.size() >= 64 * 1024 || !*more) {
            if (auto w = transport_.write(wire, options_.data_timeout); !w) {
                broken_ = true;
                return Error::temporary(options_.server_name + ": " + w.error().message());
            }
            wire.clear();
        }
        if (!*more)
            return ok();
    }
}

MessageOutcome ClientSession::send(const OutgoingMessage& message)
{
    if (broken_)
        return all(message, { Kind::deferred, "the connection was lost before this message", "4.4.2" }, false);
    if (need_rset_) {
        auto r = command("RSET", options_.command_timeout);
        if (!r || r->kind() != 2) {
            broken_ = true;
            return all(message, { Kind::deferred, "RSET failed", "4.4.2" }, false);
        }
        need_rset_ = false;
    }
    if (has_line_break(message.return_path))
        return all(message, { Kind::failed, "bad return path", "5.1.7" }, true);
    if (capabilities_.size && capabilities_.max_size > 0 && message.size > capabilities_.max_size)
        return all(message,
            { Kind::failed,
                "message of " + std::to_string(message.size) + " bytes exceeds the limit of "
                    + options_.server_name + " (" + std::to_string(capabilities_.max_size) + ")",
                "5.3.4" },
            true);
    std::string mail = "MAIL FROM:<" + message.return_path + ">";
    if (capabilities_.size)
        mail += " SIZE=" + std::to_string(message.size);
    if (message.eight_bit_mime && capabilities_.eight_bit_mime)
        mail += " BODY=8BITMIME";
    std::vector<std::string> lines { mail };
    for (const std::string& r : message.recipients) {
        if (has_line_break(r))
            return all(message, { Kind::failed, "bad recipient address", "5.1.3" }, true);
        lines.push_back("RCPT TO:<" + r + ">");
    }
    lines.push_back("DATA");

    const bool pipelined = options_.pipelining && capabilities_.pipelining;
    MessageOutcome out;
    out.recipients.resize(message.recipients.size());
    std::vector<bool> accepted_rcpt(message.recipients.size(), false);
    std::size_t accepted = 0;
    // Every accepted recipient gets the outcome of the transaction as a whole.
    auto settle_accepted = [&](const RecipientOutcome& outcome) {
        for (std::size_t i = 0; i < out.recipients.size(); ++i)
            if (accepted_rcpt[i])
                out.recipients[i] = outcome;
    };
    auto lost = [&](const Error& e) { return all(message, { Kind::deferred, e.message(), "4.4.2" }, false); };
    if (pipelined) {
        std::string burst;
        for (const std::string& l : lines)
            burst += l + "\r\n";
        if (auto w = transport_.write(burst, options_.command_timeout); !w) {
            broken_ = true;
            return lost(w.error());
        }
    }
    // MAIL
    auto reply = pipelined ? read_reply(options_.command_timeout) : command(lines[0], options_.command_timeout);
    if (!reply)
        return lost(reply.error());
    const bool mail_ok = reply->kind() == 2;
    RecipientOutcome mail_refusal = from_reply(*reply);
    if (!mail_ok) {
        mail_refusal.reply = "MAIL FROM: " + mail_refusal.reply;
        if (!pipelined) {
            need_rset_ = true;
            return all(message, mail_refusal, true);
        }
    }
    // RCPT
    for (std::size_t i = 0; i < message.recipients.size(); ++i) {
        if (!pipelined && !mail_ok)
            break;
        reply = pipelined ? read_reply(options_.command_timeout) : command(lines[i + 1], options_.command_timeout);
        if (!reply)
            return lost(reply.error());
        out.recipients[i] = mail_ok ? from_reply(*reply) : mail_refusal;
        if (mail_ok && reply->kind() == 2) {
            ++accepted;
            accepted_rcpt[i] = true;
        }
    }
    // DATA
    if (!pipelined && accepted == 0) {
        need_rset_ = true;
        return out;
    }
    reply = pipelined ? read_reply(options_.command_timeout) : command("DATA", options_.command_timeout);
    if (!reply)
        return lost(reply.error());
    if (reply->code != 354) {
        need_rset_ = true;
        RecipientOutcome refused = from_reply(*reply);
        refused.reply = "DATA: " + refused.reply;
        settle_accepted(refused);
        return out;
    }
    if (accepted == 0 || !mail_ok) {
        // A pipelining server that said 354 although nothing was accepted
        // (RFC 2920 §3.1): end the empty transaction at once.
        if (auto w = transport_.write(".\r\n", options_.command_timeout); !w) {
            broken_ = true;
            return lost(w.error());
        }
        (void)read_reply(options_.final_timeout);
        need_rset_ = true;
        return out;
    }
    if (auto sent = send_content(message); !sent) {
        if (broken_)
            return lost(sent.error());
        // Our side failed (the spool file could not be read): nothing may be
        // delivered half, so the connection is given up.
        broken_ = true;
        return all(message, outcome_of(sent.error()), false);
    }
    reply = read_reply(options_.final_timeout);
    if (!reply) // after the final dot: the server may have the message (a duplicate later, never a loss)
        return lost(reply.error());
    if (reply->kind() != 2)
        need_rset_ = true;
    settle_accepted(from_reply(*reply));
    out.connection_usable = !broken_;
    return out;
}

void ClientSession::quit()
{
    if (broken_)
        return;
    (void)command("QUIT", std::chrono::seconds(10));
    broken_ = true;
}

} // namespace mm::smtp
