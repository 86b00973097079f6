// SPDX-License-Identifier: GPL-2.0-or-later
// Lexer and diagnostics for configuration files. Input is administrator-owned
// text handled as untrusted bytes: every line, value and count is bounded.
// Linked by every process that reads configuration.
#include "mm/config_lexer.hh"

#include "mm/cursor.hh"
#include "mm/fd.hh"
#include "mm/fs.hh"
#include "mm/limits.hh"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mm::config {

std::string Diagnostic::text() const
{
    std::string out = file;
    if (line > 0)
        out += ":" + std::to_string(line);
    out += ": ";
    out += reason;
    return out;
}

void Diagnostics::error(std::string_view file, std::size_t line, std::string reason)
{
    ++errors_;
    add(Severity::error, file, line, std::move(reason));
}

void Diagnostics::warning(std::string_view file, std::size_t line, std::string reason)
{
    ++warnings_;
    add(Severity::warning, file, line, std::move(reason));
}

void Diagnostics::add(Severity severity, std::string_view file, std::size_t line, std::string reason)
{
    if (entries_.size() >= limits::config_diagnostics)
        return;
    entries_.push_back(Diagnostic { severity, std::string(file), line, std::move(reason) });
}

void Diagnostics::print(std::FILE* out) const
{
    // Files in the order first seen; lexer and option errors of one file interleaved by line.
    std::vector<std::string_view> files;
    std::vector<std::pair<std::pair<std::size_t, std::size_t>, const Diagnostic*>> order;
    for (const Diagnostic& d : entries_) {
        auto it = std::find(files.begin(), files.end(), d.file);
        std::size_t file_rank = static_cast<std::size_t>(it - files.begin());
        if (it == files.end())
            files.push_back(d.file);
        std::size_t line_rank = d.line == 0 ? SIZE_MAX : d.line;
        order.push_back({ { file_rank, line_rank }, &d });
    }
    std::stable_sort(
        order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& entry : order)
        (void)std::fprintf(out, "%s\n", entry.second->text().c_str());
    std::size_t total = errors_ + warnings_;
    if (total > entries_.size())
        (void)std::fprintf(out, "... and %zu more errors and warnings not shown\n", total - entries_.size());
}

std::string in_quotes(std::string_view text)
{
    constexpr std::size_t shown = 80;
    std::string out = "'";
    for (char c : text.substr(0, shown)) {
        auto byte = static_cast<unsigned char>(c);
        out += (byte >= 0x20 && byte < 0x7f) ? c : '?';
    }
    if (text.size() > shown)
        out += "...";
    out += "'";
    return out;
}

Result<ConfigFile> read_config_file(const std::string& path, std::size_t max_bytes)
{
    if (path.empty() || path.find('\0') != std::string::npos)
        return Error::permanent("cannot read: bad file name");
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd.valid())
        return Error(ErrorKind::permanent, std::string("cannot read: ") + std::strerror(errno), errno);
    struct stat st { };
    if (::fstat(fd.get(), &st) != 0)
        return Error(ErrorKind::permanent, std::string("cannot read: ") + std::strerror(errno), errno);
    if (!S_ISREG(st.st_mode))
        return Error::permanent("cannot read: not a regular file");
    auto data = read_all(fd, max_bytes);
    if (!data) {
        if (data.error().sys_errno() != 0)
            return Error(
                ErrorKind::permanent, "cannot read: " + data.error().message(), data.error().sys_errno());
        return Error::permanent("file larger than " + std::to_string(max_bytes) + " bytes");
    }
    return ConfigFile { std::move(data).value(), st.st_mode, st.st_uid, st.st_gid };
}

std::optional<std::string> writable_by_others(const ConfigFile& file)
{
    if ((file.mode & S_IWOTH) != 0)
        return "is writable by everyone (chmod o-w)";
    if (file.owner != 0 && file.owner != ::geteuid())
        return "belongs to uid " + std::to_string(file.owner) + ", neither root nor the user masqmail runs as (chown root)";
    if ((file.mode & S_IWGRP) != 0 && file.group != 0 && file.group != ::getegid())
        return "is writable by group " + std::to_string(file.group) + " (chmod g-w)";
    return std::nullopt;
}

LineReader::LineReader(std::string_view text, std::string_view file, Diagnostics& diag)
    : text_(text)
    , file_(file)
    , diag_(diag)
{
}

std::optional<Line> LineReader::next()
{
    if (pos_ >= text_.size())
        return std::nullopt;
    std::size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos)
        end = text_.size();
    Line line { text_.substr(pos_, end - pos_), ++number_, false };
    pos_ = end + 1;
    if (!line.text.empty() && line.text.back() == '\r')
        line.text.remove_suffix(1);
    if (line.text.size() > limits::config_line) {
        diag_.error(file_, line.number,
            "line too long (more than " + std::to_string(limits::config_line) + " bytes)");
        line = Line { {}, line.number, true };
    } else if (line.text.find('\0') != std::string_view::npos) {
        diag_.error(file_, line.number, "NUL byte in line");
        line = Line { {}, line.number, true };
    }
    return line;
}

namespace {

bool is_name_char(char c)
{
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '_' || c == '-' || c == '.';
}

// masqmail's set for unquoted values (conf.c:read_rval).
bool is_unquoted_value_char(char c)
{
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '_' || c == '-' || c == '.' || c == '/' || c == '@'
        || c == ';' || c == ':';
}

class StatementLexer {
public:
    StatementLexer(std::string_view text, std::string_view file, Diagnostics& diag)
        : lines_(text, file, diag)
        , file_(file)
        , diag_(diag)
    {
    }

    std::vector<Statement> run()
    {
        while (auto line = lines_.next())
            if (!line->bad)
                lex_line(*line);
        return std::move(statements_);
    }

private:
    void lex_line(const Line& line);
    bool lex_quoted(Cursor& c, Statement& st, std::size_t& current_line);
    void error(std::size_t line, std::string reason) { diag_.error(file_, line, std::move(reason)); }

    LineReader lines_;
    std::string_view file_;
    Diagnostics& diag_;
    std::vector<Statement> statements_;
};

void StatementLexer::lex_line(const Line& line)
{
    Cursor c(line.text);
    c.skip_while(is_ascii_space);
    if (c.at_end() || c.peek() == '#')
        return;
    std::string_view name = c.take_while(is_name_char);
    if (name.empty()) {
        error(line.number, "expected an option name, found " + in_quotes(c.rest()));
        return;
    }
    if (name.size() > limits::config_name) {
        error(line.number, "option name too long");
        return;
    }
    c.skip_while(is_ascii_space);
    if (!c.consume('=')) {
        error(line.number, "missing '=' after " + in_quotes(name));
        return;
    }
    c.skip_while(is_ascii_space);
    Statement st { std::string(name), {}, line.number };
    std::size_t current_line = line.number;
    bool was_quoted = c.consume('"');
    if (was_quoted) {
        if (!lex_quoted(c, st, current_line))
            return;
    } else {
        st.value = c.take_while(is_unquoted_value_char);
    }
    c.skip_while(is_ascii_space);
    if (!c.at_end() && c.peek() != '#') {
        std::string reason
            = "unexpected " + in_quotes(c.rest()) + " after the value of " + in_quotes(st.name);
        if (!was_quoted)
            reason += " (values with other characters than letters, digits and _-./@;: need quotes)";
        error(current_line, std::move(reason));
        return;
    }
    statements_.push_back(std::move(st));
}

// After the opening quote: collects the value up to the closing quote,
// reading further lines as needed; `c` is left after the closing quote.
bool StatementLexer::lex_quoted(Cursor& c, Statement& st, std::size_t& current_line)
{
    bool too_long = false;
    auto append = [&](char ch) {
        if (st.value.size() < limits::config_value)
            st.value += ch;
        else
            too_long = true;
    };
    for (;;) {
        if (c.at_end()) {
            std::optional<Line> next = lines_.next();
            if (!next) {
                error(st.line, "unterminated quote in the value of " + in_quotes(st.name));
                return false;
            }
            append('\n');
            current_line = next->number;
            c = Cursor(next->text);
            continue;
        }
        char ch = c.next();
        if (ch == '"')
            break;
        if (ch == '\\') {
            if (c.at_end())
                continue; // escaped line break: the '\n' is appended above
            ch = c.next();
        }
        append(ch);
    }
    if (too_long) {
        error(st.line,
            "value of " + in_quotes(st.name) + " too long (more than " + std::to_string(limits::config_value)
                + " bytes)");
        return false;
    }
    return true;
}

} // namespace

std::vector<Statement> lex_statements(std::string_view text, std::string_view file, Diagnostics& diag)
{
    return StatementLexer(text, file, diag).run();
}

} // namespace mm::config
