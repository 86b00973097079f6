// SPDX-License-Identifier: GPL-2.0-or-later
// The built-in bounce and delay warning: an RFC 3464 multipart/report from
// MAILER-DAEMON with the null sender. The original content and the remote
// replies in the diagnostics are untrusted: header values are sanitised and
// folded, the MIME boundary is checked against every part. Linked by qmgr.
#include "mm/dsn.hh"
#include "mm/cursor.hh"
#include "mm/header_fixup.hh"

#include "mm/limits.hh"
#include "mm/queue_id.hh"

#include <array>
#include <cstdio>
#include <cstdlib>

namespace mm {

namespace {

constexpr std::size_t fold_at = 78; // RFC 5322 §2.1.1 "should"
constexpr std::size_t boundary_tries = 100;
constexpr std::size_t orcpt_max = 500; // RFC 3461 §4.2: an ORCPT parameter is at most 500 octets

bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool is_atext(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
        return true;
    return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool is_dot_atom(std::string_view s)
{
    if (s.empty() || s.size() > limits::local_part_accepted || s.front() == '.' || s.back() == '.')
        return false;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (!(is_atext(s[i]) || (s[i] == '.' && s[i - 1] != '.')))
            return false;
    return true;
}

// "N.N.N" with 1-3 digits after the class (RFC 3463 §2), of the action's class.
std::string checked_status(const DsnRecipient& r)
{
    char cls = r.action == DsnAction::failed ? '5' : '4';
    std::string_view s = r.status;
    bool good = s.size() >= 5 && s[0] == cls && s[1] == '.';
    std::size_t i = 2;
    for (int part = 0; good && part < 2; ++part) {
        std::size_t start = i;
        while (i < s.size() && is_digit(s[i]) && i - start < 4)
            ++i;
        good = i > start && i - start <= 3 && (part == 1 ? i == s.size() : i < s.size() && s[i] == '.');
        ++i;
    }
    return good ? std::string(s) : std::string(1, cls) + ".0.0";
}

// "type; text": the diagnostic with a valid type, or typed "x-unknown".
std::string typed_diagnostic(std::string_view raw)
{
    std::string clean = sanitize_header_text(raw, limits::error_text);
    std::size_t semi = clean.find(';');
    bool typed = semi != std::string::npos && semi > 0 && semi <= 32;
    for (std::size_t i = 0; typed && i < semi; ++i)
        typed = is_atext(clean[i]) && clean[i] != '/' && clean[i] != '=';
    return typed ? clean : "x-unknown; " + clean;
}

// Original-Recipient: "type; address" (RFC 3464 §2.3.1).
std::string typed_original(std::string_view raw)
{
    std::string clean = sanitize_header_text(raw, orcpt_max);
    return clean.find(';') != std::string::npos ? clean : "rfc822; " + clean;
}

// "Name: value" folded at spaces; the value is already sanitised.
void append_field(std::string& out, std::string_view name, std::string_view value)
{
    out += name;
    out += ':';
    std::size_t column = name.size() + 1;
    std::size_t pos = 0;
    while (pos < value.size()) {
        std::size_t end = value.find(' ', pos);
        if (end == std::string_view::npos)
            end = value.size();
        std::string_view word = value.substr(pos, end - pos);
        if (column + 1 + word.size() > fold_at && column > name.size() + 1) {
            out += "\n";
            column = 0;
        }
        out += ' ';
        out += word;
        column += 1 + word.size();
        pos = end + 1;
    }
    out += '\n';
}

std::string default_message_id(const DsnInput& in)
{
    std::uint32_t h = 2166136261u; // FNV-1a over the recipients: one report per step
    for (const auto& r : in.recipients)
        for (char c : r.address.str())
            h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
    std::array<char, 16> hex {};
    std::snprintf(hex.data(), hex.size(), "%08x", h);
    return "dsn." + std::string(in.kind == DsnKind::failure ? "f." : "d.") + in.original_queue_id + "."
        + std::to_string(in.now) + "." + hex.data();
}

Result<void> check_input(const DsnInput& in)
{
    if (!is_valid_domain(in.host_name) || in.host_name.front() == '[')
        return Error::internal("dsn: host_name is not a domain");
    if (!QueueId::parse(in.original_queue_id))
        return Error::internal("dsn: bad original queue id");
    if (in.recipients.empty() || in.recipients.size() > limits::recipients)
        return Error::internal("dsn: no recipients, or too many");
    for (const auto& r : in.recipients)
        if (r.address.is_null())
            return Error::internal("dsn: null recipient");
    if (!in.message_id_local_part.empty() && !is_dot_atom(in.message_id_local_part))
        return Error::internal("dsn: Message-ID local part is not a dot-atom");
    if (in.now < 0 || in.arrival_time < 0)
        return Error::internal("dsn: negative time");
    return ok();
}

bool is_postmaster(const Address& a, std::string_view host_name)
{
    return equals_nocase(a.local_part(), "postmaster") && equals_nocase(a.domain(), host_name);
}

} // namespace

const char* dsn_not_sent_text(DsnNotSent reason)
{
    switch (reason) {
    case DsnNotSent::null_sender:
        return "double bounce discarded (null sender)";
    case DsnNotSent::postmaster_failed:
        return "postmaster address failed, no report sent";
    }
    return "unknown";
}

Result<Address> double_bounce_recipient(std::string_view host_name)
{
    if (!is_valid_domain(host_name) || host_name.empty() || host_name.front() == '[')
        return Error::internal("dsn: host_name is not a domain");
    return parse_path("<postmaster@" + std::string(host_name) + ">", AddressOptions {});
}

Result<DsnOutcome> dsn_addressing(const DsnInput& in)
{
    if (auto checked = check_input(in); !checked)
        return std::move(checked).error();
    DsnOutcome outcome;
    if (!in.to_postmaster) {
        if (in.original_sender.is_null())
            return outcome; // reason null_sender
        outcome.message = GeneratedMessage { Address {}, in.original_sender, {}, false };
        return outcome;
    }
    for (const auto& r : in.recipients)
        if (is_postmaster(r.address, in.host_name)) {
            outcome.reason = DsnNotSent::postmaster_failed;
            return outcome;
        }
    auto postmaster = double_bounce_recipient(in.host_name);
    if (!postmaster)
        return std::move(postmaster).error();
    outcome.message = GeneratedMessage { Address {}, *postmaster, {}, false };
    return outcome;
}

std::string sanitize_header_text(std::string_view text, std::size_t max)
{
    std::string out;
    out.reserve(text.size() < max ? text.size() : max);
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        char safe = (c == '\r' || c == '\n' || c == '\t') ? ' ' : (u < 0x20 || u >= 0x7f) ? '?' : c;
        if (safe == ' ' && (out.empty() || out.back() == ' '))
            continue;
        if (out.size() >= max)
            break;
        out += safe;
    }
    while (!out.empty() && out.back() == ' ')
        out.pop_back();
    return out;
}

std::string_view header_section(std::string_view content)
{
    if (content.starts_with('\n'))
        return {};
    std::size_t blank = content.find("\n\n");
    return blank == std::string_view::npos ? content : content.substr(0, blank + 1);
}

std::string_view body_section(std::string_view content)
{
    if (content.starts_with('\n'))
        return content.substr(1);
    std::size_t blank = content.find("\n\n");
    return blank == std::string_view::npos ? std::string_view {} : content.substr(blank + 2);
}

std::string returned_headers(std::string_view content)
{
    std::string_view h = header_section(content);
    if (h.size() > limits::header_section) {
        std::size_t cut = h.rfind('\n', limits::header_section - 1);
        h = cut == std::string_view::npos ? std::string_view {} : h.substr(0, cut + 1);
    }
    std::string out(h);
    if (!out.empty() && out.back() != '\n')
        out += '\n';
    return out;
}

bool has_eight_bit(std::string_view s)
{
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80)
            return true;
    return false;
}

bool warning_due(const std::vector<std::chrono::seconds>& warn_intervals, std::chrono::seconds age,
    std::optional<std::chrono::seconds> last_warning_age)
{
    for (auto interval : warn_intervals)
        if (age > interval && (!last_warning_age || *last_warning_age <= interval))
            return true;
    return false;
}

bool expired(std::chrono::seconds online_age, std::chrono::seconds max_defer_time)
{
    return online_age >= max_defer_time;
}

namespace {

std::string human_part(const DsnInput& in, bool whole_original)
{
    std::string t = "This is the mail system at host " + in.host_name + ".\n\n";
    if (in.kind == DsnKind::delay) {
        t += "####################################################################\n"
             "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
             "####################################################################\n\n"
             "Your message could not be delivered yet to the recipients below.\n"
             "The mail system will keep trying; you will be told if it gives up.\n";
    } else if (in.original_sender.is_null()) {
        t += "A message with the null sender (itself a delivery report) could not\n"
             "be delivered to the recipients below.\n";
    } else {
        t += "I'm sorry to have to inform you that your message could not\n"
             "be delivered to one or more recipients. ";
        t += whole_original ? "It's attached below.\n" : "Its headers are attached below.\n";
    }
    t += "\nFor further assistance, please send mail to postmaster.\n\n"
         "If you do so, please include this problem report.\n\n"
         "                   The mail system\n\n";
    for (const auto& r : in.recipients) { // two lines, each well under 998 octets
        t += r.address.path();
        if (!r.original.empty())
            t += " (original recipient: " + sanitize_header_text(r.original, orcpt_max) + ")";
        std::string why = r.diagnostic.empty() ? "status " + checked_status(r)
                                               : sanitize_header_text(r.diagnostic, limits::error_text);
        t += ":\n    " + why + "\n";
    }
    return t;
}

void append_recipient_fields(std::string& s, const DsnRecipient& r)
{
    s += '\n';
    append_field(s, "Final-Recipient", "rfc822; " + r.address.str());
    if (!r.original.empty())
        append_field(s, "Original-Recipient", typed_original(r.original));
    append_field(s, "Action", r.action == DsnAction::failed ? "failed" : "delayed");
    append_field(s, "Status", checked_status(r));
    std::string mta = sanitize_header_text(r.remote_mta, limits::domain);
    if (!mta.empty())
        append_field(s, "Remote-MTA", "dns; " + mta);
    if (!r.diagnostic.empty())
        append_field(s, "Diagnostic-Code", typed_diagnostic(r.diagnostic));
    if (r.last_attempt > 0)
        append_field(s, "Last-Attempt-Date", message_date(r.last_attempt));
    if (r.action == DsnAction::delayed && r.will_retry_until > 0)
        append_field(s, "Will-Retry-Until", message_date(r.will_retry_until));
}

std::string status_part(const DsnInput& in)
{
    std::string s;
    append_field(s, "Reporting-MTA", "dns; " + in.host_name);
    append_field(s, "X-Masqmail-Queue-ID", in.original_queue_id);
    if (in.arrival_time > 0)
        append_field(s, "Arrival-Date", message_date(in.arrival_time));
    for (const auto& r : in.recipients)
        append_recipient_fields(s, r);
    return s;
}

struct Part {
    std::string head; // MIME part headers, each line ending in LF
    std::string body;
};

Result<std::string> choose_boundary(const DsnInput& in, const std::vector<Part>& parts)
{
    for (std::size_t n = 0; n < boundary_tries; ++n) {
        std::string b = "=_dsn." + in.original_queue_id + "." + std::to_string(in.now) + "." + std::to_string(n);
        bool clash = false;
        for (const auto& p : parts)
            clash = clash || p.body.find(b) != std::string::npos;
        if (!clash)
            return b;
    }
    return Error::internal("dsn: no MIME boundary outside the original");
}

void append_top_headers(std::string& out, const DsnInput& in, const Address& to, bool eight_bit)
{
    out += "From: Mail Delivery System <MAILER-DAEMON@" + in.host_name + ">\n";
    out += "To: " + to.str() + "\n"; // an Address holds no CR, LF or NUL
    out += in.kind == DsnKind::failure ? "Subject: Undelivered Mail Returned to Sender\n"
                                       : "Subject: Delayed Mail (still being retried)\n";
    append_field(out, "Date", message_date(in.now));
    std::string local = in.message_id_local_part.empty() ? default_message_id(in) : in.message_id_local_part;
    out += "Message-ID: <" + local + "@" + in.host_name + ">\n";
    out += "Auto-Submitted: auto-replied\n";
    out += "MIME-Version: 1.0\n";
    if (eight_bit)
        out += "Content-Transfer-Encoding: 8bit\n";
}

} // namespace

Result<DsnOutcome> build_dsn(const DsnInput& in)
{
    auto outcome = dsn_addressing(in);
    if (!outcome || !outcome->sent())
        return outcome;
    GeneratedMessage& msg = *outcome->message;
    bool whole = in.kind == DsnKind::failure && in.original_content.size() <= in.include_limit;
    std::vector<Part> parts(3);
    parts[0] = { "Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n",
        human_part(in, whole) };
    parts[1] = { "Content-Description: Delivery report\nContent-Type: message/delivery-status\n",
        status_part(in) };
    parts[2].body = whole ? std::string(in.original_content) : returned_headers(in.original_content);
    if (!parts[2].body.empty() && parts[2].body.back() != '\n')
        parts[2].body += '\n';
    msg.eight_bit = has_eight_bit(parts[2].body);
    parts[2].head = whole ? "Content-Description: Undelivered Message\nContent-Type: message/rfc822\n"
                          : "Content-Description: Message Headers\nContent-Type: text/rfc822-headers\n";
    if (msg.eight_bit)
        parts[2].head += "Content-Transfer-Encoding: 8bit\n";
    auto boundary = choose_boundary(in, parts);
    if (!boundary)
        return std::move(boundary).error();

    std::string& out = msg.content;
    append_top_headers(out, in, msg.recipient, msg.eight_bit);
    out += "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"" + *boundary + "\"\n\n";
    out += "This is a MIME-encapsulated message.\n";
    for (const auto& p : parts)
        out += "\n--" + *boundary + "\n" + p.head + "\n" + p.body;
    out += "\n--" + *boundary + "--\n";
    return outcome;
}

} // namespace mm
