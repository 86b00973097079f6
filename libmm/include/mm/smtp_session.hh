// SPDX-License-Identifier: GPL-2.0-or-later
// One SMTP server session as a state machine: bytes in, replies out, and a
// request to submit each accepted message. It does no network I/O, so
// smtp-listener (libevent, TLS) and the front end's -bs (blocking stdin and
// stdout) drive the same code. Every input byte is untrusted and every
// buffer bounded (mm/limits.hh); the message goes into an anonymous memory
// file, never the spool. Linked by smtp-listener and the front end.
#pragma once

#include "mm/config.hh"
#include "mm/fd.hh"
#include "mm/protocol.hh"
#include "mm/result.hh"
#include "mm/smtp_wire.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mm::smtp {

// Who is on the other end, as the driver knows it.
struct Peer {
    std::string address;        // the client's IP address; "" for -bs on a local stdin
    bool may_relay = false;     // loopback, relay_nets, or a local -bs user
    bool tls_available = false; // a TLS context is loaded: offer STARTTLS
    // Refuse commands pipelined across a state change (RFC 2920 §3.1) with
    // 554 and close, as Postfix's smtpd_forbid_unauth_pipelining. Off for
    // -bs, whose local callers often write a whole session at once.
    bool enforce_synchronization = true;
};

// What the driver does after greet() or advance().
enum class Next : std::uint8_t {
    read,      // send what is in `out`, then read more input
    submit,    // send `out`, hand submission() to enqueue, then call submitted()
    start_tls, // send `out` (the 220), discard all input, handshake, then tls_started()
    close,     // send `out`, then close the connection
};

class Session {
public:
    // `config` must outlive the session.
    Session(const config::MainConfig& config, Peer peer);

    // The greeting: 220, or with defer_all a 421 and Next::close.
    Next greet(std::string& out);
    // Consumes what it can of `in` (what is left is an incomplete line) and
    // appends the replies to `out`. Never reads past a state change that
    // needs the driver (submit, start_tls, close).
    Next advance(std::string& in, std::string& out);

    // After Next::submit: the envelope, and the message as a memfd (canonical:
    // LF line ends, dots undone). The driver takes the descriptor.
    const protocol::SubmitRequest& submission() const { return request_; }
    Fd take_content() { return std::move(content_fd_); }
    // What enqueue answered: the queue id, or why not. Appends the reply.
    void submitted(const Result<std::string>& queue_id, std::string& out);

    // After Next::start_tls, once the handshake succeeded: the session starts
    // over (RFC 3207 §4.2: no HELO, no transaction) with TLS active.
    void tls_started();

    // The driver gave up waiting for input (421 and close).
    void timed_out(std::string& out) const;
    // The server is stopping (421 and close).
    void shutting_down(std::string& out) const;

    bool tls_active() const { return tls_active_; }
    bool in_data() const { return data_.has_value(); }
    std::size_t messages_accepted() const { return accepted_; }

private:
    enum class Greeting : std::uint8_t { none, helo, ehlo };

    Next command(const Command& cmd, bool more_input, std::string& out);
    Next hello(const Command& cmd, bool extended, std::string& out);
    void mail(const Command& cmd, std::string& out);
    void rcpt(const Command& cmd, std::string& out);
    Next data(std::string& out);
    Next data_input(std::string_view& in, std::string& out);
    Next end_of_data(std::string& out);
    void help(std::string& out) const;
    Next starttls(const Command& cmd, std::string& out);
    Next refuse(const Reply& reply, std::string& out);
    Next out_of_sync(std::string& out);
    void store_content();
    void watch_header_section(std::string_view canonical);
    void reset_transaction();
    ParseOptions parse_options() const;
    std::string protocol_name() const;

    const config::MainConfig& config_;
    Peer peer_;
    std::uint64_t max_size_;
    std::size_t max_recipients_;
    CommandReader commands_;
    Greeting greeting_ = Greeting::none;
    std::string helo_name_;
    bool tls_active_ = false;
    std::size_t errors_ = 0;
    std::size_t accepted_ = 0;

    // The transaction: MAIL FROM given, recipients, then DATA.
    bool have_sender_ = false;
    bool sender_local_ = false;
    Body body_ = Body::unspecified;
    protocol::SubmitRequest request_;
    std::optional<DataReader> data_;
    std::string content_;      // canonical content not yet written to content_fd_
    Fd content_fd_;
    bool content_failed_ = false;
    std::optional<Reply> content_refusal_; // a refusal of ours beside DataReader's
    std::uint64_t header_bytes_ = 0;
    bool in_header_ = true;
    char last_content_byte_ = '\n';
};

} // namespace mm::smtp
