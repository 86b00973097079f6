// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail --check-config: masqmail.conf, every route file it names and both
// alias files, each problem printed as "file:line: reason". Reads only
// administrator-owned files. Linked by the front end.
#include "mm/config_check.hh"

#include "mm/alias.hh"
#include "mm/config.hh"
#include "mm/route.hh"
#include "mm/sysexits.hh"

#include "mm_build_config.h"

#include <cerrno>
#include <cstring>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace mm::config {

namespace {

// The secret file must exist and must not be readable by everyone (the
// remote-deliver process refuses it then).
void check_secret_file(const RouteConfig& route, Diagnostics& diag)
{
    if (!route.auth_secret_file)
        return;
    struct stat st { };
    if (::stat(route.auth_secret_file->c_str(), &st) != 0) {
        diag.warning(
            route.file, 0, "'auth_secret_file' " + in_quotes(*route.auth_secret_file) + " cannot be found");
        return;
    }
    if ((st.st_mode & S_IROTH) != 0)
        diag.error(route.file, 0,
            "'auth_secret_file' " + in_quotes(*route.auth_secret_file)
                + " is readable by everyone (chmod o-r)");
}

// Every route file named, each once, in the order a delivery would try them.
std::size_t check_routes(const MainConfig& main, Diagnostics& diag)
{
    std::vector<std::string> files = main.permanent_routes;
    for (const auto& [name, routes] : main.query_routes)
        files.insert(files.end(), routes.begin(), routes.end());
    std::set<std::string> seen;
    for (const std::string& file : files) {
        if (!seen.insert(file).second)
            continue;
        if (std::optional<RouteConfig> route = read_route_config(file, diag))
            check_secret_file(*route, diag);
    }
    return seen.size();
}

std::size_t check_aliases(const MainConfig& main, Diagnostics& diag)
{
    // Without a host_name (an error already), qualify for the syntax check only.
    std::string qualify = main.host_name.empty() ? "localhost" : main.host_name;
    std::size_t count = 0;
    if (main.globalias_file) {
        (void)read_alias_file(*main.globalias_file, AliasFileKind::glob, qualify, diag);
        ++count;
    }
    if (main.alias_file) {
        (void)read_alias_file(*main.alias_file, AliasFileKind::plain, qualify, diag);
        ++count;
    }
    return count;
}

// errmsg_file and warnmsg_file: one set but unreadable is used as the
// built-in text (qmgr logs it too); the defaults need not exist.
void check_templates(const MainConfig& main, std::string_view file, Diagnostics& diag)
{
    for (auto [name, path] : {std::pair{"errmsg_file", &main.errmsg_file}, std::pair{"warnmsg_file", &main.warnmsg_file}})
        if (!path->starts_with(MM_DATADIR "/tpl/") && ::access(path->c_str(), R_OK) != 0)
            diag.warning(file, 0, std::string("'") + name + "' " + in_quotes(*path) + " cannot be read ("
                + std::strerror(errno) + "); the built-in text is used");
}

} // namespace

int check_config(const std::string& path, std::FILE* out)
{
    Diagnostics diag;
    Result<ConfigFile> file = read_config_file(path, limits::config_file);
    if (!file) {
        diag.error(path, 0, file.error().message());
        diag.print(out);
        return ex::config;
    }
    if (std::optional<std::string> reason = writable_by_others(*file))
        diag.error(path, 0, *reason);
    MainConfig main = parse_main_config_partial(file->text, path, diag);
    std::size_t routes = check_routes(main, diag);
    std::size_t aliases = check_aliases(main, diag);
    check_templates(main, path, diag);
    diag.print(out);
    if (diag.has_errors())
        return ex::config;
    (void)std::fprintf(out, "%s: ok (%zu route file%s, %zu alias file%s, %zu warning%s)\n", path.c_str(),
        routes, routes == 1 ? "" : "s", aliases, aliases == 1 ? "" : "s", diag.warning_count(),
        diag.warning_count() == 1 ? "" : "s");
    return ex::ok;
}

} // namespace mm::config
