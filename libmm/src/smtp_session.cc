// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP server session (mm/smtp_session.hh). Replies follow masqmail 1.0
// where it defined them (§6.1) and RFC 5321 otherwise, with RFC 3463
// enhanced codes. Relay control: a non-local recipient needs a client that
// may relay (loopback, relay_nets, local -bs) and, with do_relay = false, a
// local sender. Linked by smtp-listener and the front end (mm_smtp).
#include "mm/smtp_session.hh"

#include "mm/enqueue.hh"
#include "mm/log.hh"
#include "mm/recipient.hh"
#include "mm_build_config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

namespace mm::smtp {

namespace {

constexpr std::size_t content_flush = 64 * 1024; // canonical bytes kept before a write to the memfd

void append_reply(std::string& out, int code, std::string_view enhanced, std::string text)
{
    out += format_reply(code, enhanced, {std::move(text)});
}

bool write_all(int fd, std::string_view bytes)
{
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

} // namespace

Session::Session(const config::MainConfig& config, Peer peer)
    : config_(config), peer_(std::move(peer)), max_size_(max_message_size(config)),
      max_recipients_(std::min(config.max_recipients, limits::recipients))
{
}

Next Session::greet(std::string& out)
{
    if (config_.defer_all) {
        append_reply(out, 421, "", config_.host_name + " service temporarily unavailable.");
        return Next::close;
    }
    append_reply(out, 220, "", config_.host_name + " MasqMail " MM_VERSION " ESMTP");
    return Next::read;
}

Next Session::advance(std::string& in, std::string& out)
{
    std::string_view rest = in;
    Next next = Next::read;
    while (next == Next::read && !rest.empty()) {
        if (data_) {
            next = data_input(rest, out);
            continue;
        }
        auto got = commands_.next(rest);
        std::string_view line = got.line; // a view into `in`, which stays as it is until the end
        rest.remove_prefix(got.consumed);
        if (got.status == CommandReader::Status::need_more)
            break;
        if (got.status == CommandReader::Status::refused) {
            next = refuse(got.refusal, out);
            continue;
        }
        ParsedCommand parsed = parse_command(line, parse_options());
        next = parsed.refused ? refuse(*parsed.refused, out) : command(parsed.command, !rest.empty(), out);
        if (next == Next::start_tls || next == Next::close)
            rest = {}; // RFC 3207 §4.2 (CVE-2011-0411): nothing read before TLS counts
    }
    in.erase(0, in.size() - rest.size());
    return next;
}

ParseOptions Session::parse_options() const
{
    return ParseOptions{.qualify_domain = config_.host_name, .esmtp = greeting_ == Greeting::ehlo,
        .max_message_size = max_size_};
}

// One reply that refuses a command; too many and the client goes.
Next Session::refuse(const Reply& reply, std::string& out)
{
    out += format_reply(reply);
    if (++errors_ < limits::smtp_errors)
        return Next::read;
    log::notice("%s: too many errors, disconnecting", peer_.address.empty() ? "local" : peer_.address.c_str());
    append_reply(out, 421, "4.7.0", config_.host_name + " Error: too many errors");
    return Next::close;
}

// RFC 2920 §3.1: the client must wait for the reply to EHLO, HELO, DATA,
// STARTTLS (and the greeting) before it sends more. One that did not is
// not talking SMTP; its pipelined bytes are never processed.
Next Session::out_of_sync(std::string& out)
{
    log::notice("%s: improper command pipelining, disconnecting",
        peer_.address.empty() ? "local" : peer_.address.c_str());
    append_reply(out, 554, "5.5.0", "Error: SMTP protocol synchronization");
    return Next::close;
}

Next Session::command(const Command& cmd, bool more_input, std::string& out)
{
    bool sync_point = cmd.verb == Verb::ehlo || cmd.verb == Verb::helo || cmd.verb == Verb::data;
    if (sync_point && peer_.enforce_synchronization && more_input)
        return out_of_sync(out);
    switch (cmd.verb) {
    case Verb::ehlo: return hello(cmd, true, out);
    case Verb::helo: return hello(cmd, false, out);
    case Verb::mail: mail(cmd, out); break;
    case Verb::rcpt: rcpt(cmd, out); break;
    case Verb::data: return data(out);
    case Verb::rset:
        reset_transaction();
        append_reply(out, 250, "2.0.0", "OK");
        break;
    case Verb::noop: append_reply(out, 250, "2.0.0", "OK"); break;
    case Verb::quit:
        append_reply(out, 221, "2.0.0", "goodbye");
        return Next::close;
    case Verb::vrfy:
        append_reply(out, 252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery");
        break;
    case Verb::expn: return refuse({502, "5.5.1", "EXPN not available"}, out);
    case Verb::help: help(out); break;
    case Verb::starttls: return starttls(cmd, out);
    }
    return errors_ >= limits::smtp_errors ? Next::close : Next::read;
}

Next Session::hello(const Command& cmd, bool extended, std::string& out)
{
    reset_transaction(); // RFC 5321 §4.1.4: EHLO/HELO mid-transaction is a RSET
    greeting_ = extended ? Greeting::ehlo : Greeting::helo;
    helo_name_ = cmd.argument;
    if (!extended) {
        append_reply(out, 250, "", config_.host_name + " pretty old mailer, huh?");
        return Next::read;
    }
    std::vector<std::string> lines = {config_.host_name + " Nice to meet you with ESMTP",
        "SIZE " + std::to_string(max_size_), "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"};
    if (peer_.tls_available && !tls_active_)
        lines.emplace_back("STARTTLS");
    lines.emplace_back("HELP");
    out += format_reply(250, "", lines);
    return Next::read;
}

void Session::mail(const Command& cmd, std::string& out)
{
    if (greeting_ == Greeting::none) {
        (void)refuse({503, "5.5.1", "need HELO or EHLO"}, out);
        return;
    }
    if (have_sender_) {
        (void)refuse({503, "5.5.1", "MAIL FROM: already given."}, out);
        return;
    }
    if (cmd.unqualified && !peer_.address.empty()) {
        (void)refuse({501, "5.1.7", "return path must be qualified."}, out);
        return;
    }
    reset_transaction();
    have_sender_ = true;
    sender_local_ = !cmd.address.is_null() && is_local(cmd.address, config_);
    body_ = cmd.body;
    request_.sender = cmd.address.is_null() ? std::string("<>") : cmd.address.str();
    append_reply(out, 250, "2.1.0", "OK " + cmd.address.path() + " is a nice guy.");
}

void Session::rcpt(const Command& cmd, std::string& out)
{
    if (greeting_ == Greeting::none) {
        (void)refuse({503, "5.5.1", "need HELO or EHLO."}, out);
        return;
    }
    if (!have_sender_) {
        (void)refuse({503, "5.5.1", "need MAIL FROM: before RCPT TO:"}, out);
        return;
    }
    if (cmd.unqualified && !peer_.address.empty()) {
        (void)refuse({501, "5.1.3", "recipient address must be qualified."}, out);
        return;
    }
    if (cmd.address.local_part().starts_with('|')) {
        (void)refuse({550, "5.1.1", "pipe addresses are not accepted over SMTP"}, out);
        return;
    }
    if (!is_local(cmd.address, config_)) {
        bool relay = peer_.may_relay && (config_.do_relay || sender_local_);
        if (!relay) {
            log::notice("%s: relaying to %s denied (from %s)", peer_.address.empty() ? "local" : peer_.address.c_str(),
                cmd.address.path().c_str(), request_.sender->c_str());
            (void)refuse({550, "5.7.1", "relaying to " + cmd.address.path() + " denied."}, out);
            return;
        }
    }
    if (request_.recipients.size() >= max_recipients_) {
        append_reply(out, 452, "4.5.3", "Too many recipients"); // RFC 5321 §4.5.3.1.10; not a client error
        return;
    }
    request_.recipients.push_back(cmd.address.str());
    append_reply(out, 250, "2.1.5", "OK " + cmd.address.path() + " is our friend.");
}

Next Session::data(std::string& out)
{
    if (greeting_ == Greeting::none)
        return refuse({503, "5.5.1", "need HELO or EHLO."}, out);
    if (request_.recipients.empty())
        return refuse({503, "5.5.1", "need RCPT TO: before DATA"}, out);
    content_fd_ = Fd(::memfd_create("masqmail-smtp", MFD_CLOEXEC));
    if (!content_fd_.valid()) {
        log::error("cannot make a memory file for a message: %s", std::strerror(errno));
        append_reply(out, 451, "4.3.0", "Could not write spool file");
        return Next::read;
    }
    data_.emplace(DataLimits{.max_message_size = max_size_, .max_line = limits::text_line_accepted});
    content_.clear();
    content_failed_ = false;
    content_refusal_.reset();
    header_bytes_ = 0;
    in_header_ = true;
    last_content_byte_ = '\n';
    append_reply(out, 354, "", "okay, and do not forget the dot");
    return Next::read;
}

// Reads DATA until its end; the content goes into the memfd in blocks.
Next Session::data_input(std::string_view& in, std::string& out)
{
    std::size_t before = content_.size();
    auto progress = data_->feed(in, content_);
    in.remove_prefix(progress.consumed);
    if (data_->refusal() == DataRefusal::none && !content_refusal_)
        watch_header_section(std::string_view(content_).substr(before));
    if (data_->refusal() != DataRefusal::none || content_refusal_)
        content_.clear(); // refused: nothing more is kept
    if (content_.size() >= content_flush)
        store_content();
    if (!progress.finished)
        return Next::read;
    return end_of_data(out);
}

// Header sections are bounded (user-needs F7; Postfix header_size_limit).
void Session::watch_header_section(std::string_view canonical)
{
    for (char c : canonical) {
        if (!in_header_)
            return;
        if (c == '\n' && last_content_byte_ == '\n') { // an empty line: the first one ends an empty header
            in_header_ = false;
            return;
        }
        last_content_byte_ = c;
        if (++header_bytes_ > limits::header_section) {
            content_refusal_ = Reply{552, "5.3.4", "Message header section exceeds fixed maximum size"};
            return;
        }
    }
}

void Session::store_content()
{
    if (!content_failed_ && !content_.empty() && !write_all(content_fd_.get(), content_)) {
        log::error("cannot write a message to memory: %s", std::strerror(errno));
        content_failed_ = true;
    }
    content_.clear();
}

Next Session::end_of_data(std::string& out)
{
    std::optional<Reply> refusal;
    if (data_->refusal() != DataRefusal::none)
        refusal = data_->refusal_reply();
    else if (content_refusal_)
        refusal = content_refusal_;
    data_.reset();
    if (refusal) {
        log::notice("%s: message from %s refused: %s", peer_.address.empty() ? "local" : peer_.address.c_str(),
            request_.sender->c_str(), refusal->text.c_str());
        reset_transaction();
        return refuse(*refusal, out);
    }
    store_content();
    if (content_failed_) {
        reset_transaction();
        append_reply(out, 451, "4.3.0", "Could not write spool file");
        return Next::read;
    }
    request_.smtp = protocol::SmtpOrigin{.protocol = protocol_name(), .peer_address = peer_.address,
        .helo_name = helo_name_, .eight_bit_mime = body_ == Body::eight_bit_mime};
    return Next::submit;
}

void Session::submitted(const Result<std::string>& queue_id, std::string& out)
{
    if (queue_id) {
        ++accepted_;
        append_reply(out, 250, "2.0.0", "OK id=" + *queue_id);
    } else {
        const Error& e = queue_id.error();
        int code = e.is_temporary() ? e.smtp_code() : 554;
        std::string text = e.is_temporary() && e.sys_errno() != ENOSPC && e.sys_errno() != EDQUOT
            ? "Could not write spool file"
            : e.message();
        out += format_reply(code, e.enhanced_code(), {text});
    }
    reset_transaction();
}

void Session::help(std::string& out) const
{
    std::vector<std::string> lines = {"supported commands:", "HELO", "EHLO", "MAIL FROM:", "RCPT TO:", "DATA", "RSET",
        "NOOP", "VRFY", "QUIT"};
    if (peer_.tls_available && !tls_active_)
        lines.emplace_back("STARTTLS");
    lines.emplace_back("HELP");
    out += format_reply(214, "2.0.0", lines);
}

Next Session::starttls(const Command& cmd, std::string& out)
{
    if (!peer_.tls_available)
        return refuse({502, "5.5.1", "STARTTLS not available"}, out);
    if (tls_active_)
        return refuse({503, "5.5.1", "TLS already active"}, out);
    if (!cmd.argument.empty())
        return refuse({501, "5.5.4", "Syntax: STARTTLS"}, out);
    append_reply(out, 220, "2.0.0", "Ready to start TLS");
    return Next::start_tls;
}

void Session::tls_started()
{
    tls_active_ = true;
    greeting_ = Greeting::none;
    helo_name_.clear();
    commands_ = CommandReader();
    reset_transaction();
}

void Session::timed_out(std::string& out) const
{
    append_reply(out, 421, "4.4.2", config_.host_name + " Error: timeout exceeded");
}

void Session::shutting_down(std::string& out) const
{
    append_reply(out, 421, "4.3.2", config_.host_name + " service shutting down");
}

void Session::reset_transaction()
{
    have_sender_ = false;
    sender_local_ = false;
    body_ = Body::unspecified;
    // Field by field: gcc 12 with sanitizers warns (falsely) about a
    // move-assigned temporary's optional<string> members.
    request_.sender.reset();
    request_.recipients.clear();
    request_.extract_recipients = false;
    request_.full_name.reset();
    request_.queue_only = false;
    request_.verbose = false;
    request_.smtp.reset();
    data_.reset();
    content_.clear();
    content_fd_ = Fd();
}

std::string Session::protocol_name() const
{
    if (greeting_ != Greeting::ehlo)
        return "smtp";
    return tls_active_ ? "esmtps" : "esmtp";
}

} // namespace mm::smtp
