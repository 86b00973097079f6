// SPDX-License-Identifier: GPL-2.0-or-later
// Address parsers: RFC 5321 paths, masqmail's command-line form (one RFC 5322
// mailbox) and RFC 5322 address lists. Input is untrusted (SMTP peers, message
// headers, argv): every byte is checked, nothing is read past the end, there
// is no recursion, comments nest at most limits::comment_depth deep, and all
// work is linear in the input. Linked by every process (mm_address).
#include "mm/address.hh"

#include "mm/cursor.hh"
#include "mm/limits.hh"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <utility>

namespace mm {
namespace {

constexpr std::string_view atext_specials = "!#$%&'*+-/=?^_`{|}~";

bool is_atext(char c)
{
    return is_ascii_alpha(c) || is_ascii_digit(c) || (c != '\0' && atext_specials.find(c) != std::string_view::npos);
}
bool is_8bit(char c) { return static_cast<unsigned char>(c) >= 0x80; }
bool is_ctl(char c)
{
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}
// Printable US-ASCII, space included: all a local part may hold.
bool is_printable(char c) { return !is_ctl(c) && !is_8bit(c); }

// A byte named for an error message: never the raw byte unless printable.
std::string describe(char c)
{
    switch (c) {
    case '\0': return "NUL";
    case '\r': return "CR";
    case '\n': return "LF";
    case '\t': return "tab";
    case ' ': return "space";
    default: break;
    }
    if (is_ctl(c))
        return "control character";
    if (is_8bit(c))
        return "8-bit character";
    return std::string("'") + c + "'";
}

Error address_error(std::string message) { return Error::permanent(std::move(message)); }

// Why `label` is no domain label (letters, digits, inner hyphens), or "".
std::string label_problem(std::string_view label)
{
    if (label.empty())
        return "empty label in domain";
    for (char c : label)
        if (!is_ascii_alpha(c) && !is_ascii_digit(c) && c != '-')
            return "invalid " + describe(c) + " in domain";
    if (label.size() > limits::domain_label)
        return "domain label too long";
    if (label.front() == '-' || label.back() == '-')
        return "domain label begins or ends with '-'";
    return {};
}

std::string name_problem(std::string_view name)
{
    if (name.empty())
        return "missing domain";
    if (name.size() > limits::domain)
        return "domain too long";
    std::size_t start = 0;
    while (true) {
        std::size_t dot = name.find('.', start);
        std::string_view label = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
        if (std::string problem = label_problem(label); !problem.empty())
            return problem;
        if (dot == std::string_view::npos)
            return {};
        start = dot + 1;
    }
}

// A dotted quad, each part 0-255 without leading zeros (which some read as octal).
bool is_ipv4_literal(std::string_view s)
{
    for (int part = 0; part < 4; ++part) {
        if (part > 0) {
            if (s.empty() || s.front() != '.')
                return false;
            s.remove_prefix(1);
        }
        std::size_t n = 0;
        while (n < s.size() && n < 4 && is_ascii_digit(s[n]))
            ++n;
        if (n == 0 || n > 3 || (n > 1 && s.front() == '0'))
            return false;
        std::optional<unsigned> value = parse_decimal<unsigned>(s.substr(0, n));
        if (!value || *value > 255)
            return false;
        s.remove_prefix(n);
    }
    return s.empty();
}

bool is_ipv6_literal(std::string_view s)
{
    if (s.empty() || s.size() >= INET6_ADDRSTRLEN)
        return false;
    for (char c : s)
        if (!is_ascii_digit(c) && !(ascii_lower(c) >= 'a' && ascii_lower(c) <= 'f') && c != ':' && c != '.')
            return false;
    std::string copy(s);  // inet_pton wants a terminated string
    in6_addr address{};
    return ::inet_pton(AF_INET6, copy.c_str(), &address) == 1;
}

// "[192.0.2.1]" or "[IPv6:2001:db8::1]"; RFC 5321 general literals are refused.
std::string literal_problem(std::string_view literal)
{
    if (literal.size() < 2 || literal.front() != '[' || literal.back() != ']')
        return "invalid address literal";
    std::string_view inner = literal.substr(1, literal.size() - 2);
    if (inner.size() >= 5 && equals_nocase(inner.substr(0, 5), "IPv6:"))
        return is_ipv6_literal(inner.substr(5)) ? "" : "invalid IPv6 address literal";
    return is_ipv4_literal(inner) ? "" : "invalid address literal";
}

std::string domain_problem(std::string_view domain)
{
    if (!domain.empty() && domain.front() == '[')
        return literal_problem(domain);
    return name_problem(domain);
}

bool is_dot_atom(std::string_view s)
{
    if (s.empty() || s.front() == '.' || s.back() == '.')
        return false;
    char previous = '\0';
    for (char c : s) {
        if (c == '.' ? previous == '.' : !is_atext(c))
            return false;
        previous = c;
    }
    return true;
}

// The local part as RFC 5321 writes it: a dot-atom, else a quoted string.
std::string written_local_part(std::string_view local)
{
    if (is_dot_atom(local))
        return std::string(local);
    std::string out;
    out.reserve(local.size() + 2);
    out += '"';
    for (char c : local) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    out += '"';
    return out;
}

// The one place a non-null Address is built: qualification and the checks
// that make the class invariant true. `domain` is empty or already valid.
Result<Address> make_address(std::string local, std::string domain, const AddressOptions& options)
{
    if (local.empty())
        return address_error("empty local part");
    for (char c : local)
        if (!is_printable(c))
            return address_error(describe(c) + " in local part");
    if (domain.empty()) {
        if (options.qualify_domain.empty())
            return address_error("address must be qualified");
        if (std::string problem = domain_problem(options.qualify_domain); !problem.empty())
            return address_error("qualify domain: " + problem);
        domain = options.qualify_domain;
    }
    std::size_t local_size = written_local_part(local).size();
    if (local_size > limits::local_part_accepted)
        return address_error("local part too long");
    if (local_size + domain.size() + 3 > limits::path)
        return address_error("address too long");
    return Address(Address::Parts{std::move(local), std::move(domain)});
}

// A word of a phrase or local part, or a dot between them.
struct Word {
    enum class Kind : std::uint8_t { atom, quoted, dot };
    Kind kind = Kind::atom;
    std::size_t begin = 0;
    std::size_t end = 0;
    std::string text;  // quoted strings decoded
    bool space_before = false;
};

// The display name: words joined by one space where the text had white space
// or comments between them (so "Q." stays "Q."), tabs made spaces.
std::string phrase_text(const std::vector<Word>& words)
{
    std::string out;
    for (const Word& w : words) {
        if (w.space_before && !out.empty())
            out += ' ';
        out += w.text;
    }
    for (char& c : out)
        if (c == '\t')
            c = ' ';
    return out;
}

// A lexer and parser over one input. In header mode (RFC 5322) it skips CFWS
// and folding, accepts obsolete forms and 8-bit phrases; otherwise (RFC 5321)
// no white space or comment is allowed anywhere. Methods return false after
// recording the first error.
class Parser {
public:
    Parser(std::string_view text, bool header) : text_(text), cur_(text), header_(header) {}

    Cursor& cursor() { return cur_; }
    Error take_error() { return error_ ? std::move(*error_) : address_error("invalid address"); }

    bool fail(std::string message)
    {
        if (!error_)
            error_ = address_error(std::move(message));
        return false;
    }
    bool unexpected(std::string_view where = "in address")
    {
        if (cur_.at_end())
            return fail("unexpected end of address");
        return fail("unexpected " + describe(cur_.peek()) + " " + std::string(where));
    }

    bool skip_cfws();
    bool parse_mailbox(const AddressOptions& options, Mailbox& box, bool& group_start);
    bool parse_route_addr(const AddressOptions& options, Mailbox& box, bool bracketed);

private:
    bool skip_fold();
    bool skip_comment();
    bool take_escaped(char& c);
    bool text_char_ok(char c) const { return is_printable(c) || (header_ && (c == '\t' || is_8bit(c))); }
    bool atom_char(char c) const { return is_atext(c) || (header_ && is_8bit(c)); }
    bool lex_quoted(std::string& out);
    bool lex_words(std::vector<Word>& words);
    bool lex_domain(std::string& out);
    bool skip_route();
    bool local_from_words(const std::vector<Word>& words, std::string& local);
    bool parse_addr_spec(const std::vector<Word>& words, const AddressOptions& options, Mailbox& box);

    std::string_view text_;
    Cursor cur_;
    bool header_;
    std::optional<Error> error_;
};

// A line break in a header value is only folding: CRLF or LF, then a space or tab.
bool Parser::skip_fold()
{
    std::size_t n = 1;
    if (cur_.peek() == '\r') {
        if (cur_.peek_at(1) != '\n')
            return fail("bare CR in address");
        n = 2;
    }
    if (!is_ascii_space(cur_.peek_at(n)))
        return fail("line break in address without folding white space");
    cur_.skip(n);
    return true;
}

// After a backslash: the quoted character, checked like any other.
bool Parser::take_escaped(char& c)
{
    if (cur_.at_end())
        return fail("backslash at end of address");
    c = cur_.next();
    if (!text_char_ok(c))
        return fail(describe(c) + " after backslash");
    return true;
}

// A comment, nested comments counted, not recursed into.
bool Parser::skip_comment()
{
    cur_.skip(1);  // '('
    std::size_t depth = 1;
    while (depth > 0) {
        if (cur_.at_end())
            return fail("unterminated comment");
        char c = cur_.peek();
        if (c == '\r' || c == '\n') {
            if (!skip_fold())
                return false;
            continue;
        }
        cur_.skip(1);
        if (c == '(') {
            if (++depth > limits::comment_depth)
                return fail("comments nested too deeply");
        } else if (c == ')') {
            --depth;
        } else if (c == '\\') {
            if (!take_escaped(c))
                return false;
        } else if (!text_char_ok(c)) {
            return fail(describe(c) + " in comment");
        }
    }
    return true;
}

bool Parser::skip_cfws()
{
    if (!header_)
        return true;
    while (!cur_.at_end()) {
        char c = cur_.peek();
        if (is_ascii_space(c))
            cur_.skip(1);
        else if (c == '\r' || c == '\n') {
            if (!skip_fold())
                return false;
        } else if (c == '(') {
            if (!skip_comment())
                return false;
        } else {
            break;
        }
    }
    return true;
}

bool Parser::lex_quoted(std::string& out)
{
    cur_.skip(1);  // '"'
    while (true) {
        if (cur_.at_end())
            return fail("unterminated quoted string");
        char c = cur_.peek();
        if (c == '"') {
            cur_.skip(1);
            return true;
        }
        if (header_ && (c == '\r' || c == '\n')) {
            if (!skip_fold())
                return false;
            continue;  // unfolding drops the line break, keeps the white space
        }
        cur_.skip(1);
        if (c == '\\') {
            if (!take_escaped(c))
                return false;
        } else if (!text_char_ok(c)) {
            return fail(describe(c) + " in quoted string");
        }
        out += c;
    }
}

// Atoms, quoted strings and dots up to the first other character; in header
// mode with the CFWS between them (and after the last one) skipped.
bool Parser::lex_words(std::vector<Word>& words)
{
    while (true) {
        std::size_t before = cur_.pos();
        if (!skip_cfws())
            return false;
        char c = cur_.peek();
        if (cur_.at_end() || (c != '"' && c != '.' && !atom_char(c)))
            return true;  // the caller looks at what ends the words
        Word w;
        w.begin = cur_.pos();
        w.space_before = w.begin != before;
        if (c == '"') {
            w.kind = Word::Kind::quoted;
            if (!lex_quoted(w.text))
                return false;
        } else if (c == '.') {
            w.kind = Word::Kind::dot;
            w.text = std::string(1, cur_.next());
        } else {
            w.text = std::string(cur_.take_while([this](char x) { return atom_char(x); }));
        }
        w.end = cur_.pos();
        words.push_back(std::move(w));
    }
}

// The domain after '@': a name or an address literal, checked.
bool Parser::lex_domain(std::string& out)
{
    std::size_t start = cur_.pos();
    if (cur_.consume('[')) {
        cur_.skip_while([](char c) { return is_printable(c) && c != ' ' && c != '[' && c != ']' && c != '\\'; });
        if (!cur_.consume(']'))
            return unexpected("in address literal");
    } else {
        cur_.skip_while([this](char c) { return atom_char(c) || c == '.'; });
    }
    out = std::string(text_.substr(start, cur_.pos() - start));
    if (out.empty())
        return cur_.at_end() || cur_.peek() == '>' ? fail("missing domain after '@'") : unexpected("after '@'");
    if (std::string problem = domain_problem(out); !problem.empty())
        return fail(problem);
    return true;
}

// An obsolete source route "@a,@b:" (RFC 5321 §4.1.2, RFC 5322 obs-route):
// checked, then dropped as RFC 5321 §C says.
bool Parser::skip_route()
{
    while (true) {
        if (!cur_.consume('@'))
            return unexpected("in source route");
        std::string domain;
        if (!skip_cfws() || !lex_domain(domain) || !skip_cfws())
            return false;
        if (cur_.consume(':'))
            return true;
        if (!cur_.consume(','))
            return unexpected("in source route");
        do {
            if (!skip_cfws())
                return false;
        } while (header_ && cur_.consume(','));
    }
}

// word *("." word); in RFC 5321 mode a dot-string or one quoted string.
bool Parser::local_from_words(const std::vector<Word>& words, std::string& local)
{
    if (!header_ && words.size() > 1)
        for (const Word& w : words)
            if (w.kind == Word::Kind::quoted)
                return fail("a quoted local part must be quoted as a whole");
    bool want_word = true;
    for (const Word& w : words) {
        bool is_dot = w.kind == Word::Kind::dot;
        if (is_dot == want_word)
            return fail(is_dot ? "misplaced '.' in local part" : "missing '@' or '<' after a name");
        local += w.text;
        want_word = !want_word;
    }
    if (want_word)
        return fail("misplaced '.' in local part");
    return true;
}

// local-part ["@" domain], the local part already lexed into `words`.
bool Parser::parse_addr_spec(const std::vector<Word>& words, const AddressOptions& options, Mailbox& box)
{
    if (words.empty())
        return unexpected();
    std::string local;
    if (!local_from_words(words, local))
        return false;
    std::string domain;
    box.spec_begin = words.front().begin;
    box.spec_end = words.back().end;
    if (cur_.consume('@')) {
        if (!skip_cfws() || !lex_domain(domain))
            return false;
        box.spec_end = cur_.pos();
        if (!skip_cfws())
            return false;
    }
    Result<Address> address = make_address(std::move(local), std::move(domain), options);
    if (!address)
        return fail(address.error().message());
    box.address = std::move(*address);
    return true;
}

// What lies between '<' and '>': nothing (the null path), or an address with
// an optional source route. Also an unbracketed RFC 5321 path.
bool Parser::parse_route_addr(const AddressOptions& options, Mailbox& box, bool bracketed)
{
    if (!skip_cfws())
        return false;
    std::size_t begin = cur_.pos();
    box.spec_begin = box.spec_end = begin;
    if (bracketed && cur_.peek() == '>') {
        if (!options.allow_null)
            return fail("null address not allowed here");
        box.address = Address();
        return true;
    }
    if (cur_.peek() == '@' && !skip_route())
        return false;
    std::vector<Word> words;
    if (!lex_words(words) || !parse_addr_spec(words, options, box))
        return false;
    box.spec_begin = begin;
    return true;
}

// A mailbox (name-addr or addr-spec), or the "display-name:" opening a group.
bool Parser::parse_mailbox(const AddressOptions& options, Mailbox& box, bool& group_start)
{
    group_start = false;
    std::vector<Word> words;
    if (!lex_words(words))
        return false;
    if (cur_.consume('<')) {
        box.display_name = phrase_text(words);
        box.angle = true;
        if (!parse_route_addr(options, box, true))
            return false;
        if (!cur_.consume('>'))
            return cur_.at_end() ? fail("missing '>' at end of address") : unexpected();
        return skip_cfws();
    }
    if (!words.empty() && cur_.consume(':')) {
        group_start = true;
        return true;
    }
    return parse_addr_spec(words, options, box);
}

// parse_path and parse_smtp_path: a Path at the start of `text`; the limit on
// its length applies to the text as written (a source route counts).
Result<Address> parse_bracketed_or_bare(std::string_view text, const AddressOptions& options,
                                        std::string_view& rest, bool require_bracket)
{
    Parser parser(text, false);
    Cursor& cur = parser.cursor();
    bool bracketed = cur.consume('<');
    if (require_bracket && !bracketed)
        return address_error(text.empty() ? "empty address" : "address must begin with '<'");
    if (!bracketed && text.empty())
        return address_error("empty address");
    Mailbox box;
    if (!parser.parse_route_addr(options, box, bracketed))
        return parser.take_error();
    if (bracketed && !cur.consume('>')) {
        if (cur.at_end())
            return address_error("missing '>' at end of address");
        parser.unexpected();
        return parser.take_error();
    }
    if (cur.pos() > limits::path)
        return address_error("address too long");
    rest = cur.rest();
    return std::move(box.address);
}

} // namespace

Address::Address(Parts parts) : local_(std::move(parts.local)), domain_(std::move(parts.domain)) {}

std::string Address::str() const
{
    if (is_null())
        return {};
    return written_local_part(local_) + "@" + domain_;
}

std::string Address::path() const { return "<" + str() + ">"; }

bool operator==(const Address& a, const Address& b)
{
    return a.local_ == b.local_ && equals_nocase(a.domain_, b.domain_);
}

Result<Address> parse_path(std::string_view text, const AddressOptions& options)
{
    text = trim(text);
    if (text.size() > limits::path)
        return address_error("address too long");
    std::string_view rest;
    Result<Address> address = parse_bracketed_or_bare(text, options, rest, false);
    if (address && !rest.empty())
        return address_error("unexpected " + describe(rest.front()) + " after address");
    return address;
}

Result<Address> parse_smtp_path(std::string_view text, const AddressOptions& options, std::string_view& rest)
{
    return parse_bracketed_or_bare(text, options, rest, true);
}

Result<Address> parse_address(std::string_view text, const AddressOptions& options)
{
    if (text.size() > limits::address_text)
        return address_error("address too long");
    Parser parser(text, true);
    if (!parser.skip_cfws())
        return parser.take_error();
    if (parser.cursor().at_end())
        return address_error("empty address");
    Mailbox box;
    bool group_start = false;
    if (!parser.parse_mailbox(options, box, group_start))
        return parser.take_error();
    if (group_start)
        return address_error("group syntax not allowed here");
    if (!parser.skip_cfws())
        return parser.take_error();
    if (!parser.cursor().at_end()) {
        parser.unexpected("after address");
        return parser.take_error();
    }
    return std::move(box.address);
}

Result<std::vector<Mailbox>> parse_address_list(std::string_view header_value, const AddressOptions& options)
{
    if (header_value.size() > limits::header_section)
        return address_error("header too long");
    Parser parser(header_value, true);
    Cursor& cur = parser.cursor();
    std::vector<Mailbox> list;
    bool in_group = false;
    while (true) {
        if (!parser.skip_cfws())
            return parser.take_error();
        if (cur.at_end())
            return list;  // a group's missing final ';' is tolerated
        if (cur.consume(','))
            continue;  // obsolete empty list element
        if (in_group && cur.consume(';')) {
            in_group = false;
        } else {
            Mailbox box;
            bool group_start = false;
            if (!parser.parse_mailbox(options, box, group_start))
                return parser.take_error();
            if (group_start) {
                if (in_group)
                    return address_error("group inside a group");
                in_group = true;
                continue;
            }
            if (list.size() >= limits::addresses_per_header)
                return address_error("too many addresses in header");
            list.push_back(std::move(box));
        }
        // After a mailbox or a group's ';': a comma, the end, or the group's ';'.
        if (!parser.skip_cfws())
            return parser.take_error();
        if (!cur.at_end() && cur.peek() != ',' && !(in_group && cur.peek() == ';')) {
            parser.unexpected("after address");
            return parser.take_error();
        }
    }
}

bool is_valid_domain(std::string_view text) { return domain_problem(text).empty(); }

} // namespace mm
