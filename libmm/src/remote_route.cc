// SPDX-License-Identifier: GPL-2.0-or-later
// Route options for one SMTP connection (mm/remote_route.hh).
#include "mm/remote_route.hh"

#include "mm/fd.hh"
#include "mm/route_select.hh"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mm {

namespace {

smtp::TlsPolicy policy(config::TlsMode mode)
{
    switch (mode) {
    case config::TlsMode::none: return smtp::TlsPolicy::none;
    case config::TlsMode::opportunistic: return smtp::TlsPolicy::opportunistic;
    case config::TlsMode::starttls: return smtp::TlsPolicy::required;
    case config::TlsMode::implicit: return smtp::TlsPolicy::none; // TLS from the first byte: no STARTTLS
    }
    return smtp::TlsPolicy::required;
}

std::optional<smtp::AuthMechanism> mechanism(const std::optional<config::AuthMechanism>& m)
{
    if (!m)
        return std::nullopt;
    switch (*m) {
    case config::AuthMechanism::plain: return smtp::AuthMechanism::plain;
    case config::AuthMechanism::login: return smtp::AuthMechanism::login;
    case config::AuthMechanism::cram_md5: return smtp::AuthMechanism::cram_md5;
    case config::AuthMechanism::xoauth2: return smtp::AuthMechanism::xoauth2;
    case config::AuthMechanism::oauthbearer: return smtp::AuthMechanism::oauthbearer;
    }
    return std::nullopt;
}

// The first line of a secret file that only its owner may read.
Result<std::string> secret_from_file(const std::string& path)
{
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return Error::temporary("auth_secret_file " + path + ": " + std::strerror(errno));
    Fd file(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return Error::temporary("auth_secret_file " + path + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        return Error::temporary("auth_secret_file " + path + " is not a regular file");
    if ((st.st_mode & 0044) != 0)
        return Error::temporary("auth_secret_file " + path
            + " is readable by group or others: make it mode 0600 or 0400, owned by the user that sends"
              " (masqmail-remote; in a private instance, the instance's user)");
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0)
        return Error::temporary("auth_secret_file " + path + ": " + std::strerror(errno));
    std::string text(buf, static_cast<std::size_t>(n));
    text = text.substr(0, text.find('\n'));
    if (!text.empty() && text.back() == '\r')
        text.pop_back();
    if (text.empty())
        return Error::temporary("auth_secret_file " + path + " has no secret on its first line");
    return text;
}

} // namespace

bool implicit_tls(const config::RouteConfig& route)
{
    return route.tls == config::TlsMode::implicit;
}

smtp::ClientOptions client_options(const config::RouteConfig& route, const config::MainConfig& main,
    const std::string& server_name)
{
    smtp::ClientOptions o;
    o.helo_name = route.helo_name.value_or(main.host_name);
    o.server_name = server_name;
    o.instant_helo = route.instant_helo;
    o.pipelining = route.do_pipelining;
    o.tls = policy(route.tls);
    o.auth_plaintext = route.auth_plaintext;
    return o;
}

Result<smtp::TlsClientOptions> tls_options(const config::RouteConfig& route, const std::string& host)
{
    smtp::TlsClientOptions o;
    o.server_name = host;
    o.verify = route.tls_verify;
    o.ca_file = route.tls_ca_file;
    if (route.tls_fingerprint) {
        o.fingerprint = smtp::parse_fingerprint(*route.tls_fingerprint);
        if (!o.fingerprint)
            return Error::permanent(route.file + ": tls_fingerprint is not a SHA-256 fingerprint");
    }
    return o;
}

Result<std::optional<smtp::Credentials>> route_credentials(
    const config::RouteConfig& route, std::chrono::milliseconds timeout)
{
    if (!route.auth_login || !(route.auth_secret || route.auth_secret_file || route.auth_secret_command))
        return std::optional<smtp::Credentials>();
    smtp::Credentials c;
    c.mechanism = mechanism(route.auth_name);
    c.login = *route.auth_login;
    if (route.auth_secret) {
        c.secret = *route.auth_secret;
    } else if (route.auth_secret_file) {
        auto secret = secret_from_file(*route.auth_secret_file);
        if (!secret)
            return std::move(secret).error();
        c.secret = std::move(*secret);
    } else {
        std::string why;
        auto secret = first_output_line(*route.auth_secret_command, timeout, &why);
        if (!secret)
            return Error::temporary("auth_secret_command: " + why);
        c.secret = std::move(*secret);
    }
    return std::optional<smtp::Credentials>(std::move(c));
}

} // namespace mm
