// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail's errmsg_file/warnmsg_file templates (masqmail.md §7.2): @ lines
// and $var expansion, with lines of any length (§10 item 44). The template
// comes from root-owned configuration; the values expanded into it (remote
// replies, the original message) are untrusted and are kept to one line in
// the template's header section. Linked by qmgr.
#include "mm/dsn.hh"
#include "mm/cursor.hh"

#include "mm/limits.hh"

#include <algorithm>
#include <utility>

namespace mm {

namespace {

constexpr std::size_t var_name_max = 50; // masqmail's MAX_VAR
constexpr std::size_t header_value_max = 900; // one header line stays under 998 octets
constexpr std::string_view package_name = "MasqMail";

using VarTable = std::vector<std::pair<std::string_view, std::string>>;

struct Vars {
    VarTable body; // values for the body: err_msg may hold several lines
    VarTable header; // the same values made single-line
};

bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// One line per recipient, "<addr>: diagnostic". Each line starts with '<',
// so a hostile reply can never begin a line with a MIME boundary or a dot.
std::string error_lines(const DsnInput& in)
{
    std::string text;
    for (const auto& r : in.recipients) {
        if (r.diagnostic.empty())
            continue;
        if (!text.empty())
            text += '\n';
        text += r.address.path() + ": " + sanitize_header_text(r.diagnostic, limits::error_text);
    }
    return text;
}

Vars make_vars(const DsnInput& in, const Address& report_recipient)
{
    // For a null original sender, return_path names the report's recipient
    // (postmaster), so that the usual "To: ${return_path}" stays valid.
    const Address& rp = in.original_sender.is_null() ? report_recipient : in.original_sender;
    Vars v;
    v.body = {
        { "host_name", in.host_name },
        { "package", std::string(package_name) },
        { "version", sanitize_header_text(in.reporting_mta_version, limits::config_name) },
        { "uid", in.original_queue_id },
        { "received_host", sanitize_header_text(in.received_host, limits::spool_text_field) },
        { "ident", sanitize_header_text(in.ident, limits::spool_text_field) },
        { "return_path", rp.str() },
        { "return_path_local", rp.local_part() },
        { "return_path_domain", rp.domain() },
        { "err_msg", error_lines(in) },
    };
    v.header = v.body;
    for (auto& [name, value] : v.header) {
        for (std::size_t nl = value.find('\n'); nl != std::string::npos; nl = value.find('\n', nl))
            value.replace(nl, 1, "; ");
        value = sanitize_header_text(value, header_value_max);
    }
    return v;
}

const std::string* find_var(const VarTable& table, std::string_view name)
{
    for (const auto& [key, value] : table)
        if (key == name)
            return &value;
    return nullptr;
}

// masqmail's expand(): "\c" is c, "$name" and "${name}" are variables
// (unknown ones expand to nothing), a '$' without a name stays literal.
Result<void> expand_line(std::string_view line, const VarTable& vars, std::string& out)
{
    std::size_t i = 0;
    while (i < line.size()) {
        char c = line[i++];
        if (c == '\\') {
            if (i < line.size())
                out += line[i++];
            continue;
        }
        if (c != '$') {
            out += c;
            continue;
        }
        std::string_view name;
        if (i < line.size() && line[i] == '{') {
            std::size_t close = line.find('}', i + 1);
            if (close == std::string_view::npos)
                return Error::permanent("unterminated ${");
            name = line.substr(i + 1, close - i - 1);
            i = close + 1;
        } else {
            std::size_t start = i;
            while (i < line.size() && is_name_char(line[i]))
                ++i;
            name = line.substr(start, i - start);
            if (name.empty())
                out += '$';
        }
        if (name.size() > var_name_max)
            return Error::permanent("variable name too long");
        if (const std::string* value = find_var(vars, name))
            out += *value;
        if (out.size() > limits::text_line_accepted)
            return Error::permanent("expanded line too long");
    }
    return ok();
}

void append_lines(std::string& out, std::string_view text)
{
    out += text;
    if (!text.empty() && text.back() != '\n')
        out += '\n';
}

// An @ directive: true when `line` was one (and is handled or dropped).
bool apply_directive(std::string_view line, const DsnInput& in, std::string& out)
{
    std::string_view t = line.substr(std::min(line.find_first_not_of(" \t"), line.size()));
    if (t.starts_with("@failed_rcpts")) {
        for (const auto& r : in.recipients)
            out += "\t" + r.address.str() + "\n";
    } else if (t.starts_with("@msg_headers")) {
        append_lines(out, returned_headers(in.original_content));
    } else if (t.starts_with("@msg_body")) {
        if (in.original_content.size() <= in.include_limit)
            append_lines(out, body_section(in.original_content));
        else
            out += "[The message body (" + std::to_string(body_section(in.original_content).size())
                + " octets) is not included.]\n";
    } else {
        return line.starts_with('@'); // other @ lines in column 0 are dropped, as masqmail does
    }
    return true;
}

bool has_auto_submitted(std::string_view content)
{
    std::string_view headers = header_section(content);
    constexpr std::string_view name = "auto-submitted:";
    std::size_t pos = 0;
    while (pos < headers.size()) {
        std::size_t end = headers.find('\n', pos);
        std::string_view line = headers.substr(pos, end == std::string_view::npos ? end : end - pos);
        if (equals_nocase(line.substr(0, name.size()), name))
            return true;
        pos = end == std::string_view::npos ? headers.size() : end + 1;
    }
    return false;
}

Result<std::string> render(const DsnInput& in, std::string_view tpl, const Vars& vars)
{
    std::string out;
    bool in_header = true;
    std::size_t line_no = 0;
    for (std::size_t pos = 0; pos < tpl.size();) {
        std::size_t end = tpl.find('\n', pos);
        std::string_view line = tpl.substr(pos, end == std::string_view::npos ? end : end - pos);
        pos = end == std::string_view::npos ? tpl.size() : end + 1;
        ++line_no;
        if (line.ends_with('\r'))
            line.remove_suffix(1);
        auto where = [&](std::string_view what) {
            return Error::permanent("template line " + std::to_string(line_no) + ": " + std::string(what));
        };
        if (line.find('\r') != std::string_view::npos || line.find('\0') != std::string_view::npos)
            return where("CR or NUL in template");
        if (line.size() > limits::text_line_accepted)
            return where("line too long");
        if (apply_directive(line, in, out))
            continue;
        std::size_t start = out.size();
        if (auto r = expand_line(line, in_header ? vars.header : vars.body, out); !r)
            return where(r.error().message());
        if (out.size() == start)
            in_header = false; // the empty line that ends the header section
        out += '\n';
    }
    return out;
}

} // namespace

Result<DsnOutcome> build_dsn_from_template(const DsnInput& in, std::string_view template_text)
{
    auto outcome = dsn_addressing(in);
    if (!outcome || !outcome->sent())
        return outcome;
    if (template_text.size() > limits::config_file)
        return Error::permanent("template too large");
    GeneratedMessage& msg = *outcome->message;
    auto content = render(in, template_text, make_vars(in, msg.recipient));
    if (!content)
        return std::move(content).error();
    if (!has_auto_submitted(*content))
        content->insert(0, "Auto-Submitted: auto-replied\n");
    msg.eight_bit = has_eight_bit(*content);
    msg.content = std::move(*content);
    return outcome;
}

} // namespace mm
