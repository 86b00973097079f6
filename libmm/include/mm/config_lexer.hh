// SPDX-License-Identifier: GPL-2.0-or-later
// The lexical layer shared by masqmail.conf, route files and alias files:
// bounded file reading, physical lines, `name = value` statements, and the
// Diagnostics that collect "file:line: reason" errors and warnings. Input is
// administrator-owned but still parsed as untrusted bytes (fuzzed).
// Linked by every process that reads configuration.
#pragma once

#include "mm/result.hh"

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace mm::config {

enum class Severity { error, warning };

struct Diagnostic {
    Severity severity = Severity::error;
    std::string file;
    std::size_t line = 0; // 0: the file as a whole
    std::string reason;

    // "file:line: reason", or "file: reason" for line 0.
    std::string text() const;
};

// Errors and warnings of one read, in the order found. Bounded: after
// limits::config_diagnostics entries only the counts grow.
class Diagnostics {
public:
    void error(std::string_view file, std::size_t line, std::string reason);
    void warning(std::string_view file, std::size_t line, std::string reason);

    bool has_errors() const { return errors_ > 0; }
    std::size_t error_count() const { return errors_; }
    std::size_t warning_count() const { return warnings_; }
    const std::vector<Diagnostic>& entries() const { return entries_; }
    // One line per entry, each file's entries in line order (whole-file
    // remarks last); a last line says how many were left out, if any.
    void print(std::FILE* out) const;

private:
    void add(Severity severity, std::string_view file, std::size_t line, std::string reason);

    std::vector<Diagnostic> entries_;
    std::size_t errors_ = 0;
    std::size_t warnings_ = 0;
};

// `text` for a diagnostic: single-quoted, control and 8-bit bytes shown as
// '?', cut after 80 bytes with "...". Configuration text never reaches a
// terminal or log raw.
std::string in_quotes(std::string_view text);

struct ConfigFile {
    std::string text;
    mode_t mode = 0;
    uid_t owner = 0;
    gid_t group = 0;
};

// Whoever can change masqmail.conf or a route file decides which commands
// run and where mail goes, so only root and the user masqmail runs as may.
// The reason someone else can write `file` ("is writable by everyone",
// "belongs to uid N", "is writable by group N"), or nothing when no one can.
std::optional<std::string> writable_by_others(const ConfigFile& file);

// Reads a whole file by path (symlinks followed: the path is the
// administrator's), regular files only, at most max_bytes. The error
// message is the reason alone ("cannot read: No such file or directory",
// "larger than 1048576 bytes", "not a regular file"), for "path: reason".
Result<ConfigFile> read_config_file(const std::string& path, std::size_t max_bytes);

// One physical line: split at LF, one trailing CR removed (CRLF files work).
struct Line {
    std::string_view text;
    std::size_t number = 0;
    // Longer than limits::config_line or holding a NUL byte; already reported.
    bool bad = false;
};

// The physical lines of a text, checked once: a bad line is reported to
// `diag` ("line too long", "NUL byte") when it is reached.
class LineReader {
public:
    LineReader(std::string_view text, std::string_view file, Diagnostics& diag);
    std::optional<Line> next();

private:
    std::string_view text_;
    std::string_view file_;
    Diagnostics& diag_;
    std::size_t pos_ = 0;
    std::size_t number_ = 0;
};

// `name = value`, as lexed; line is where the name stands.
struct Statement {
    std::string name;
    std::string value;
    std::size_t line = 0;
};

// Lexes masqmail.conf syntax (masqmail §2.1) with errors where masqmail was
// silent: every problem is reported to `diag` and the offending statement is
// dropped; the caller refuses the file when diag has errors.
//  * `#` starts a comment at the start of a statement or after a value.
//  * Unquoted values: letters, digits and `_ - . / @ ; :` only; anything else
//    after one (other than a comment) is an error, not silently dropped.
//  * Quoted values may span lines; a backslash takes the next byte
//    literally (so `\"`, `\\`, and `\n` is "n"); an unterminated quote is
//    reported at the line where it opened.
//  * A missing `=` is an error.
std::vector<Statement> lex_statements(std::string_view text, std::string_view file, Diagnostics& diag);

} // namespace mm::config
