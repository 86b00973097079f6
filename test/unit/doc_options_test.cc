// SPDX-License-Identifier: GPL-2.0-or-later
// The man pages against the code: every option the config and route readers
// know (from their own tables) is documented in masqmail.conf(5) or
// masqmail.route(5), each deprecated name with its replacement, and every
// option the pages document is known to the readers; every option of the
// front end's table is in masqmail(8), and every option that page documents
// parses. Runs in test/unit/ of the source tree.
#include "../../wrappers/masqmail/cli.hh"
#include "catch.hh"
#include "mm/config.hh"
#include "mm/route.hh"

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace mm;
using config::OptionInfo;
using config::OptionStatus;

namespace {

std::string read_text(const std::string& path)
{
    std::ifstream in(path);
    REQUIRE(in.good());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The arguments of a macro line (".BI name \" = \" type"), quotes removed.
std::vector<std::string> macro_arguments(const std::string& line)
{
    std::vector<std::string> args;
    std::size_t i = line.find(' ');
    while (i != std::string::npos && i < line.size()) {
        while (i < line.size() && line[i] == ' ')
            ++i;
        if (i >= line.size())
            break;
        std::string arg;
        if (line[i] == '"') {
            std::size_t close = line.find('"', i + 1);
            arg = line.substr(i + 1, close == std::string::npos ? std::string::npos : close - i - 1);
            i = close == std::string::npos ? close : close + 1;
        } else {
            std::size_t end = line.find(' ', i);
            arg = line.substr(i, end == std::string::npos ? std::string::npos : end - i);
            i = end;
        }
        args.push_back(arg);
    }
    return args;
}

// Font escapes out, \- as -.
std::string plain(std::string text)
{
    text = std::regex_replace(text, std::regex(R"(\\f[BIRP])"), "");
    text = std::regex_replace(text, std::regex(R"(\\-)"), "-");
    text = std::regex_replace(text, std::regex(R"(\\\(..)"), " ");
    return text;
}

// One tagged paragraph (.TP or .TQ) of a page: the words in bold on its tag
// line, the section it is in, and the text of the paragraph.
struct Entry {
    std::string section;
    std::vector<std::string> tags; // the first bold word of each tag line
    std::vector<std::string> names; // every bold word of the tag lines
    std::string body;
};

std::vector<Entry> tagged_entries(const std::string& page)
{
    std::vector<Entry> entries;
    std::istringstream in(page);
    std::string line;
    std::string section;
    bool tag_next = false;
    bool in_body = false;
    while (std::getline(in, line)) {
        if (line.starts_with(".SH ")) {
            section = plain(line.substr(4));
            section.erase(std::remove(section.begin(), section.end(), '"'), section.end());
            in_body = false;
            continue;
        }
        if (line.starts_with(".TP") || line.starts_with(".TQ")) {
            tag_next = true;
            continue;
        }
        if (tag_next) {
            tag_next = false;
            bool grouped = in_body && !entries.empty() && entries.back().body.empty();
            std::vector<std::string> args = macro_arguments(line);
            std::string macro = line.substr(0, line.find(' '));
            std::vector<std::string> bold;
            for (std::size_t i = 0; i < args.size(); ++i)
                if (macro == ".B" || ((macro == ".BI" || macro == ".BR") && i % 2 == 0))
                    bold.push_back(plain(args[i]));
            if (!grouped || bold.empty())
                entries.push_back(Entry { section, {}, {}, {} });
            bool first = true;
            for (const std::string& b : bold) {
                std::istringstream words(b);
                std::string w;
                while (words >> w) {
                    while (!w.empty() && (w.back() == ',' || w.back() == ';'))
                        w.pop_back();
                    if (w.empty())
                        continue;
                    if (first)
                        entries.back().tags.push_back(w);
                    first = false;
                    entries.back().names.push_back(w);
                }
            }
            in_body = true;
            continue;
        }
        if (line.starts_with(".SS") || line.starts_with(".PP") || line.starts_with(".RS")) {
            in_body = false;
            continue;
        }
        if (in_body && !entries.empty())
            entries.back().body += plain(line) + "\n";
    }
    return entries;
}

bool is_legacy_section(const std::string& section)
{
    return section == "DEPRECATED OPTIONS";
}

// Every section but the deprecated one that documents options.
bool is_option_section(const std::string& section)
{
    return section != "SYNTAX" && section != "FILES" && !is_legacy_section(section);
}

bool looks_like_option(const std::string& word)
{
    return std::regex_match(word, std::regex("[a-z][a-z0-9_]*\\.?"));
}

// Checks one config page against one reader table.
void check_page(const std::string& page_path, const std::vector<OptionInfo>& table)
{
    std::vector<Entry> entries = tagged_entries(read_text(page_path));
    std::map<std::string, const Entry*> current;
    std::map<std::string, const Entry*> legacy;
    for (const Entry& e : entries) {
        for (const std::string& n : e.tags) {
            if (!looks_like_option(n))
                continue;
            if (is_legacy_section(e.section))
                legacy.emplace(n, &e);
            else if (is_option_section(e.section))
                current.emplace(n, &e);
        }
    }
    std::map<std::string, OptionInfo> known;
    for (const OptionInfo& o : table)
        known.emplace(std::string(o.name), o);

    for (const OptionInfo& o : table) {
        std::string name(o.name);
        INFO(page_path << ": " << name);
        if (o.status == OptionStatus::current) {
            CHECK(current.count(name) == 1);
            continue;
        }
        REQUIRE(legacy.count(name) == 1);
        const Entry& e = *legacy.at(name);
        // Its replacement is named in its entry, and documented itself.
        std::string replacement(o.replacement);
        if (!replacement.empty()) {
            CHECK(e.body.find(replacement) != std::string::npos);
            // ... and is an option of masqmail.conf or of a route file.
            bool in_a_table = false;
            for (const auto& table_of_either : { config::main_options(), config::route_options() })
                for (const OptionInfo& other : table_of_either)
                    in_a_table
                        = in_a_table || (other.name == replacement && other.status == OptionStatus::current);
            CHECK(in_a_table);
        }
        CHECK(!o.note.empty());
    }
    // The reverse: nothing documented that the reader does not know.
    for (const auto& [name, entry] : current) {
        INFO(page_path << " documents '" << name << "' in " << entry->section);
        REQUIRE(known.count(name) == 1);
        CHECK(known.at(name).status == OptionStatus::current);
    }
    for (const auto& [name, entry] : legacy) {
        INFO(page_path << " lists '" << name << "' as deprecated");
        REQUIRE(known.count(name) == 1);
        CHECK(known.at(name).status != OptionStatus::current);
    }
}

// The names of the front end's option table, read from its source (the
// table is private to cli.cc, and its names are the code).
std::vector<std::string> cli_option_names()
{
    std::string source = read_text("../../wrappers/masqmail/cli.cc");
    std::regex rule(R"re(OptionRule \{ "(-[^"]*)")re");
    std::vector<std::string> names;
    for (auto it = std::sregex_iterator(source.begin(), source.end(), rule); it != std::sregex_iterator();
         ++it)
        names.push_back((*it)[1]);
    return names;
}

} // namespace

TEST_CASE("masqmail.conf(5) documents every option of masqmail.conf, and no other")
{
    std::vector<OptionInfo> table = config::main_options();
    REQUIRE(table.size() > 40);
    check_page("../../doc/masqmail.conf.5", table);
}

TEST_CASE("masqmail.route(5) documents every option of a route file, and no other")
{
    std::vector<OptionInfo> table = config::route_options();
    REQUIRE(table.size() > 30);
    check_page("../../doc/masqmail.route.5", table);
}

TEST_CASE("masqmail(8) documents every command-line option, and each it documents parses")
{
    std::vector<std::string> table = cli_option_names();
    REQUIRE(table.size() > 30);
    std::set<std::string> documented;
    for (const Entry& e : tagged_entries(read_text("../../doc/masqmail.8")))
        if (e.section == "MODES" || e.section == "OPTIONS")
            for (const std::string& n : e.names)
                if (n.starts_with("-"))
                    documented.insert(n);
    for (const std::string& name : table) {
        INFO("masqmail(8) lacks " << name);
        CHECK(documented.count(name) == 1);
    }
    for (const std::string& name : documented) {
        if (name == "--")
            continue;
        INFO("masqmail(8) documents " << name);
        std::vector<std::string_view> args { name, "value" };
        Result<cli::Invocation> parsed = cli::parse_command_line("masqmail", args);
        if (!parsed)
            CHECK_FALSE(parsed.error().message().starts_with("unrecognized option"));
    }
}
