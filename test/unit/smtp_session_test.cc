// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP server session (mm/smtp_session.hh) driven as smtp-listener and
// -bs drive it: replies and their order, sequencing, relay control, limits,
// the synchronization and STARTTLS rules against command injection, DATA
// smuggling, the submission and memfd handed to enqueue, and the same
// replies whatever the chunking of the input.
#include "catch.hh"
#include "mm/config.hh"
#include "mm/config_lexer.hh"
#include "mm/limits.hh"
#include "mm/smtp_session.hh"
#include "mm_build_config.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;
using mm::Error;
using mm::Result;
using mm::config::MainConfig;
using mm::protocol::SmtpOrigin;
using mm::smtp::Next;
using mm::smtp::Peer;
using mm::smtp::Session;

using namespace std::string_literals;
using Codes = std::vector<int>;

namespace {

// host_name test.example, local_hosts localhost and test.example, plus `extra`.
MainConfig make_config(const std::string& extra = "")
{
    mm::config::Diagnostics diag;
    std::optional<MainConfig> config = mm::config::parse_main_config(
        "host_name = test.example\nlocal_hosts = \"localhost;test.example\"\n" + extra, "test.conf", diag);
    REQUIRE(config.has_value());
    return std::move(*config);
}

Peer network_peer(bool may_relay = false)
{
    return Peer { .address = "192.0.2.1", .may_relay = may_relay };
}

// masqmail -bs on a local stdin: no address, may relay, no synchronization check.
Peer local_peer()
{
    return Peer {
        .address = "", .may_relay = true, .tls_available = false, .enforce_synchronization = false
    };
}

Peer tls_peer()
{
    Peer peer = network_peer();
    peer.tls_available = true;
    return peer;
}

// For INFO(): control bytes shown as \xNN.
std::string shown(std::string_view s)
{
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

// The code of each complete reply in `out`, in order; a multi-line reply counts once.
Codes codes(std::string_view out)
{
    Codes result;
    std::size_t start = 0;
    while (start < out.size()) {
        std::size_t end = out.find("\r\n", start);
        REQUIRE(end != std::string_view::npos);
        std::string_view line = out.substr(start, end - start);
        REQUIRE(line.size() >= 4);
        if (line[3] == ' ')
            result.push_back((line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'));
        start = end + 2;
    }
    return result;
}

// The whole memory file, read as enqueue reads it: from offset 0.
std::string read_content(const mm::Fd& fd)
{
    REQUIRE(fd.valid());
    struct stat st { };
    REQUIRE(::fstat(fd.get(), &st) == 0);
    std::string content(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::pread(fd.get(), content.data() + done, content.size() - done, static_cast<off_t>(done));
        REQUIRE(n > 0);
        done += static_cast<std::size_t>(n);
    }
    return content;
}

// What a client sends after the 354 for canonical `content`: CRLF line
// ends, a leading dot doubled, and the final dot.
std::string wire_data(std::string_view content)
{
    std::string wire;
    bool line_start = true;
    for (char c : content) {
        if (line_start && c == '.')
            wire += '.';
        if (c == '\n')
            wire += '\r';
        wire += c;
        line_start = c == '\n';
    }
    return wire + ".\r\n";
}

// One session and the input it has not consumed yet, driven one read at a time.
class Client {
public:
    Client(const MainConfig& config, Peer peer)
        : session_(config, std::move(peer))
    {
    }

    std::string greet()
    {
        std::string out;
        next_ = session_.greet(out);
        return out;
    }
    // One read of `bytes` (after what earlier reads left) and the replies to it.
    std::string send(std::string_view bytes)
    {
        in_ += bytes;
        std::string out;
        next_ = session_.advance(in_, out);
        return out;
    }
    std::string submitted(const Result<std::string>& queue_id)
    {
        std::string out;
        session_.submitted(queue_id, out);
        return out;
    }
    // Start TLS as the listener does: what was read is dropped.
    void start_tls()
    {
        REQUIRE(next_ == Next::start_tls);
        in_.clear();
        session_.tls_started();
        next_ = Next::read;
    }

    Next next() const { return next_; }
    const std::string& pending() const { return in_; }
    Session& session() { return session_; }

private:
    Session session_;
    std::string in_;
    Next next_ = Next::read;
};

const std::string ehlo_reply_start = "250-test.example Nice to meet you with ESMTP\r\n";

// Greeting, EHLO (or HELO), one sender, one recipient and a small message:
// the session stops at Next::submit.
void run_to_submit(Client& c, const std::string& hello = "EHLO client.example")
{
    REQUIRE(codes(c.greet()) == Codes { 220 });
    REQUIRE(codes(c.send(hello + "\r\n")) == Codes { 250 });
    REQUIRE(codes(c.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"))
        == Codes { 250, 250, 354 });
    REQUIRE(c.send("Subject: test\r\n\r\nhello\r\n.\r\n").empty());
    REQUIRE(c.next() == Next::submit);
}

// Plays `input` to a new session, cut into reads at `cuts` (offsets), as a
// driver would: each submission is answered with a queue id, a STARTTLS
// drops what was read. The transcript is every reply with each submission
// (envelope, origin and content) written in its place.
std::string play(
    const MainConfig& config, const Peer& peer, std::string_view input, const std::vector<std::size_t>& cuts)
{
    Session s(config, peer);
    std::string in;
    std::string out;
    Next next = s.greet(out);
    int queued = 0;
    std::size_t pos = 0;
    for (std::size_t i = 0; i <= cuts.size() && next != Next::close; ++i) {
        std::size_t end = i < cuts.size() ? cuts[i] : input.size();
        in.append(input.substr(pos, end - pos));
        pos = end;
        next = s.advance(in, out);
        while (next == Next::submit) {
            const mm::protocol::SubmitRequest& r = s.submission();
            out += "[submit " + r.sender.value_or("?") + " ->";
            for (const auto& rcpt : r.recipients)
                out += " " + rcpt;
            if (r.smtp)
                out += " " + r.smtp->protocol + " " + r.smtp->helo_name
                    + (r.smtp->eight_bit_mime ? " 8bit" : "");
            out += " {" + read_content(s.take_content()) + "}]";
            s.submitted("Q"s + std::to_string(++queued), out);
            next = s.advance(in, out);
        }
        if (next == Next::start_tls) {
            out += "[tls]";
            in.clear();
            s.tls_started();
            next = Next::read;
        }
    }
    if (next == Next::close)
        out += "[close]";
    return out;
}

} // namespace

// --- greeting and hello ---

TEST_CASE("greeting: 220 with the host name, or with defer_all 421 and close")
{
    const MainConfig config = make_config();
    Client c(config, network_peer());
    CHECK(c.greet() == "220 test.example MasqMail " MM_VERSION " ESMTP\r\n");
    CHECK(c.next() == Next::read);

    const MainConfig deferring = make_config("defer_all = true\n");
    Client d(deferring, network_peer());
    CHECK(d.greet() == "421 test.example service temporarily unavailable.\r\n");
    CHECK(d.next() == Next::close);
}

TEST_CASE("EHLO: the extensions, SIZE with the configured limit or the default")
{
    const MainConfig config = make_config("max_msg_size = 1000000\n");
    Client c(config, network_peer());
    c.greet();
    CHECK(c.send("EHLO client.example\r\n")
        == ehlo_reply_start
            + "250-SIZE 1000000\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 "
              "HELP\r\n");
    CHECK(c.next() == Next::read);

    const MainConfig unlimited = make_config();
    Client u(unlimited, network_peer());
    u.greet();
    std::string reply = u.send("EHLO client.example\r\n");
    CHECK_THAT(reply, Contains("\r\n250-SIZE " + std::to_string(mm::limits::message_size_default) + "\r\n"));
    CHECK_THAT(reply, !Contains("STARTTLS"));
}

TEST_CASE("EHLO: STARTTLS only with a TLS context, and not once TLS is active")
{
    const MainConfig config = make_config();
    Client c(config, tls_peer());
    c.greet();
    CHECK(c.send("EHLO client.example\r\n")
        == ehlo_reply_start
            + "250-SIZE 33554432\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
              "250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250 HELP\r\n");
    CHECK(c.send("STARTTLS\r\n") == "220 2.0.0 Ready to start TLS\r\n");
    c.start_tls();
    CHECK(c.session().tls_active());
    std::string after = c.send("EHLO client.example\r\n");
    CHECK_THAT(after, StartsWith(ehlo_reply_start));
    CHECK_THAT(after, !Contains("STARTTLS"));
    CHECK_THAT(after, EndsWith("250 HELP\r\n"));
}

TEST_CASE("HELO: one line, and no ESMTP parameters after it")
{
    const MainConfig config = make_config();
    Client c(config, network_peer());
    c.greet();
    CHECK(c.send("HELO client.example\r\n") == "250 test.example pretty old mailer, huh?\r\n");
    CHECK(codes(c.send("MAIL FROM:<alice@remote.example> BODY=8BITMIME\r\n")) == Codes { 555 });
    CHECK(c.send("MAIL FROM:<alice@remote.example>\r\n")
        == "250 2.1.0 OK <alice@remote.example> is a nice guy.\r\n");
    CHECK(codes(c.send("EHLO\r\n")) == Codes { 501 });
}

// --- sequencing ---

TEST_CASE("sequencing: 503 for MAIL before HELO, RCPT before MAIL, DATA before RCPT, a second MAIL")
{
    const MainConfig config = make_config();
    Client c(config, network_peer());
    c.greet();
    CHECK(c.send("MAIL FROM:<alice@remote.example>\r\n") == "503 5.5.1 need HELO or EHLO\r\n");
    CHECK(codes(c.send("RCPT TO:<bob@test.example>\r\n")) == Codes { 503 });
    CHECK(codes(c.send("DATA\r\n")) == Codes { 503 });
    CHECK(c.next() == Next::read);

    CHECK(codes(c.send("EHLO client.example\r\n")) == Codes { 250 });
    CHECK(c.send("RCPT TO:<bob@test.example>\r\n") == "503 5.5.1 need MAIL FROM: before RCPT TO:\r\n");
    CHECK(c.send("DATA\r\n") == "503 5.5.1 need RCPT TO: before DATA\r\n");
    CHECK(codes(c.send("MAIL FROM:<alice@remote.example>\r\n")) == Codes { 250 });
    CHECK(c.send("DATA\r\n") == "503 5.5.1 need RCPT TO: before DATA\r\n");
    CHECK(c.send("MAIL FROM:<carol@remote.example>\r\n") == "503 5.5.1 MAIL FROM: already given.\r\n");
    CHECK(c.send("RCPT TO:<bob@test.example>\r\n") == "250 2.1.5 OK <bob@test.example> is our friend.\r\n");
    CHECK(c.send("DATA\r\n") == "354 okay, and do not forget the dot\r\n");
    CHECK(c.session().in_data());
    CHECK(c.send(".\r\n").empty());
    REQUIRE(c.next() == Next::submit);
    CHECK(c.session().submission().sender == "alice@remote.example"); // the first MAIL stands
}

TEST_CASE("sequencing: RSET and a new EHLO or HELO end the transaction")
{
    const MainConfig config = make_config();
    Client c(config, network_peer());
    c.greet();
    c.send("EHLO client.example\r\n");
    CHECK(codes(c.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nRSET\r\n"))
        == Codes { 250, 250, 250 });
    CHECK(codes(c.send("DATA\r\n")) == Codes { 503 });
    CHECK(codes(c.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\n"))
        == Codes { 250, 250 });
    CHECK(codes(c.send("EHLO client.example\r\n")) == Codes { 250 });
    CHECK(codes(c.send("RCPT TO:<bob@test.example>\r\n")) == Codes { 503 });
    CHECK(codes(c.send("MAIL FROM:<alice@remote.example>\r\n")) == Codes { 250 });
    CHECK(codes(c.send("HELO client.example\r\n")) == Codes { 250 });
    CHECK(codes(c.send("RCPT TO:<bob@test.example>\r\n")) == Codes { 503 });
}

// --- a transaction and what enqueue gets ---

TEST_CASE("transaction: submit with the envelope, the SMTP origin and canonical content")
{
    const MainConfig config = make_config();
    Client c(config, network_peer(true));
    c.greet();
    REQUIRE(codes(c.send("EHLO client.example\r\n")) == Codes { 250 });
    CHECK(c.send("MAIL FROM:<alice@remote.example> BODY=8BITMIME\r\n"
                 "RCPT TO:<bob@test.example>\r\n"
                 "RCPT TO:<carol@elsewhere.example>\r\n"
                 "DATA\r\n")
        == "250 2.1.0 OK <alice@remote.example> is a nice guy.\r\n"
           "250 2.1.5 OK <bob@test.example> is our friend.\r\n"
           "250 2.1.5 OK <carol@elsewhere.example> is our friend.\r\n"
           "354 okay, and do not forget the dot\r\n");
    CHECK(c.next() == Next::read);
    CHECK(c.send("Subject: hello\r\nX-Test: 1\r\n\r\n..starts with a dot\r\n..\r\n").empty());
    CHECK(c.next() == Next::read);
    CHECK(c.session().in_data());
    CHECK(c.send("..\r\nlast line\r\n.\r\n").empty());
    REQUIRE(c.next() == Next::submit);
    CHECK_FALSE(c.session().in_data());
    CHECK(c.pending().empty());

    const mm::protocol::SubmitRequest& r = c.session().submission();
    CHECK(r.sender == "alice@remote.example");
    CHECK(r.recipients == std::vector<std::string> { "bob@test.example", "carol@elsewhere.example" });
    CHECK_FALSE(r.extract_recipients);
    REQUIRE(r.smtp.has_value());
    CHECK(*r.smtp
        == SmtpOrigin { .protocol = "esmtp",
            .peer_address = "192.0.2.1",
            .helo_name = "client.example",
            .eight_bit_mime = true });
    CHECK(read_content(c.session().take_content())
        == "Subject: hello\nX-Test: 1\n\n.starts with a dot\n.\n.\nlast line\n");

    CHECK(c.submitted("1AbCdE-0001Xy-2z"s) == "250 2.0.0 OK id=1AbCdE-0001Xy-2z\r\n");
    CHECK(c.session().messages_accepted() == 1);
    // The transaction is over: RCPT needs a new MAIL, which is accepted.
    CHECK(codes(c.send("RCPT TO:<bob@test.example>\r\n")) == Codes { 503 });
    CHECK(codes(c.send("MAIL FROM:<>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n")) == Codes { 250, 250, 354 });
    CHECK(c.send(".\r\n").empty());
    REQUIRE(c.next() == Next::submit);
    CHECK(c.session().submission().sender == "<>");
    CHECK(c.session().submission().smtp->eight_bit_mime == false);
    CHECK(read_content(c.session().take_content()).empty());
}

TEST_CASE("transaction: the origin protocol is smtp after HELO, esmtp after EHLO, esmtps with TLS")
{
    const MainConfig config = make_config();
    struct Case {
        std::string hello;
        bool tls;
        std::string protocol;
    };
    const std::vector<Case> cases {
        { "HELO old.example", false, "smtp" },
        { "EHLO new.example", false, "esmtp" },
        { "EHLO new.example", true, "esmtps" },
    };
    for (const auto& k : cases) {
        INFO(k.hello << (k.tls ? " with TLS" : ""));
        Client c(config, tls_peer());
        if (k.tls) {
            c.greet();
            c.send("EHLO new.example\r\n");
            REQUIRE(codes(c.send("STARTTLS\r\n")) == Codes { 220 });
            c.start_tls();
            REQUIRE(codes(c.send(k.hello + "\r\n")) == Codes { 250 });
            REQUIRE(
                codes(c.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"))
                == Codes { 250, 250, 354 });
            REQUIRE(c.send("\r\nbody\r\n.\r\n").empty());
        } else {
            run_to_submit(c, k.hello);
        }
        REQUIRE(c.next() == Next::submit);
        const auto& origin = c.session().submission().smtp;
        REQUIRE(origin.has_value());
        CHECK(origin->protocol == k.protocol);
        CHECK(origin->helo_name == k.hello.substr(5));
        CHECK(origin->peer_address == "192.0.2.1");
        CHECK_FALSE(origin->eight_bit_mime);
    }
}

TEST_CASE("transaction: a message larger than the flush size comes back whole from the memfd")
{
    const MainConfig config = make_config();
    Client c(config, network_peer());
    c.greet();
    c.send("EHLO client.example\r\n");
    REQUIRE(codes(c.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"))
        == Codes { 250, 250, 354 });
    std::string content = "Subject: big\n\n";
    for (int i = 0; content.size() < 300 * 1024; ++i)
        content += (i % 7 == 0 ? ".dotted line " : "line ") + std::to_string(i) + std::string(60, 'x') + "\n";
    content += std::string(5000, 'y') + "\n"; // longer than 1000: accepted up to 64 KiB
    const std::string wire = wire_data(content);
    // In reads of 16 KiB, as the listener reads.
    for (std::size_t pos = 0; pos < wire.size(); pos += mm::limits::smtp_read_chunk) {
        CHECK(c.send(std::string_view(wire).substr(pos, mm::limits::smtp_read_chunk)).empty());
        CHECK(c.pending().empty());
    }
    REQUIRE(c.next() == Next::submit);
    CHECK(read_content(c.session().take_content()) == content);
}

// --- submitted ---

TEST_CASE("submitted: the queue id, 451, 452 for a full disk, 554 for a refusal")
{
    const MainConfig config = make_config();
    struct Case {
        Result<std::string> result;
        std::string reply;
    };
    const std::vector<Case> cases {
        { "QID-1"s, "250 2.0.0 OK id=QID-1\r\n" },
        { Error::temporary("enqueue: connection refused"), "451 4.3.0 Could not write spool file\r\n" },
        { Error::internal("enqueue: impossible state"), "451 4.3.0 Could not write spool file\r\n" },
        { Error::from_errno("write", ENOSPC), "452 4.3.1 write: No space left on device\r\n" },
        { Error::from_errno("write", EDQUOT), "452 4.3.1 write: Disk quota exceeded\r\n" },
        { Error::permanent("too many Received: headers"), "554 5.0.0 too many Received: headers\r\n" },
    };
    for (const auto& k : cases) {
        INFO(k.reply);
        Client c(config, network_peer());
        run_to_submit(c);
        CHECK(c.submitted(k.result) == k.reply);
        CHECK(c.session().messages_accepted() == (k.result ? 1u : 0u));
        // Either way the transaction is over and a new one may start.
        CHECK(codes(c.send("RCPT TO:<bob@test.example>\r\n")) == Codes { 503 });
        CHECK(codes(c.send("MAIL FROM:<alice@remote.example>\r\n")) == Codes { 250 });
    }
}

// --- relay control and addresses ---

TEST_CASE("relay: a client that may not relay reaches local recipients and postmaster only")
{
    const MainConfig config = make_config();
    Client c(config, network_peer(false));
    c.greet();
    c.send("EHLO client.example\r\n");
    CHECK(codes(c.send("MAIL FROM:<alice@test.example>\r\n")) == Codes { 250 });
    CHECK(c.send("RCPT TO:<carol@elsewhere.example>\r\n")
        == "550 5.7.1 relaying to <carol@elsewhere.example> denied.\r\n");
    CHECK(codes(c.send(
              "RCPT TO:<bob@test.example>\r\nRCPT TO:<bob@TEST.Example>\r\nRCPT TO:<root@localhost>\r\n"))
        == Codes { 250, 250, 250 });
    CHECK(c.send("RCPT TO:<postmaster>\r\n") == "250 2.1.5 OK <postmaster@test.example> is our friend.\r\n");
    CHECK(codes(c.send("RCPT TO:<Postmaster>\r\n")) == Codes { 250 });
    CHECK(codes(c.send("DATA\r\n")) == Codes { 354 });
    CHECK(c.send(".\r\n").empty());
    REQUIRE(c.next() == Next::submit);
    const auto& rcpts = c.session().submission().recipients;
    REQUIRE(rcpts.size() == 5);
    CHECK(rcpts[0] == "bob@test.example");
    CHECK(rcpts[3] == "postmaster@test.example");
}

TEST_CASE("relay: a client that may relay relays, with do_relay = false only for a local sender")
{
    const MainConfig open = make_config();
    Client a(open, network_peer(true));
    a.greet();
    a.send("EHLO client.example\r\n");
    CHECK(codes(a.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<carol@elsewhere.example>\r\n"))
        == Codes { 250, 250 });

    const MainConfig closed = make_config("do_relay = false\n");
    Client b(closed, network_peer(true));
    b.greet();
    b.send("EHLO client.example\r\n");
    CHECK(codes(b.send("MAIL FROM:<alice@remote.example>\r\n")) == Codes { 250 });
    CHECK(b.send("RCPT TO:<carol@elsewhere.example>\r\n")
        == "550 5.7.1 relaying to <carol@elsewhere.example> denied.\r\n");
    CHECK(codes(b.send("RCPT TO:<bob@test.example>\r\n")) == Codes { 250 }); // local: always
    CHECK(codes(b.send("RSET\r\nMAIL FROM:<>\r\nRCPT TO:<carol@elsewhere.example>\r\n"))
        == Codes { 250, 250, 550 });
    CHECK(codes(b.send("RSET\r\nMAIL FROM:<alice@test.example>\r\nRCPT TO:<carol@elsewhere.example>\r\n"))
        == Codes { 250, 250, 250 });

    // Not even a local sender makes a client that may not relay a relay.
    Client n(closed, network_peer(false));
    n.greet();
    n.send("EHLO client.example\r\n");
    CHECK(codes(n.send("MAIL FROM:<alice@test.example>\r\nRCPT TO:<carol@elsewhere.example>\r\n"))
        == Codes { 250, 550 });
}

TEST_CASE("addresses: unqualified paths are refused from the network and qualified for a local peer")
{
    const MainConfig config = make_config();
    Client net(config, network_peer(true));
    net.greet();
    net.send("EHLO client.example\r\n");
    CHECK(net.send("MAIL FROM:<alice>\r\n") == "501 5.1.7 return path must be qualified.\r\n");
    CHECK(codes(net.send("MAIL FROM:<alice@remote.example>\r\n")) == Codes { 250 });
    CHECK(net.send("RCPT TO:<bob>\r\n") == "501 5.1.3 recipient address must be qualified.\r\n");
    CHECK(codes(net.send("RCPT TO:<postmaster>\r\n")) == Codes { 250 });

    Client local(config, local_peer());
    local.greet();
    local.send("EHLO localhost\r\n");
    CHECK(local.send("MAIL FROM:<alice>\r\n") == "250 2.1.0 OK <alice@test.example> is a nice guy.\r\n");
    CHECK(local.send("RCPT TO:<bob>\r\n") == "250 2.1.5 OK <bob@test.example> is our friend.\r\n");
    CHECK(codes(local.send("DATA\r\n")) == Codes { 354 });
    CHECK(local.send("\r\nhi\r\n.\r\n").empty());
    REQUIRE(local.next() == Next::submit);
    const auto& r = local.session().submission();
    CHECK(r.sender == "alice@test.example");
    CHECK(r.recipients == std::vector<std::string> { "bob@test.example" });
    CHECK(r.smtp->peer_address.empty());
}

TEST_CASE("addresses: a pipe recipient is refused over SMTP, even from a local peer")
{
    const MainConfig config = make_config();
    for (const Peer& peer : { network_peer(true), local_peer() }) {
        INFO("peer address '" << peer.address << "'");
        Client c(config, peer);
        c.greet();
        c.send("EHLO client.example\r\n");
        CHECK(codes(c.send("MAIL FROM:<alice@test.example>\r\n")) == Codes { 250 });
        CHECK(c.send("RCPT TO:<\"|/bin/sh\"@test.example>\r\n")
            == "550 5.1.1 pipe addresses are not accepted over SMTP\r\n");
        CHECK(codes(c.send("RCPT TO:<|touch@test.example>\r\n")) == Codes { 550 });
        CHECK(codes(c.send("DATA\r\n")) == Codes { 503 });
    }
}

// --- limits ---

TEST_CASE("limits: recipients beyond max_recipients get 452 4.5.3 and do not count as errors")
{
    const MainConfig config = make_config("max_recipients = 3\n");
    Client c(config, network_peer());
    c.greet();
    c.send("EHLO client.example\r\n");
    CHECK(codes(c.send("MAIL FROM:<alice@remote.example>\r\n")) == Codes { 250 });
    std::string rcpts;
    for (int i = 0; i < 30; ++i)
        rcpts += "RCPT TO:<user" + std::to_string(i) + "@test.example>\r\n";
    std::string replies = c.send(rcpts);
    Codes expected(3, 250);
    expected.resize(30, 452);
    CHECK(codes(replies) == expected);
    CHECK_THAT(replies, EndsWith("452 4.5.3 Too many recipients\r\n"));
    CHECK(c.next() == Next::read); // 27 refusals, and no 421
    CHECK(codes(c.send("DATA\r\n")) == Codes { 354 });
    CHECK(c.send(".\r\n").empty());
    REQUIRE(c.next() == Next::submit);
    CHECK(c.session().submission().recipients.size() == 3);
}

TEST_CASE("limits: the 20th error gets 421 and the connection closes")
{
    const MainConfig config = make_config();
    Client c(config, network_peer());
    c.greet();
    // Every kind of refusal counts.
    const std::vector<std::string> refused { "BOGUS\r\n", "MAIL FROM:<alice@remote.example>\r\n",
        "EXPN staff\r\n", "NOOP\n", "VRFY\r\n", "HELO\r\n", "STARTTLS\r\n" };
    for (std::size_t i = 0; i < 19; ++i) {
        INFO(i);
        std::string reply = c.send(refused[i % refused.size()]);
        CHECK(codes(reply).size() == 1);
        CHECK(reply[0] == '5');
        REQUIRE(c.next() == Next::read);
    }
    CHECK(c.send("BOGUS\r\nNOOP\r\n")
        == "500 5.5.1 Command unrecognized\r\n421 4.7.0 test.example Error: too many errors\r\n");
    CHECK(c.next() == Next::close);
    CHECK(c.pending().empty());

    // Pipelined: the 20th refusal ends it, the rest is never processed.
    Client p(config, network_peer());
    p.greet();
    std::string junk;
    for (int i = 0; i < 25; ++i)
        junk += "BOGUS\r\n";
    Codes expected(20, 500);
    expected.push_back(421);
    CHECK(codes(p.send(junk + "QUIT\r\n")) == expected);
    CHECK(p.next() == Next::close);
    CHECK(p.pending().empty());
}

TEST_CASE("limits: a message over max_msg_size is refused, declared or not")
{
    const MainConfig config = make_config("max_msg_size = 1000\n");
    Client c(config, network_peer());
    c.greet();
    c.send("EHLO client.example\r\n");
    CHECK(codes(c.send("MAIL FROM:<alice@remote.example> SIZE=1001\r\n")) == Codes { 552 });
    CHECK(codes(c.send("MAIL FROM:<alice@remote.example> SIZE=900\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"))
        == Codes { 250, 250, 354 });
    CHECK(c.send("Subject: big\r\n\r\n" + std::string(2000, 'x') + "\r\n.\r\n")
        == "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
    CHECK(c.next() == Next::read);
    CHECK_FALSE(c.session().in_data());
}

TEST_CASE("limits: a header section over 100 KiB is refused with 552 after the final dot")
{
    const MainConfig config = make_config();
    // 1024 header lines of 100 octets with their LF: exactly the limit.
    std::string header;
    for (int i = 0; i < 1024; ++i) {
        std::string line = "X-Fill-" + std::to_string(i) + ": ";
        header += line + std::string(99 - line.size(), 'h') + "\n";
    }
    REQUIRE(header.size() == mm::limits::header_section);
    for (bool over : { false, true }) {
        INFO((over ? "one octet over" : "at the limit"));
        Client c(config, network_peer());
        c.greet();
        c.send("EHLO client.example\r\n");
        REQUIRE(codes(c.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"))
            == Codes { 250, 250, 354 });
        std::string content = (over ? "X: 1\n"s : ""s) + header.substr(over ? 4 : 0) + "\nbody\n";
        REQUIRE(content.find("\n\n") + 1 == mm::limits::header_section + (over ? 1 : 0));
        std::string reply = c.send(wire_data(content));
        if (over) {
            CHECK(reply == "552 5.3.4 Message header section exceeds fixed maximum size\r\n");
            CHECK(c.next() == Next::read);
        } else {
            CHECK(reply.empty());
            REQUIRE(c.next() == Next::submit);
            CHECK(read_content(c.session().take_content()) == content);
        }
    }
}

TEST_CASE("limits: a long body after a short or empty header section is not a long header")
{
    const MainConfig config = make_config();
    std::string body;
    while (body.size() < 200 * 1024)
        body += "a body line without a blank line after it\n";
    for (const std::string& header : { "Subject: x\n\n"s, "\n"s }) {
        INFO("header section: " << shown(header));
        Client c(config, network_peer());
        c.greet();
        c.send("EHLO client.example\r\n");
        REQUIRE(codes(c.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"))
            == Codes { 250, 250, 354 });
        // RFC 5322 §2.1: the header section ends at the first empty line, the
        // first line itself when there are no header fields.
        CHECK(shown(c.send(wire_data(header + body))) == "");
        REQUIRE(c.next() == Next::submit);
        CHECK(read_content(c.session().take_content()) == header + body);
    }
}

// --- pipelining and synchronization ---

TEST_CASE("pipelining: several commands in one read get their replies in order")
{
    const MainConfig config = make_config();
    Client c(config, network_peer());
    c.greet();
    c.send("EHLO client.example\r\n");
    CHECK(codes(c.send("MAIL FROM:<alice@remote.example>\r\n"
                       "RCPT TO:<bob@test.example>\r\n"
                       "RCPT TO:<carol@elsewhere.example>\r\n"
                       "RCPT TO:<dave>\r\n"
                       "NOOP\r\n"
                       "VRFY bob\r\n"
                       "BOGUS\r\n"
                       "RCPT TO:<erin@test.example>\r\n"
                       "DATA\r\n"))
        == Codes { 250, 250, 550, 501, 250, 252, 500, 250, 354 });
    CHECK(c.next() == Next::read);
    // A line cut between reads waits for its end.
    CHECK(c.send("Subject: x\r\n\r\nbody\r\n.\r").empty());
    CHECK(c.next() == Next::read);
    CHECK(c.send("\n").empty());
    REQUIRE(c.next() == Next::submit);
    CHECK(c.session().submission().recipients
        == std::vector<std::string> { "bob@test.example", "erin@test.example" });
}

TEST_CASE("synchronization: input after EHLO, HELO or DATA in the same read gets 554 5.5.0 and close")
{
    const MainConfig config = make_config();
    const std::string sync_error = "554 5.5.0 Error: SMTP protocol synchronization\r\n";
    for (const std::string& hello : { "EHLO client.example\r\n"s, "HELO client.example\r\n"s }) {
        INFO(hello);
        Client c(config, network_peer());
        c.greet();
        CHECK(c.send(hello + "MAIL FROM:<alice@remote.example>\r\n") == sync_error);
        CHECK(c.next() == Next::close);
        CHECK(c.pending().empty());
    }
    Client d(config, network_peer());
    d.greet();
    d.send("EHLO client.example\r\n");
    CHECK(d.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"
                 "Subject: smuggled\r\n\r\nbody\r\n.\r\n")
        == "250 2.1.0 OK <alice@remote.example> is a nice guy.\r\n"
           "250 2.1.5 OK <bob@test.example> is our friend.\r\n"
            + sync_error);
    CHECK(d.next() == Next::close);
    CHECK(d.pending().empty());
}

TEST_CASE("synchronization: without enforcement a whole session in one read is processed")
{
    const MainConfig config = make_config();
    Peer peer = network_peer();
    peer.enforce_synchronization = false;
    Client c(config, peer);
    c.greet();
    CHECK(codes(c.send("EHLO client.example\r\nMAIL FROM:<alice@remote.example>\r\n")) == Codes { 250, 250 });
    CHECK(codes(c.send("RCPT TO:<bob@test.example>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"))
        == Codes { 250, 354 });
    REQUIRE(c.next() == Next::submit);
    CHECK(c.pending() == "QUIT\r\n");
    CHECK(read_content(c.session().take_content()) == "Subject: x\n\nbody\n");
    CHECK(c.submitted("Q1"s) == "250 2.0.0 OK id=Q1\r\n");
    CHECK(c.send("") == "221 2.0.0 goodbye\r\n");
    CHECK(c.next() == Next::close);
}

// --- STARTTLS ---

TEST_CASE("STARTTLS: nothing read with it is processed, before or after TLS (CVE-2011-0411)")
{
    const MainConfig config = make_config();
    for (bool enforce : { true, false }) {
        INFO("enforce_synchronization " << enforce);
        Peer peer = tls_peer();
        peer.enforce_synchronization = enforce;
        Client c(config, peer);
        c.greet();
        c.send("EHLO client.example\r\n");
        CHECK(codes(c.send("MAIL FROM:<alice@remote.example>\r\n")) == Codes { 250 });
        CHECK(c.send("STARTTLS\r\nMAIL FROM:<evil@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n")
            == "220 2.0.0 Ready to start TLS\r\n");
        CHECK(c.next() == Next::start_tls);
        CHECK(c.pending().empty());
        c.start_tls();
        // The session starts over: no HELO, no transaction.
        CHECK(c.send("MAIL FROM:<alice@remote.example>\r\n") == "503 5.5.1 need HELO or EHLO\r\n");
        CHECK(codes(c.send("EHLO client.example\r\n")) == Codes { 250 });
        CHECK(codes(c.send("RCPT TO:<bob@test.example>\r\n")) == Codes { 503 });
        CHECK(c.send("STARTTLS\r\n") == "503 5.5.1 TLS already active\r\n");
        CHECK(c.next() == Next::read);
    }
}

TEST_CASE("STARTTLS: a partial line read with it is dropped, not joined to what follows")
{
    const MainConfig config = make_config();
    Client c(config, tls_peer());
    c.greet();
    c.send("EHLO client.example\r\n");
    CHECK(codes(c.send("STARTTLS\r\nMAIL FR")) == Codes { 220 });
    CHECK(c.pending().empty());
    c.start_tls();
    CHECK(codes(c.send("OM:<evil@remote.example>\r\n")) == Codes { 500 });
}

TEST_CASE("STARTTLS: refused without a TLS context or with an argument")
{
    const MainConfig config = make_config();
    Client c(config, network_peer());
    c.greet();
    c.send("EHLO client.example\r\n");
    CHECK(c.send("STARTTLS\r\n") == "502 5.5.1 STARTTLS not available\r\n");
    CHECK(c.next() == Next::read);
    Client t(config, tls_peer());
    t.greet();
    t.send("EHLO client.example\r\n");
    CHECK(codes(t.send("STARTTLS now\r\n")) == Codes { 501 });
    CHECK(t.next() == Next::read);
}

// --- DATA smuggling ---

TEST_CASE("DATA: a bare LF, a bare CR or a NUL refuses the message after the final dot")
{
    const MainConfig config = make_config();
    struct Case {
        std::string data;
        std::string reply;
    };
    const std::string bad_ending = "550 5.5.2 Bare CR or LF in message data; lines must end with CRLF\r\n";
    const std::vector<Case> cases {
        { "Subject: x\r\n\r\nline one\nline two\r\n", bad_ending },
        { "Subject: x\r\n\r\nline one\rline two\r\n", bad_ending },
        { "Subject: x\n\r\nbody\r\n", bad_ending },
        { "Subject: x\r\n\r\nbody\r\r\n", bad_ending },
        { "Subject: x\r\n\r\na\0b\r\n"s, "554 5.6.0 NUL character in message data\r\n" },
    };
    for (const auto& k : cases) {
        INFO(shown(k.data));
        Client c(config, network_peer());
        c.greet();
        c.send("EHLO client.example\r\n");
        REQUIRE(codes(c.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"))
            == Codes { 250, 250, 354 });
        CHECK(c.send(k.data).empty());
        CHECK(c.session().in_data());
        CHECK(c.send(".\r\n") == k.reply);
        CHECK(c.next() == Next::read);
        CHECK_FALSE(c.session().in_data());
        // The transaction is gone; the session goes on.
        CHECK(codes(c.send("RCPT TO:<bob@test.example>\r\n")) == Codes { 503 });
        CHECK(codes(c.send("MAIL FROM:<alice@remote.example>\r\n")) == Codes { 250 });
    }
}

TEST_CASE("DATA: only CRLF.CRLF ends it; smuggled commands after LF.LF are message text")
{
    const MainConfig config = make_config();
    for (const std::string& fake_end : { "\n.\n"s, "\n.\r\n"s, "\r\n.\n"s, "\r.\r\n"s, "\r\n.\r"s }) {
        INFO("fake end: " << shown(fake_end));
        Client c(config, network_peer());
        c.greet();
        c.send("EHLO client.example\r\n");
        REQUIRE(codes(c.send("MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"))
            == Codes { 250, 250, 354 });
        CHECK(c.send("Subject: x\r\n\r\nbody" + fake_end
                   + "MAIL FROM:<evil@remote.example>\r\nRCPT TO:<victim@test.example>\r\nDATA\r\n"
                     "Subject: smuggled\r\n\r\nevil\r\n")
                  .empty());
        CHECK(c.next() == Next::read);
        CHECK(c.session().in_data());
        CHECK(codes(c.send(".\r\n")) == Codes { 550 });
        CHECK(c.next() == Next::read);
        // The smuggled MAIL was never a command.
        CHECK(codes(c.send("RCPT TO:<bob@test.example>\r\n")) == Codes { 503 });
    }
}

// --- other commands ---

TEST_CASE("commands: QUIT 221 and close, VRFY 252, EXPN 502, HELP 214, NOOP and RSET 250")
{
    const MainConfig config = make_config();
    Client c(config, network_peer());
    c.greet();
    CHECK(c.send("NOOP\r\n") == "250 2.0.0 OK\r\n");
    CHECK(c.send("RSET\r\n") == "250 2.0.0 OK\r\n");
    CHECK(c.send("VRFY bob\r\n")
        == "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n");
    CHECK(c.send("EXPN staff\r\n") == "502 5.5.1 EXPN not available\r\n");
    std::string help = c.send("HELP\r\n");
    CHECK(codes(help) == Codes { 214 });
    CHECK_THAT(help, StartsWith("214-2.0.0 supported commands:\r\n"));
    CHECK(c.next() == Next::read);
    CHECK(c.send("QUIT\r\nNOOP\r\n") == "221 2.0.0 goodbye\r\n");
    CHECK(c.next() == Next::close);
    CHECK(c.pending().empty());
}

TEST_CASE("commands: HELP names each command once, STARTTLS only when offered and not yet active")
{
    const MainConfig config = make_config();
    for (bool tls : { false, true }) {
        INFO("tls_available " << tls);
        Peer peer = network_peer();
        peer.tls_available = tls;
        Client c(config, peer);
        c.greet();
        std::string help = c.send("HELP\r\n");
        std::vector<std::string> names;
        for (std::size_t start = 0; start < help.size();) {
            std::size_t end = help.find("\r\n", start);
            REQUIRE(end != std::string::npos);
            REQUIRE(end - start > 10);
            names.push_back(help.substr(start + 10, end - start - 10)); // after "214-2.0.0 "
            start = end + 2;
        }
        INFO(shown(help));
        for (const std::string& name : names)
            CHECK(std::count(names.begin(), names.end(), name) == 1);
        for (const char* verb :
            { "HELO", "EHLO", "MAIL FROM:", "RCPT TO:", "DATA", "RSET", "NOOP", "QUIT", "HELP" })
            CHECK(std::count(names.begin(), names.end(), verb) == 1);
        CHECK(std::count(names.begin(), names.end(), "STARTTLS") == (tls ? 1 : 0));
    }
    // As in the EHLO reply, STARTTLS is gone once TLS is active.
    Client c(config, tls_peer());
    c.greet();
    c.send("EHLO client.example\r\n");
    REQUIRE(codes(c.send("STARTTLS\r\n")) == Codes { 220 });
    c.start_tls();
    std::string help = c.send("HELP\r\n");
    CHECK(codes(help) == Codes { 214 });
    CHECK_THAT(help, !Contains("STARTTLS"));
}

TEST_CASE("commands: a timeout and a shutdown say 421")
{
    const MainConfig config = make_config();
    Session s(config, network_peer());
    std::string out;
    s.timed_out(out);
    CHECK(out == "421 4.4.2 test.example Error: timeout exceeded\r\n");
    out.clear();
    s.shutting_down(out);
    CHECK(out == "421 4.3.2 test.example service shutting down\r\n");
}

// --- chunking ---

TEST_CASE("chunking: a session cut anywhere gets the same replies as in one read")
{
    const MainConfig config = make_config("max_recipients = 100\n");
    Peer peer = network_peer();
    peer.enforce_synchronization = false; // so that one read of a whole session is allowed
    peer.tls_available = true;
    const std::vector<std::string> scripts {
        // A normal session with two messages.
        "EHLO client.example\r\nMAIL FROM:<alice@remote.example> BODY=8BITMIME\r\n"
        "RCPT TO:<bob@test.example>\r\nRCPT TO:<carol@elsewhere.example>\r\nRCPT TO:<postmaster>\r\n"
        "DATA\r\nSubject: hello\r\nX-Test: 1\r\n\r\n..leading dot\r\nline\r\n.\r\n"
        "MAIL FROM:<>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n.\r\nQUIT\r\n",
        // Errors, a long line, a bare LF in a command, then a HELO session.
        "BOGUS\r\nMAIL FROM:<a@b.example>\r\nNOOP " + std::string(600, 'x')
            + "\r\nVRFY bob\r\nEXPN staff\r\n"
              "HELP\r\nHELO client\r\nMAIL FROM:<alice>\r\nRSET\r\nNOOP\n\r\nNOOP\r\n\r\nMAIL "
              "FROM:<a@remote.example>\r\n"
              "RCPT TO:<bob@test.example>\r\nDATA\r\n"
            + std::string(1500, 'L') + "\r\n.\r\nQUIT\r\nNOOP\r\n",
        // DATA smuggling, then a good message.
        "EHLO client.example\r\nMAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"
        "Subject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@remote.example>\r\nRCPT TO:<victim@test.example>\r\n"
        "DATA\r\nevil\r\n.\r\nRCPT TO:<bob@test.example>\r\nMAIL FROM:<alice@remote.example>\r\n"
        "RCPT TO:<bob@test.example>\r\nDATA\r\nnul\0here\r\n.\r\n"s
        "MAIL FROM:<alice@remote.example>\r\nRCPT TO:<bob@test.example>\r\nDATA\r\n"
        "Subject: ok\r\n\r\n..\r\n...x\r\n.\r\nQUIT\r\n",
        // Too many errors.
        [] {
            std::string s = "EHLO client.example\r\n";
            for (int i = 0; i < 22; ++i)
                s += i % 2 ? "RCPT TO:<x@elsewhere.example>\r\n" : "XYZZY\r\n";
            return s + "QUIT\r\n";
        }(),
        // STARTTLS as the last command.
        "EHLO client.example\r\nMAIL FROM:<alice@remote.example>\r\nSTARTTLS\r\n",
    };
    for (const std::string& script : scripts) {
        const std::string whole = play(config, peer, script, {});
        INFO("script: " << shown(script));
        INFO("transcript: " << shown(whole));
        CHECK((whole.find("[close]") != std::string::npos || whole.find("[tls]") != std::string::npos));
        std::vector<std::size_t> every;
        for (std::size_t cut = 1; cut < script.size(); ++cut) {
            every.push_back(cut);
            std::string split = play(config, peer, script, { cut });
            if (split != whole) {
                FAIL_CHECK("cut at " << cut << " gives " << shown(split));
                break;
            }
        }
        CHECK(play(config, peer, script, every) == whole);
        std::mt19937 random(4242);
        for (int round = 0; round < 30; ++round) {
            std::vector<std::size_t> cuts;
            for (std::size_t pos = 0;;) {
                pos += std::uniform_int_distribution<std::size_t>(1, 40)(random);
                if (pos >= script.size())
                    break;
                cuts.push_back(pos);
            }
            CHECK(play(config, peer, script, cuts) == whole);
        }
    }
}
