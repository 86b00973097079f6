// SPDX-License-Identifier: GPL-2.0-or-later
// The legacy command line into an Invocation: one table of option rules, one
// handler per option. argv is untrusted (any user, any bytes); values are
// bounded here, addresses and ids are parsed later by their own parsers.
// Linked by the masqmail front end only.
#include "cli.hh"

#include "mm/config_value.hh"
#include "mm/cursor.hh"
#include "mm/limits.hh"
#include "mm/sysexits.hh"

#include <array>
#include <climits>
#include <cstddef>
#include <utility>

namespace mm::cli {
namespace {

constexpr unsigned max_debug_level = 9; // masqmail's levels
constexpr std::size_t max_config_path = PATH_MAX;
constexpr std::size_t ignored_option_shown = 64; // bytes of an ignored option kept for the log
// Recipients on argv share the bound of one address list in a header.
constexpr std::size_t max_word_arguments = limits::addresses_per_header;

Error usage_error(std::string message)
{
    return Error::permanent(std::move(message)).exit_as(ex::usage);
}

// Argument text for messages and logs: control bytes become '?', cut short.
std::string printable(std::string_view text)
{
    std::string out(text.substr(0, ignored_option_shown));
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == '\x7f')
            c = '?';
    return out;
}

std::string quoted(std::string_view text)
{
    return "'" + printable(text) + "'";
}

bool has_line_break(std::string_view text)
{
    return text.find_first_of("\r\n") != std::string_view::npos;
}
bool has_nul(std::string_view text)
{
    return text.find('\0') != std::string_view::npos;
}

// Header injection (DESIGN rule 3): -f and -F values end up in headers.
Result<void> check_header_value(std::string_view option, std::string_view what, std::string_view value)
{
    std::string prefix = std::string(option) + ": " + std::string(what);
    if (has_line_break(value))
        return usage_error(prefix + " contains a line break");
    if (has_nul(value))
        return usage_error(prefix + " contains a NUL byte");
    if (value.size() > limits::address_text)
        return usage_error(prefix + " too long (at most " + std::to_string(limits::address_text) + " bytes)");
    return ok();
}

struct Parser {
    explicit Parser(std::span<const std::string_view> arguments)
        : args(arguments)
    {
    }

    std::span<const std::string_view> args;
    std::size_t next = 0; // index of the next unread argument
    Invocation inv;
    std::optional<Mode> mode;
    std::string mode_source; // the option or program name that chose the mode
    bool json = false;
    std::vector<std::string> words; // non-option arguments, in order

    Result<void> request_mode(Mode wanted, std::string_view source);
    // The next argument as an option's value, unless it looks like an option.
    std::optional<std::string_view> take_value_word();
    void ignore(std::string_view option, std::string_view value = {});
    Result<void> add_word(std::string_view word);
};

// -bd/-bD combine with -qINTERVAL, and -qo NAME refines a queue run (so
// `runq -qo NAME` works); any other second mode is masqmail's conflict.
std::optional<Mode> combined_mode(Mode current, Mode wanted)
{
    auto is_daemon = [](Mode m) { return m == Mode::daemon || m == Mode::foreground_daemon; };
    auto is_run = [](Mode m) { return m == Mode::queue_run || m == Mode::route_run; };
    if (current == wanted)
        return current;
    if (is_daemon(current) && wanted == Mode::queue_daemon)
        return current;
    if (current == Mode::queue_daemon && is_daemon(wanted))
        return wanted;
    if (is_run(current) && is_run(wanted))
        return Mode::route_run;
    return std::nullopt;
}

Result<void> Parser::request_mode(Mode wanted, std::string_view source)
{
    if (!mode) {
        mode = wanted;
        mode_source = std::string(source);
        return ok();
    }
    std::optional<Mode> combined = combined_mode(*mode, wanted);
    if (!combined)
        return usage_error("operation mode was already specified");
    mode = combined;
    return ok();
}

std::optional<std::string_view> Parser::take_value_word()
{
    if (next >= args.size() || args[next].starts_with('-'))
        return std::nullopt;
    return args[next++];
}

void Parser::ignore(std::string_view option, std::string_view value)
{
    std::string text(option);
    if (!value.empty())
        text += " " + std::string(value);
    inv.ignored_options.push_back(printable(text));
}

Result<void> Parser::add_word(std::string_view word)
{
    if (words.size() >= max_word_arguments)
        return usage_error("too many arguments (at most " + std::to_string(max_word_arguments) + ")");
    if (word.size() > limits::address_text)
        return usage_error("argument too long (at most " + std::to_string(limits::address_text)
            + " bytes): " + quoted(word));
    if (has_line_break(word) || has_nul(word))
        return usage_error("argument contains a line break or NUL byte: " + quoted(word));
    words.emplace_back(word);
    return ok();
}

// ---- the option table ----

enum class Takes : std::uint8_t {
    nothing, // the whole argument is the option
    value, // glued (-fADDR, --explain=ADDR) or the next argument not starting with '-'
    rest, // a family: whatever follows the name, possibly nothing (-oX, -qX)
};

struct OptionRule {
    std::string_view name;
    Takes takes;
    std::string_view value_kind; // "address" in "-f requires address arg."
    Result<void> (*apply)(Parser&, const OptionRule&, std::string_view value);
};

Result<void> set_mode(Parser& p, const OptionRule& rule, Mode mode)
{
    return p.request_mode(mode, rule.name);
}

Result<void> set_config_path(Parser& p, const OptionRule& rule, std::string_view path)
{
    if (path.empty())
        return usage_error(std::string(rule.name) + " requires filename arg.");
    if (path.size() > max_config_path || has_nul(path))
        return usage_error("specified config file " + quoted(path) + " is invalid.");
    p.inv.config_path = std::string(path);
    return ok();
}

Result<void> set_debug_level(Parser& p, const OptionRule&, std::string_view text)
{
    std::optional<unsigned> level = parse_decimal<unsigned>(text);
    if (!level || *level > max_debug_level)
        return usage_error(
            "invalid debug level " + quoted(text) + " (0 to " + std::to_string(max_debug_level) + ")");
    p.inv.debug_level = *level;
    return ok();
}

// -f and -r. An empty sender is the null sender, as Postfix's sendmail has it.
Result<void> set_sender(Parser& p, const OptionRule& rule, std::string_view address)
{
    if (Result<void> checked = check_header_value(rule.name, "address", address); !checked)
        return checked;
    p.inv.sender = address.empty() ? std::string("<>") : std::string(address);
    return ok();
}

Result<void> set_full_name(Parser& p, const OptionRule& rule, std::string_view name)
{
    if (Result<void> checked = check_header_value(rule.name, "name", name); !checked)
        return checked;
    p.inv.full_name = std::string(name);
    return ok();
}

// -oi, -odq, -odb mean something; every other -oX is sendmail's and ignored.
Result<void> apply_sendmail_option(Parser& p, const OptionRule& rule, std::string_view rest)
{
    if (rest == "i")
        p.inv.dot_terminates = false;
    else if (rest == "dq")
        p.inv.queue_only = true;
    else if (rest == "db")
        p.inv.background = true;
    else
        p.ignore(std::string(rule.name) + std::string(rest));
    return ok();
}

// masqmail §10 17: a unit is required, and 0 would be a busy loop.
Result<std::chrono::seconds> parse_queue_interval(std::string_view text)
{
    std::string prefix = "invalid queue interval " + quoted(text) + ": ";
    Cursor c(text);
    if (!c.take_while(is_ascii_digit).empty() && c.at_end())
        return usage_error(prefix + "needs a unit (s, m, h, d or w)");
    Result<std::chrono::seconds> interval = config::parse_interval(text);
    if (!interval)
        return usage_error(prefix + "use digits and one unit (s, m, h, d or w), e.g. 30m");
    if (interval->count() == 0)
        return usage_error(prefix + "must be more than zero");
    return interval;
}

// -q alone is one run; -qINTERVAL (or -q INTERVAL, when the next word starts
// with a digit, as masqmail 1.0 accepted) is the queue daemon. masqmail took
// any next word (§10 17: `-q foo`); here such a word stays an argument.
Result<void> apply_queue_option(Parser& p, const OptionRule& rule, std::string_view rest)
{
    bool next_is_interval
        = p.next < p.args.size() && !p.args[p.next].empty() && is_ascii_digit(p.args[p.next][0]);
    if (rest.empty() && next_is_interval)
        rest = p.args[p.next++];
    if (rest.empty())
        return p.request_mode(Mode::queue_run, rule.name);
    Result<std::chrono::seconds> interval = parse_queue_interval(rest);
    if (!interval)
        return std::move(interval).error();
    p.inv.queue_interval = *interval;
    return p.request_mode(Mode::queue_daemon, rule.name);
}

bool is_route_name_char(char c)
{
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '_' || c == '-' || c == '.';
}

// The name must be usable as the NAME of query_routes.NAME.
Result<void> set_route_run(Parser& p, const OptionRule& rule, std::string_view name)
{
    Cursor c(name);
    c.skip_while(is_route_name_char);
    if (name.empty() || !c.at_end() || name.size() > limits::config_name)
        return usage_error("invalid route name " + quoted(name));
    p.inv.route_name = std::string(name);
    return p.request_mode(Mode::route_run, rule.name);
}

Result<void> set_explain(Parser& p, const OptionRule& rule, std::string_view address)
{
    p.inv.explain_address = std::string(address);
    return p.request_mode(Mode::explain, rule.name);
}

Result<void> ignore_flag(Parser& p, const OptionRule& rule, std::string_view)
{
    p.ignore(rule.name);
    return ok();
}

Result<void> ignore_with_value(Parser& p, const OptionRule& rule, std::string_view value)
{
    p.ignore(rule.name, value);
    return ok();
}

Result<void> ignore_hop_count(Parser& p, const OptionRule& rule, std::string_view value)
{
    if (!parse_decimal<unsigned>(value))
        return usage_error(std::string(rule.name) + " requires number arg.");
    p.ignore(rule.name, value);
    return ok();
}

// sendmail -X LOGFILE writes the whole SMTP dialogue to any file the caller
// names; it has been used to plant web shells (PHPMailer, CVE-2016-10033).
Result<void> refuse_traffic_log(Parser&, const OptionRule&, std::string_view)
{
    return usage_error(
        "-X is refused: masqmail writes no traffic log files (the option has been used to write "
        "arbitrary files)");
}

template <Mode M> Result<void> mode_option(Parser& p, const OptionRule& rule, std::string_view)
{
    return set_mode(p, rule, M);
}

template <bool Invocation::*Flag, bool Value>
Result<void> flag_option(Parser& p, const OptionRule&, std::string_view)
{
    p.inv.*Flag = Value;
    return ok();
}

Result<void> set_json(Parser& p, const OptionRule&, std::string_view)
{
    p.json = true;
    return ok();
}

constexpr std::array option_rules {
    OptionRule { "-bm", Takes::nothing, {}, mode_option<Mode::accept> },
    OptionRule { "-bd", Takes::nothing, {}, mode_option<Mode::daemon> },
    OptionRule { "-bD", Takes::nothing, {}, mode_option<Mode::foreground_daemon> },
    OptionRule { "-bs", Takes::nothing, {}, mode_option<Mode::smtp_stdio> },
    OptionRule { "-bp", Takes::nothing, {}, mode_option<Mode::list_queue> },
    OptionRule { "-bi", Takes::nothing, {}, mode_option<Mode::rebuild_aliases> },
    OptionRule { "-bV", Takes::nothing, {}, mode_option<Mode::version> },
    OptionRule { "-Mrm", Takes::nothing, {}, mode_option<Mode::remove> },
    OptionRule { "-q", Takes::rest, {}, apply_queue_option },
    OptionRule { "-qo", Takes::value, "name", set_route_run },
    OptionRule { "-C", Takes::value, "filename", set_config_path },
    OptionRule { "-d", Takes::value, "number", set_debug_level },
    OptionRule { "-f", Takes::value, "address", set_sender },
    OptionRule { "-r", Takes::value, "address", set_sender },
    OptionRule { "-F", Takes::value, "name", set_full_name },
    OptionRule { "-o", Takes::rest, {}, apply_sendmail_option },
    OptionRule { "-t", Takes::nothing, {}, flag_option<&Invocation::extract_recipients, true> },
    OptionRule { "-i", Takes::nothing, {}, flag_option<&Invocation::dot_terminates, false> },
    OptionRule { "-v", Takes::nothing, {}, flag_option<&Invocation::verbose, true> },
    OptionRule { "-m", Takes::nothing, {}, ignore_flag },
    OptionRule { "-n", Takes::nothing, {}, ignore_flag },
    OptionRule { "-U", Takes::nothing, {}, ignore_flag },
    OptionRule { "-G", Takes::nothing, {}, ignore_flag },
    OptionRule { "-B", Takes::value, "type", ignore_with_value },
    OptionRule { "-N", Takes::value, "dsn", ignore_with_value },
    OptionRule { "-R", Takes::value, "ret", ignore_with_value },
    OptionRule { "-V", Takes::value, "envid", ignore_with_value },
    OptionRule { "-L", Takes::value, "tag", ignore_with_value },
    OptionRule { "-h", Takes::value, "number", ignore_hop_count },
    OptionRule { "-X", Takes::rest, {}, refuse_traffic_log },
    OptionRule { "--check-config", Takes::nothing, {}, mode_option<Mode::check_config> },
    OptionRule { "--daemon-dir", Takes::nothing, {}, mode_option<Mode::daemon_dir> },
    OptionRule { "--version", Takes::nothing, {}, mode_option<Mode::version> },
    OptionRule { "--help", Takes::nothing, {}, mode_option<Mode::help> },
    OptionRule { "--json", Takes::nothing, {}, set_json },
    OptionRule { "--explain", Takes::value, "address", set_explain },
};

// The rule for `word` and its glued value; the longest matching name wins
// (-qoNAME is -qo, not -q with "oNAME").
std::pair<const OptionRule*, std::optional<std::string_view>> find_rule(std::string_view word)
{
    const OptionRule* found = nullptr;
    std::optional<std::string_view> glued;
    for (const OptionRule& rule : option_rules) {
        if (!word.starts_with(rule.name) || (found != nullptr && found->name.size() >= rule.name.size()))
            continue;
        std::string_view rest = word.substr(rule.name.size());
        bool is_long = rule.name.starts_with("--");
        if (rest.empty()) {
            found = &rule;
            glued = rule.takes == Takes::rest ? std::optional(rest) : std::nullopt;
        } else if (rule.takes == Takes::rest || (rule.takes == Takes::value && !is_long)) {
            found = &rule;
            glued = rest;
        } else if (rule.takes == Takes::value && rest.starts_with('=')) {
            found = &rule;
            glued = rest.substr(1);
        }
    }
    return { found, glued };
}

// Postfix's getopt lets flags share one dash (`sendmail -ti`); masqmail did not.
bool is_flag_cluster(std::string_view word)
{
    return word.size() > 2 && word.substr(1).find_first_not_of("timnvUG") == std::string_view::npos;
}

Result<void> apply_option(Parser& p, std::string_view word)
{
    auto [rule, glued] = find_rule(word);
    if (rule == nullptr && is_flag_cluster(word)) {
        for (char flag : word.substr(1))
            if (Result<void> applied = apply_option(p, std::string { '-', flag }); !applied)
                return applied;
        return ok();
    }
    if (rule == nullptr)
        return usage_error("unrecognized option " + quoted(word));
    std::optional<std::string_view> value = glued;
    if (rule->takes == Takes::value && !value)
        value = p.take_value_word();
    if (rule->takes == Takes::value && !value)
        return usage_error(std::string(rule->name) + " requires " + std::string(rule->value_kind) + " arg.");
    return rule->apply(p, *rule, value.value_or(std::string_view {}));
}

// ---- names and the final decision ----

struct NamedMode {
    std::string_view program;
    Mode mode;
};

// masqmail §1.1; a name's mode counts as already specified (`mailq -q` is a
// conflict). rmail is accept mode with -i semantics, as in masqmail 0.3.
constexpr std::array named_modes {
    NamedMode { "mailq", Mode::list_queue },
    NamedMode { "runq", Mode::queue_run },
    NamedMode { "mailrm", Mode::remove },
    NamedMode { "newaliases", Mode::rebuild_aliases },
    NamedMode { "smtpd", Mode::smtp_stdio },
    NamedMode { "in.smtpd", Mode::smtp_stdio },
    NamedMode { "rmail", Mode::accept },
};

void apply_program_name(Parser& p, std::string_view program_name)
{
    for (const NamedMode& named : named_modes)
        if (program_name == named.program) {
            p.mode = named.mode;
            p.mode_source = std::string(program_name);
        }
    if (program_name == "rmail")
        p.inv.dot_terminates = false; // uucp hands over a raw message: a lone dot is data
}

// The words go where the mode wants them; modes that take none refuse them
// (so `masqmail -q foo` is an error, not an interval: masqmail §10 17).
Result<Invocation> finish(Parser& p)
{
    if (p.json) {
        if (p.mode != Mode::list_queue)
            return usage_error("--json is only valid with -bp or mailq");
        p.mode = Mode::list_queue_json;
    }
    if (!p.mode)
        p.mode = p.words.empty() && !p.inv.extract_recipients ? Mode::version : Mode::accept;
    p.inv.mode = *p.mode;
    if (p.inv.mode == Mode::accept) {
        p.inv.recipients = std::move(p.words);
    } else if (p.inv.mode == Mode::remove) {
        if (p.words.empty())
            return usage_error(p.mode_source + " requires message id arg.");
        p.inv.message_ids = std::move(p.words);
    } else if (!p.words.empty()) {
        return usage_error(
            "unexpected argument " + quoted(p.words.front()) + " (" + p.mode_source + " takes no addresses)");
    }
    return std::move(p.inv);
}

} // namespace

// masqmail §10 23 fixed: options count after recipients too (as sendmail and
// Postfix permute argv); only `--` ends them.
Result<Invocation> parse_command_line(std::string_view program_name, std::span<const std::string_view> args)
{
    Parser p(args);
    apply_program_name(p, program_name);
    bool options_ended = false;
    while (p.next < args.size()) {
        std::string_view word = args[p.next++];
        Result<void> step = ok();
        if (options_ended || !word.starts_with('-'))
            step = p.add_word(word);
        else if (word == "--")
            options_ended = true;
        else
            step = apply_option(p, word);
        if (!step)
            return std::move(step).error();
    }
    return finish(p);
}

const char* mode_name(Mode mode)
{
    switch (mode) {
    case Mode::accept:
        return "accept";
    case Mode::daemon:
        return "daemon";
    case Mode::foreground_daemon:
        return "foreground_daemon";
    case Mode::queue_daemon:
        return "queue_daemon";
    case Mode::queue_run:
        return "queue_run";
    case Mode::route_run:
        return "route_run";
    case Mode::smtp_stdio:
        return "smtp_stdio";
    case Mode::list_queue:
        return "list_queue";
    case Mode::list_queue_json:
        return "list_queue_json";
    case Mode::rebuild_aliases:
        return "rebuild_aliases";
    case Mode::version:
        return "version";
    case Mode::remove:
        return "remove";
    case Mode::check_config:
        return "check_config";
    case Mode::explain:
        return "explain";
    case Mode::daemon_dir:
        return "daemon_dir";
    case Mode::help:
        return "help";
    }
    return "unknown";
}

std::string_view usage_text()
{
    return "usage:\n"
           "  sendmail [-t] [-i|-oi] [-f ADDRESS] [-F NAME] [-odq|-odb] [-C FILE] [--] RECIPIENT...\n"
           "  masqmail -bm ...            accept one message from stdin (the default)\n"
           "  masqmail -bd|-bD [-qINTERVAL]  run the daemons (-bD in the foreground)\n"
           "  masqmail -qINTERVAL         periodic queue runs only (INTERVAL: 30m, 1h, ...)\n"
           "  masqmail -q | runq          one queue run\n"
           "  masqmail -qo NAME           one queue run through route NAME\n"
           "  masqmail -bp [--json] | mailq [--json]   list the queue\n"
           "  masqmail -Mrm ID... | mailrm ID...       remove messages\n"
           "  masqmail -bs                SMTP on stdin/stdout\n"
           "  masqmail -bi | newaliases   check the alias files\n"
           "  masqmail -bV | --version    print the version\n"
           "  masqmail --check-config [-C FILE]\n"
           "  masqmail --explain ADDRESS  show what would happen to ADDRESS\n"
           "  masqmail --daemon-dir       print where the daemons are installed\n"
           "other options: -d LEVEL (root), -v; sendmail's -B, -h, -L, -m, -n, -N, -R, -U, -G, -V and\n"
           "-oX are accepted and ignored; -X is refused.\n";
}

} // namespace mm::cli
