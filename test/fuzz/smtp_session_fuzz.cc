// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for the SMTP server session, whose input is a network client's
// bytes. Byte 0 picks the peer and configuration (bit 0: TLS offered, 1: may
// relay, 2: synchronization enforced, 3: a local -bs peer, 4: do_relay =
// false); bytes 1 and 2 how the rest is cut into reads (0: one read). The
// session is driven as smtp-listener drives it: enqueue answers in turn ok,
// temporary failure, permanent refusal and a full disk, and STARTTLS
// succeeds. Replies must be well formed, input never kept beyond a line, a
// submission must follow its 354 and obey relay control; else abort().
#include "mm/config.hh"
#include "mm/config_lexer.hh"
#include "mm/limits.hh"
#include "mm/smtp_session.hh"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

using mm::smtp::Next;

constexpr std::uint64_t max_size = 4096; // small, so that inputs reach it
constexpr std::size_t max_recipients = 5;

void require(bool condition)
{
    if (!condition)
        std::abort();
}

mm::config::MainConfig make_config(bool do_relay)
{
    mm::config::Diagnostics diag;
    auto config = mm::config::parse_main_config("host_name = test.example\n"
                                                "local_hosts = \"localhost;test.example\"\n"
                                                "max_msg_size = "
            + std::to_string(max_size) + "\nmax_recipients = " + std::to_string(max_recipients)
            + "\ndo_relay = " + (do_relay ? "true" : "false") + "\n",
        "fuzz.conf", diag);
    require(config.has_value());
    return std::move(*config);
}

const mm::config::MainConfig& config(bool do_relay)
{
    static const mm::config::MainConfig relaying = make_config(true);
    static const mm::config::MainConfig local_senders_only = make_config(false);
    return do_relay ? relaying : local_senders_only;
}

int digit(char c)
{
    require(c >= '0' && c <= '9');
    return c - '0';
}

// Checks the replies appended since `checked` and returns their codes. Each
// line is "ddd" then ' ' or '-', printable ASCII, CRLF, at most 512 octets;
// continuation lines keep their code and the last line of `out` ends a reply.
std::vector<int> check_replies(const std::string& out, std::size_t& checked)
{
    std::vector<int> codes;
    int open_code = 0; // the code of a multi-line reply not finished yet
    while (checked < out.size()) {
        std::size_t end = out.find("\r\n", checked);
        require(end != std::string::npos);
        std::string_view line = std::string_view(out).substr(checked, end - checked);
        require(line.size() + 2 <= mm::limits::reply_line);
        require(line.size() >= 4);
        int code = digit(line[0]) * 100 + digit(line[1]) * 10 + digit(line[2]);
        require(code >= 200 && code <= 599);
        require(line[3] == ' ' || line[3] == '-');
        require(open_code == 0 || open_code == code);
        for (char c : line)
            require(c >= 0x20 && c < 0x7f);
        if (line[3] == ' ') {
            codes.push_back(code);
            open_code = 0;
        } else {
            open_code = code;
        }
        checked = end + 2;
    }
    require(open_code == 0);
    return codes;
}

std::string lowercase(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(),
        [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
    return s;
}

// local_hosts here are plain names, so an address is local by its domain.
bool is_local(const std::string& address)
{
    std::string domain = lowercase(address.substr(address.rfind('@') + 1));
    return domain == "test.example" || domain == "localhost";
}

std::string read_content(const mm::Fd& fd)
{
    require(fd.valid());
    struct stat st { };
    require(::fstat(fd.get(), &st) == 0);
    require(static_cast<std::uint64_t>(st.st_size) <= max_size);
    std::string content(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::pread(fd.get(), content.data() + done, content.size() - done, static_cast<off_t>(done));
        require(n > 0);
        done += static_cast<std::size_t>(n);
    }
    return content;
}

// What a submission must look like: a 354 was the last reply, the envelope
// obeys relay control, the content is canonical.
void check_submission(mm::smtp::Session& session, const mm::smtp::Peer& peer, bool do_relay, int last_code)
{
    require(last_code == 354);
    const mm::protocol::SubmitRequest& r = session.submission();
    require(r.sender.has_value() && !r.sender->empty());
    require(!r.recipients.empty() && r.recipients.size() <= max_recipients);
    require(r.smtp.has_value());
    require(r.smtp->protocol == "smtp" || r.smtp->protocol == "esmtp" || r.smtp->protocol == "esmtps");
    require((r.smtp->protocol == "esmtps") == session.tls_active());
    require(r.smtp->peer_address == peer.address);
    require(!r.smtp->helo_name.empty());
    const bool may_relay = peer.may_relay && (do_relay || (*r.sender != "<>" && is_local(*r.sender)));
    for (const std::string& rcpt : r.recipients) {
        require(rcpt.find('@') != std::string::npos);
        require(may_relay || is_local(rcpt));
    }
    const std::string content = read_content(session.take_content());
    require(content.find_first_of(std::string_view("\r\0", 2)) == std::string::npos);
    require(content.empty() || content.back() == '\n');
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size < 3)
        return 0;
    const std::uint8_t flags = data[0];
    mm::smtp::Peer peer;
    peer.tls_available = (flags & 1) != 0;
    peer.may_relay = (flags & 2) != 0;
    peer.enforce_synchronization = (flags & 4) != 0;
    peer.address = (flags & 8) != 0 ? "" : "192.0.2.1";
    const bool do_relay = (flags & 16) == 0;
    const std::size_t reads[3]
        = { data[1], std::size_t { data[2] } + 1, static_cast<std::size_t>(data[1] ^ data[2]) % 7 + 1 };
    const std::string_view input(reinterpret_cast<const char*>(data + 3), size - 3);

    mm::smtp::Session session(config(do_relay), peer);
    std::string in;
    std::string out;
    std::size_t checked = 0;
    Next next = session.greet(out);
    require(next == Next::read);
    std::vector<int> codes = check_replies(out, checked);
    require(codes.size() == 1 && codes[0] == 220 && out.starts_with("220 "));
    int last_code = 220;
    unsigned submissions = 0;

    for (std::size_t pos = 0, piece = 0; pos < input.size() && next != Next::close; ++piece) {
        std::size_t n = reads[0] == 0 ? input.size() : reads[piece % 3];
        n = std::min(n, input.size() - pos);
        in.append(input.substr(pos, n));
        pos += n;
        const std::size_t fed = in.size();
        next = session.advance(in, out);
        require(in.size() <= fed);
        for (int code : check_replies(out, checked))
            last_code = code;
        while (next == Next::submit) {
            check_submission(session, peer, do_relay, last_code);
            const unsigned kind = submissions++ % 4;
            static const int expected[4] = { 250, 451, 554, 452 };
            if (kind == 0)
                session.submitted(std::string("FUZZ") + std::to_string(submissions), out);
            else if (kind == 1)
                session.submitted(mm::Error::temporary("enqueue is away"), out);
            else if (kind == 2)
                session.submitted(mm::Error::permanent("refused\r\n250 forged"), out);
            else
                session.submitted(mm::Error::from_errno("write", ENOSPC), out);
            codes = check_replies(out, checked);
            require(codes.size() == 1 && codes[0] == expected[kind]);
            last_code = codes[0];
            const std::size_t before = in.size();
            next = session.advance(in, out);
            require(in.size() <= before);
            for (int code : check_replies(out, checked))
                last_code = code;
        }
        if (next == Next::start_tls) {
            // What was read with STARTTLS is never processed (CVE-2011-0411).
            require(in.empty());
            require(peer.tls_available && !session.tls_active() && last_code == 220);
            session.tls_started();
            require(session.tls_active() && !session.in_data());
            next = Next::read;
        }
        if (next == Next::read) {
            // Memory: DATA is consumed as it comes; commands keep at most one partial line.
            require(session.in_data() ? in.empty() : in.size() < mm::limits::command_line);
        }
    }
    if (next != Next::close) {
        session.timed_out(out);
        codes = check_replies(out, checked);
        require(codes.size() == 1 && codes[0] == 421);
    }
    return 0;
}
