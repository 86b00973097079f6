// SPDX-License-Identifier: GPL-2.0-or-later
// The SMTP client: reply parsing (hostile servers), EHLO keywords, the DATA
// encoding, and whole sessions against a scripted server on a socketpair.
#include "catch.hh"

#include "mm/smtp_client.hh"

#include <functional>
#include <map>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using mm::smtp::ClientOptions;
using mm::smtp::ClientSession;
using mm::smtp::DataEncoder;
using mm::smtp::OutgoingMessage;
using mm::smtp::ReplyReader;
using mm::smtp::ServerReply;
using Kind = mm::smtp::RecipientOutcome::Kind;

namespace {

std::vector<ServerReply> replies_of(std::string_view bytes, bool* failed = nullptr)
{
    ReplyReader reader;
    std::vector<ServerReply> out;
    if (failed)
        *failed = false;
    if (!reader.feed(bytes)) {
        if (failed)
            *failed = true;
        return out;
    }
    for (;;) {
        auto r = reader.next();
        if (!r) {
            if (failed)
                *failed = true;
            return out;
        }
        if (!*r)
            return out;
        out.push_back(std::move(**r));
    }
}

std::string encoded(std::string_view content)
{
    DataEncoder e;
    std::string out;
    e.encode(content, out);
    e.finish(out);
    return out;
}

// A server on one end of a socketpair: greets, then answers each command
// line with what `answer` returns ("" = no reply), taking DATA content up to
// the dot. Everything it read is kept.
class ScriptedServer {
public:
    using Answer = std::function<std::string(const std::string& line)>;
    explicit ScriptedServer(Answer answer, std::string greeting = "220 mx.test ESMTP\r\n")
    {
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        client_fd = sv[0];
        server_fd_ = sv[1];
        thread_ = std::thread([this, answer = std::move(answer), greeting] { run(answer, greeting); });
    }
    ~ScriptedServer()
    {
        join();
        ::close(client_fd);
        ::close(server_fd_);
    }
    // Ends the conversation (the server sees end of stream) and waits for
    // the server: lines and messages are complete afterwards.
    void join()
    {
        if (!thread_.joinable())
            return;
        ::shutdown(client_fd, SHUT_RDWR);
        thread_.join();
    }
    int client_fd = -1;
    std::vector<std::string> lines; // commands as received, without CRLF
    std::vector<std::string> messages; // DATA contents as received, up to and without ".\r\n"

private:
    void send(const std::string& s) { (void)!::write(server_fd_, s.data(), s.size()); }
    void run(const Answer& answer, const std::string& greeting)
    {
        send(greeting);
        std::string buffer;
        bool in_data = false;
        std::string data;
        char chunk[4096];
        for (;;) {
            ssize_t n = ::read(server_fd_, chunk, sizeof chunk);
            if (n <= 0)
                return;
            buffer.append(chunk, static_cast<std::size_t>(n));
            std::size_t end;
            while ((end = buffer.find("\r\n")) != std::string::npos) {
                std::string line = buffer.substr(0, end);
                buffer.erase(0, end + 2);
                if (in_data) {
                    if (line == ".") {
                        in_data = false;
                        messages.push_back(data);
                        data.clear();
                        send(answer("."));
                    } else {
                        data += line + "\r\n";
                    }
                    continue;
                }
                lines.push_back(line);
                std::string reply = answer(line);
                if (line == "DATA" && reply.starts_with("354"))
                    in_data = true;
                send(reply);
                if (line == "QUIT")
                    return;
            }
        }
    }
    int server_fd_ = -1;
    std::thread thread_;
};

ClientOptions options()
{
    ClientOptions o;
    o.helo_name = "laptop.example";
    o.server_name = "mx.test";
    o.tls = mm::smtp::TlsPolicy::none;
    o.command_timeout = std::chrono::seconds(5);
    o.greeting_timeout = std::chrono::seconds(5);
    o.final_timeout = std::chrono::seconds(5);
    return o;
}

OutgoingMessage message(std::string content, std::vector<std::string> rcpts, std::string from = "alice@example.org")
{
    OutgoingMessage m;
    m.return_path = std::move(from);
    m.recipients = std::move(rcpts);
    m.size = DataEncoder::wire_size(content);
    auto given = std::make_shared<bool>(false);
    m.next_chunk = [content = std::move(content), given](std::string& out) -> mm::Result<bool> {
        if (!*given)
            out += content;
        *given = true;
        return false;
    };
    return m;
}

std::string ehlo_reply(std::string keywords)
{
    return "250-mx.test hello\r\n" + keywords + "250 HELP\r\n";
}

} // namespace

TEST_CASE("replies: single, multi-line, enhanced codes, bare LF")
{
    auto r = replies_of("220 mx.test ESMTP ready\r\n250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
                        "550 5.1.1 <x@y>: no such user\n354\r\n");
    REQUIRE(r.size() == 4);
    CHECK(r[0].code == 220);
    CHECK(r[0].lines == std::vector<std::string> { "mx.test ESMTP ready" });
    CHECK(r[1].lines.size() == 3);
    CHECK(r[2].enhanced == "5.1.1");
    CHECK(r[2].kind() == 5);
    CHECK(r[3].code == 354);
    CHECK(r[3].lines == std::vector<std::string> { "" });
    CHECK(r[1].summary() == "250 mx.test / PIPELINING / SIZE 1000");
    // An enhanced code of the wrong class is text.
    CHECK(replies_of("450 5.1.1 hmm\r\n")[0].enhanced.empty());
}

TEST_CASE("replies: a partial reply waits; hostile ones are errors")
{
    bool failed = false;
    CHECK(replies_of("250-one\r\n250 tw", &failed).empty());
    CHECK_FALSE(failed);
    for (std::string bad : { std::string("hello\r\n"), std::string("25\r\n"), std::string("199 x\r\n"),
             std::string("600 x\r\n"), std::string("250-a\r\n251 b\r\n"), std::string("250_x\r\n"),
             std::string(5000, '2') + "\r\n", std::string(5000, 'x') }) {
        CAPTURE(bad.substr(0, 20));
        (void)replies_of(bad, &failed);
        CHECK(failed);
    }
    std::string many;
    for (int i = 0; i < 200; ++i)
        many += "250-line\r\n";
    (void)replies_of(many + "250 end\r\n", &failed);
    CHECK(failed);
    // Summaries are printable and bounded.
    auto r = replies_of("550 bad\x01\x7f\xff text " + std::string(2000, 'y') + "\r\n");
    REQUIRE(r.size() == 1);
    CHECK(r[0].summary().size() == 512);
    CHECK(r[0].summary().starts_with("550 bad??? text"));
}

TEST_CASE("EHLO keywords")
{
    auto r = replies_of("250-mx.test\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-STARTTLS\r\n"
                        "250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN login CRAM-MD5\r\n250 AUTH=XOAUTH2\r\n");
    auto c = mm::smtp::parse_ehlo(r.at(0));
    CHECK(c.pipelining);
    CHECK(c.size);
    CHECK(c.max_size == 35882577);
    CHECK(c.eight_bit_mime);
    CHECK(c.starttls);
    CHECK(c.enhanced_status_codes);
    CHECK(c.offers_auth("plain"));
    CHECK(c.offers_auth("LOGIN"));
    CHECK(c.offers_auth("cram-md5"));
    CHECK(c.offers_auth("XOAUTH2"));
    CHECK_FALSE(c.offers_auth("GSSAPI"));
    // The greeting line is no keyword list.
    auto g = mm::smtp::parse_ehlo(replies_of("250 PIPELINING\r\n").at(0));
    CHECK_FALSE(g.pipelining);
    auto bare = mm::smtp::parse_ehlo(replies_of("250-x\r\n250 SIZE\r\n").at(0));
    CHECK(bare.size);
    CHECK(bare.max_size == 0);
}

TEST_CASE("DATA encoding: CRLF, dot-stuffing, long lines cut, final line end, size")
{
    CHECK(encoded("Subject: x\n\n.hidden\n..two\nend\n") == "Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n");
    CHECK(encoded("a: b\n\nno final newline") == "a: b\r\n\r\nno final newline\r\n.\r\n");
    CHECK(encoded("") == ".\r\n");
    CHECK(encoded("x: y\n\n.\n") == "x: y\r\n\r\n..\r\n.\r\n");
    std::string body_line(2500, 'b');
    std::string out = encoded("h: v\n\n" + body_line + "\n");
    CHECK(out == "h: v\r\n\r\n" + std::string(998, 'b') + "\r\n" + std::string(998, 'b') + "\r\n"
            + std::string(504, 'b') + "\r\n.\r\n");
    std::string header = "X-Long: " + std::string(1200, 'h') + "\n\nbody\n";
    out = encoded(header);
    CHECK(out.substr(0, 1000) == "X-Long: " + std::string(990, 'h') + "\r\n");
    CHECK(out.substr(1000, 2) == " h");
    // A cut that puts a dot at a line start is stuffed.
    out = encoded("a: b\n\n" + std::string(998, 'c') + ".x\n");
    CHECK(out == "a: b\r\n\r\n" + std::string(998, 'c') + "\r\n..x\r\n.\r\n");
    // Chunks may split anywhere.
    DataEncoder e;
    std::string chunked;
    for (char c : std::string("s: 1\n\n.a\n.b\n"))
        e.encode(std::string_view(&c, 1), chunked);
    e.finish(chunked);
    CHECK(chunked == "s: 1\r\n\r\n..a\r\n..b\r\n.\r\n");
    CHECK(DataEncoder::wire_size("a\nb\n") == 6);
    CHECK(DataEncoder::wire_size("a\nb") == 6);
    // No bare CR or LF can come out.
    out = encoded("a: b\r\n\nx\ry\n");
    CHECK(out == "a: b\r\n\r\nxy\r\n.\r\n");
}

TEST_CASE("DATA encoding: a header line over 998 octets is folded before a space it has, adding nothing")
{
    // RFC 5322 §2.2.3: folding inserts CRLF before existing white space, so
    // unfolding (removing those CRLFs) gives the header back (user-needs F6).
    std::string words;
    for (int i = 0; i < 600; ++i)
        words += " w" + std::to_string(i);
    std::string out = encoded("Subject:" + words + "\nTo: x\n\nbody\n");
    std::string head = out.substr(0, out.find("\r\n\r\n") + 2);
    std::size_t at = 0;
    for (std::size_t crlf; (crlf = head.find("\r\n", at)) != std::string::npos; at = crlf + 2)
        CHECK(crlf - at <= 998);
    std::string unfolded;
    for (std::size_t i = 0; i < head.size(); ++i) {
        if (head.compare(i, 2, "\r\n") == 0 && i + 2 < head.size() && (head[i + 2] == ' ' || head[i + 2] == '\t'))
            ++i;
        else
            unfolded += head[i];
    }
    CHECK(unfolded == "Subject:" + words + "\r\nTo: x\r\n");
    // Split into chunks anywhere, the same.
    DataEncoder e;
    std::string chunked;
    std::string content = "Subject:" + words + "\nTo: x\n\nbody\n";
    for (std::size_t i = 0; i < content.size(); i += 7)
        e.encode(std::string_view(content).substr(i, 7), chunked);
    e.finish(chunked);
    CHECK(chunked == out);
    // A tab is white space as well; a line without any is still cut.
    out = encoded("X-T: a\t" + std::string(1200, 't') + "\n\nb\n");
    CHECK(out.substr(0, 8) == "X-T: a\r\n");
    CHECK(out.substr(8, 2) == "\tt");
}

TEST_CASE("session: EHLO, pipelined transaction, per-recipient results")
{
    ScriptedServer server([](const std::string& line) -> std::string {
        if (line.starts_with("EHLO"))
            return ehlo_reply("250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n");
        if (line.starts_with("MAIL"))
            return "250 2.1.0 ok\r\n";
        if (line == "RCPT TO:<bad@example.net>")
            return "550 5.1.1 no such user\r\n";
        if (line == "RCPT TO:<later@example.net>")
            return "451 4.3.0 try later\r\n";
        if (line.starts_with("RCPT"))
            return "250 2.1.5 ok\r\n";
        if (line == "DATA")
            return "354 go\r\n";
        if (line == ".")
            return "250 2.0.0 queued as X\r\n";
        if (line == "QUIT")
            return "221 bye\r\n";
        return "500 what\r\n";
    });
    mm::smtp::SocketTransport t(server.client_fd);
    ClientSession s(t, options());
    REQUIRE(s.open());
    CHECK(s.capabilities().pipelining);
    auto m = message("Subject: hi\n\n.dot\n", { "bob@example.net", "bad@example.net", "later@example.net" });
    m.eight_bit_mime = true;
    auto out = s.send(m);
    s.quit();
    REQUIRE(out.recipients.size() == 3);
    CHECK(out.recipients[0].kind == Kind::delivered);
    CHECK(out.recipients[0].reply == "250 2.0.0 queued as X");
    CHECK(out.recipients[1].kind == Kind::failed);
    CHECK(out.recipients[1].enhanced == "5.1.1");
    CHECK(out.recipients[2].kind == Kind::deferred);
    CHECK(out.connection_usable);
    server.join();
    CHECK(server.lines
        == std::vector<std::string> { "EHLO laptop.example", "MAIL FROM:<alice@example.org> SIZE=21 BODY=8BITMIME",
            "RCPT TO:<bob@example.net>", "RCPT TO:<bad@example.net>", "RCPT TO:<later@example.net>", "DATA",
            "QUIT" });
    REQUIRE(server.messages.size() == 1);
    CHECK(server.messages[0] == "Subject: hi\r\n\r\n..dot\r\n");
}

TEST_CASE("session: HELO after a 5xx to EHLO; no pipelining; RSET only after a failed transaction")
{
    int mails = 0;
    ScriptedServer server([&mails](const std::string& line) -> std::string {
        if (line.starts_with("EHLO"))
            return "502 5.5.1 what is EHLO\r\n";
        if (line.starts_with("HELO"))
            return "250 mx.test\r\n";
        if (line.starts_with("MAIL"))
            return ++mails == 1 ? "550 5.7.1 not you\r\n" : "250 ok\r\n";
        if (line.starts_with("RCPT"))
            return "250 ok\r\n";
        if (line == "DATA")
            return "354 go\r\n";
        if (line == ".")
            return "250 ok\r\n";
        if (line == "RSET")
            return "250 reset\r\n";
        if (line == "QUIT")
            return "221 bye\r\n";
        return "500 what\r\n";
    });
    mm::smtp::SocketTransport t(server.client_fd);
    ClientSession s(t, options());
    REQUIRE(s.open());
    CHECK_FALSE(s.capabilities().esmtp);
    auto first = s.send(message("a: 1\n\nx\n", { "bob@example.net" }));
    CHECK(first.recipients[0].kind == Kind::failed);
    CHECK(first.recipients[0].reply.starts_with("MAIL FROM: 550"));
    auto second = s.send(message("a: 2\n\ny\n", { "bob@example.net" }));
    auto third = s.send(message("a: 3\n\nz\n", { "carol@example.net" }));
    s.quit();
    server.join();
    CHECK(second.recipients[0].kind == Kind::delivered);
    CHECK(third.recipients[0].kind == Kind::delivered);
    CHECK(server.lines
        == std::vector<std::string> { "EHLO laptop.example", "HELO laptop.example", "MAIL FROM:<alice@example.org>",
            "RSET", "MAIL FROM:<alice@example.org>", "RCPT TO:<bob@example.net>", "DATA",
            "MAIL FROM:<alice@example.org>", "RCPT TO:<carol@example.net>", "DATA", "QUIT" });
}

TEST_CASE("session: a lost connection after the final dot defers; SIZE over the limit fails at once")
{
    ScriptedServer server([](const std::string& line) -> std::string {
        if (line.starts_with("EHLO"))
            return ehlo_reply("250-SIZE 50\r\n");
        if (line.starts_with("MAIL") || line.starts_with("RCPT"))
            return "250 ok\r\n";
        if (line == "DATA")
            return "354 go\r\n";
        return ""; // no reply to the dot
    });
    mm::smtp::SocketTransport t(server.client_fd);
    ClientOptions o = options();
    o.final_timeout = std::chrono::milliseconds(300);
    ClientSession s(t, o);
    REQUIRE(s.open());
    auto big = s.send(message("a: b\n\n" + std::string(100, 'x') + "\n", { "bob@example.net" }));
    CHECK(big.recipients[0].kind == Kind::failed);
    CHECK(big.recipients[0].enhanced == "5.3.4");
    CHECK(big.connection_usable);
    auto lost = s.send(message("a: b\n\nsmall\n", { "bob@example.net" }));
    CHECK(lost.recipients[0].kind == Kind::deferred);
    CHECK_FALSE(lost.connection_usable);
    auto after = s.send(message("a: b\n\nnext\n", { "bob@example.net" }));
    CHECK(after.recipients[0].kind == Kind::deferred);
    server.join();
    CHECK(server.messages.size() == 1);
}

TEST_CASE("session: greetings and TLS policy")
{
    SECTION("a 4xx greeting is temporary, a 5xx permanent")
    {
        for (auto [greeting, temporary] : { std::pair { "421 busy\r\n", true }, std::pair { "554 go away\r\n", false } }) {
            ScriptedServer server([](const std::string&) { return std::string("221 bye\r\n"); }, greeting);
            mm::smtp::SocketTransport t(server.client_fd);
            ClientSession s(t, options());
            auto r = s.open();
            REQUIRE_FALSE(r);
            CHECK(r.error().is_temporary() == temporary);
            CHECK(mm::smtp::outcome_of(r.error()).kind == (temporary ? Kind::deferred : Kind::failed));
        }
    }
    SECTION("a route that requires TLS defers when STARTTLS is not offered, sending nothing")
    {
        ScriptedServer server([](const std::string& line) -> std::string {
            return line.starts_with("EHLO") ? ehlo_reply("250-AUTH PLAIN\r\n") : "250 ok\r\n";
        });
        mm::smtp::SocketTransport t(server.client_fd);
        ClientOptions o = options();
        o.tls = mm::smtp::TlsPolicy::required;
        o.credentials = mm::smtp::Credentials { std::nullopt, "alice", "s3cret" };
        ClientSession s(t, o);
        auto r = s.open();
        REQUIRE_FALSE(r);
        CHECK(r.error().is_temporary());
        server.join();
        CHECK(server.lines == std::vector<std::string> { "EHLO laptop.example" });
    }
    SECTION("credentials never go in clear text unless auth_plaintext says so")
    {
        ScriptedServer server([](const std::string& line) -> std::string {
            return line.starts_with("EHLO") ? ehlo_reply("250-AUTH PLAIN LOGIN\r\n") : "235 ok\r\n";
        });
        mm::smtp::SocketTransport t(server.client_fd);
        ClientOptions o = options();
        o.tls = mm::smtp::TlsPolicy::opportunistic;
        o.credentials = mm::smtp::Credentials { std::nullopt, "alice", "s3cret" };
        ClientSession s(t, o);
        auto r = s.open();
        REQUIRE_FALSE(r);
        CHECK(r.error().is_temporary());
        CHECK_THAT(r.error().message(), Catch::Contains("auth_plaintext"));
        server.join();
        CHECK(server.lines == std::vector<std::string> { "EHLO laptop.example" });
    }
}

TEST_CASE("session: AUTH PLAIN, LOGIN and CRAM-MD5 (RFC 2195's example), failures defer")
{
    struct Case {
        const char* offer;
        std::vector<std::string> expected;
    };
    // RFC 2195 §2: user tim, secret tanstaaftanstaaf, challenge
    // <1896.697170952@postoffice.reston.mci.net>.
    const std::string challenge = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+";
    const Case cases[] = {
        { "PLAIN", { "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm" } },
        { "LOGIN", { "AUTH LOGIN", "dGlt", "dGFuc3RhYWZ0YW5zdGFhZg==" } },
        { "CRAM-MD5", { "AUTH CRAM-MD5", "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw" } },
    };
    for (const Case& c : cases) {
        DYNAMIC_SECTION(c.offer)
        {
            std::string offer = c.offer;
            ScriptedServer server([&](const std::string& line) -> std::string {
                if (line.starts_with("EHLO"))
                    return ehlo_reply("250-AUTH " + offer + "\r\n");
                if (line == "AUTH LOGIN")
                    return "334 VXNlcm5hbWU6\r\n";
                if (line == "dGlt")
                    return "334 UGFzc3dvcmQ6\r\n";
                if (line == "AUTH CRAM-MD5")
                    return "334 " + challenge + "\r\n";
                if (line == "QUIT")
                    return "221 bye\r\n";
                return "235 2.7.0 ok\r\n";
            });
            mm::smtp::SocketTransport t(server.client_fd);
            ClientOptions o = options();
            o.auth_plaintext = true;
            o.credentials = mm::smtp::Credentials { std::nullopt, "tim", "tanstaaftanstaaf" };
            ClientSession s(t, o);
            REQUIRE(s.open());
            CHECK(s.authenticated_with() == offer);
            s.quit();
            server.join();
            std::vector<std::string> got(server.lines.begin() + 1, server.lines.end() - 1);
            CHECK(got == c.expected);
        }
    }
    SECTION("535 defers, never fails")
    {
        ScriptedServer server([](const std::string& line) -> std::string {
            return line.starts_with("EHLO") ? ehlo_reply("250-AUTH PLAIN\r\n") : "535 5.7.8 bad credentials\r\n";
        });
        mm::smtp::SocketTransport t(server.client_fd);
        ClientOptions o = options();
        o.auth_plaintext = true;
        o.credentials = mm::smtp::Credentials { std::nullopt, "tim", "wrong" };
        ClientSession s(t, o);
        auto r = s.open();
        REQUIRE_FALSE(r);
        CHECK(r.error().is_temporary());
        CHECK_THAT(r.error().message(), Catch::Contains("535"));
    }
}

TEST_CASE("session: instant_helo reads the banner that arrives before the EHLO reply")
{
    ScriptedServer server([](const std::string& line) -> std::string {
        if (line.starts_with("EHLO"))
            return ehlo_reply("250-PIPELINING\r\n");
        return line == "QUIT" ? "221 bye\r\n" : "250 ok\r\n";
    });
    mm::smtp::SocketTransport t(server.client_fd);
    ClientOptions o = options();
    o.instant_helo = true;
    ClientSession s(t, o);
    REQUIRE(s.open());
    CHECK(s.capabilities().esmtp);
    CHECK(s.capabilities().pipelining); // the EHLO reply, not the banner
    auto out = s.send(message("a: b\n\nx\n", { "bob@example.net" }));
    CHECK(out.recipients[0].kind == Kind::delivered);
    s.quit();
}
