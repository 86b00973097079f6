// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail, the front end of the legacy command line. Runs as the invoking
// user with no privilege; argv and the environment are untrusted. The name it
// is called by (sendmail, mailq, runq, ...) selects the default mode.
#include "mm/config_check.hh"
#include "mm/paths.hh"
#include "mm/sysexits.hh"
#include "mm_build_config.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

void print_version() { std::printf("MasqMail %s\n", MM_VERSION); }

std::string_view program_name(const char* argv0)
{
    std::string_view name(argv0 != nullptr ? argv0 : "masqmail");
    auto slash = name.rfind('/');
    return slash == std::string_view::npos ? name : name.substr(slash + 1);
}

int not_yet(std::string_view what)
{
    std::fprintf(stderr, "masqmail: %.*s is not available in this build yet\n",
        static_cast<int>(what.size()), what.data());
    return mm::ex::unavailable;
}

} // namespace

int main(int argc, char* argv[])
{
    std::string_view name = program_name(argc > 0 ? argv[0] : nullptr);
    if (name != "masqmail" && name != "sendmail")
        return not_yet(name);

    std::string config = mm::paths::default_config();
    bool check = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; ++i) {
        std::string_view arg(argv[i]);
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg == "-bV" || arg == "--version") {
            print_version(); // masqmail prints the version without reading any config
            return mm::ex::ok;
        }
        if (arg == "--daemon-dir") {
            // Like postconf daemon_directory: where this binary finds its daemons.
            std::printf("%s\n", mm::paths::daemon_dir().c_str());
            return mm::ex::ok;
        }
        if (arg == "--check-config") {
            check = true;
        } else if (arg == "-C") {
            if (i + 1 >= argc || argv[i + 1][0] == '-') {
                std::fprintf(stderr, "masqmail: -C requires filename arg.\n");
                return mm::ex::usage;
            }
            config = argv[++i];
        } else if (arg.starts_with("-C")) {
            config = std::string(arg.substr(2));
        } else {
            return not_yet(arg);
        }
    }
    if (check)
        return mm::config::check_config(config, stdout);
    if (i >= argc) {
        print_version(); // no mode and no recipient: masqmail prints its version
        return mm::ex::ok;
    }
    return not_yet("delivery of mail");
}
