// SPDX-License-Identifier: GPL-2.0-or-later
// Caller identification and local submissions (mm/caller.hh).
#include "mm/caller.hh"

#include "mm/priv.hh"
#include "mm/sysexits.hh"

#include <algorithm>
#include <grp.h>
#include <pwd.h>

namespace mm {

namespace {

bool in_group_mail(const priv::Identity& who)
{
    struct group* g = ::getgrnam("mail");
    return g != nullptr && std::find(who.groups.begin(), who.groups.end(), g->gr_gid) != who.groups.end();
}

std::string gecos_name(uid_t uid)
{
    struct passwd* pw = ::getpwuid(uid);
    if (pw == nullptr || pw->pw_gecos == nullptr)
        return {};
    std::string g = pw->pw_gecos;
    return g.substr(0, g.find(','));
}

// A message received over SMTP: the MAIL FROM path needs no privilege (the
// SMTP port takes any from anyone), nothing is extracted from headers, and no
// GECOS name goes into a From: line.
Result<Submission> smtp_submission(
    const protocol::SubmitRequest& request, const Caller& caller, const config::MainConfig& config)
{
    const protocol::SmtpOrigin& origin = *request.smtp;
    auto protocol = parse_received_protocol(origin.protocol);
    if (!protocol || *protocol == ReceivedProtocol::local)
        return Error::permanent("unknown SMTP protocol '" + origin.protocol + "'");
    if (!request.sender || request.extract_recipients)
        return Error::permanent("an SMTP submission needs MAIL FROM and takes no -t");
    Submission s;
    AddressOptions sender_opts{.qualify_domain = config.host_name, .allow_null = true};
    auto sender = parse_address(*request.sender, sender_opts);
    if (!sender)
        return Error::permanent("invalid MAIL FROM '" + *request.sender + "': " + sender.error().message());
    s.sender = std::move(sender).value();
    AddressOptions rcpt_opts{.qualify_domain = config.host_name, .allow_null = false};
    for (const std::string& text : request.recipients) {
        auto a = parse_address(text, rcpt_opts);
        if (a && a->local_part().starts_with('|'))
            a = Error::permanent("pipe addresses are not accepted over SMTP");
        if (!a)
            return Error::permanent("invalid RCPT TO '" + text + "': " + a.error().message());
        s.recipients.push_back(std::move(a).value());
    }
    s.protocol = *protocol;
    s.peer_address = origin.peer_address;
    s.helo_name = origin.helo_name;
    s.eight_bit_mime = origin.eight_bit_mime;
    s.queue_only = request.queue_only || config.do_queue;
    if (origin.peer_address.empty()) { // -bs: a local user, as with sendmail
        s.ident = caller.login;
        s.uid = static_cast<std::uint32_t>(caller.uid);
    }
    return s;
}

} // namespace

Caller identify_caller(uid_t uid, std::optional<uid_t> instance_owner)
{
    Caller c;
    c.uid = uid;
    auto who = priv::lookup_uid(uid);
    if (who) {
        c.login = who->name;
        c.privileged = uid == 0 || who->name == "mail" || who->name == "masqmail" || in_group_mail(*who);
    } else {
        c.login = std::to_string(uid); // no passwd entry (containers)
        c.privileged = uid == 0;
    }
    c.privileged = c.privileged || (instance_owner && *instance_owner == uid);
    c.full_name = gecos_name(uid);
    return c;
}

Result<Submission> local_submission(
    const protocol::SubmitRequest& request, const Caller& caller, const config::MainConfig& config)
{
    if (request.smtp)
        return smtp_submission(request, caller, config);
    Submission s;
    AddressOptions sender_opts{.qualify_domain = config.host_name, .allow_null = true};
    if (!request.sender) {
        auto me = parse_address(caller.login, sender_opts);
        if (!me)
            return Error::permanent("cannot make a sender address of the login '" + caller.login + "'");
        s.sender = std::move(me).value();
    } else if (!caller.privileged) {
        return Error::permanent("must be root, mail or in group mail for setting return path.").exit_as(ex::noperm);
    } else {
        auto a = parse_address(*request.sender, sender_opts);
        if (!a)
            return Error::permanent("invalid return address '" + *request.sender + "': " + a.error().message());
        s.sender = std::move(a).value();
    }
    AddressOptions rcpt_opts{.qualify_domain = config.host_name, .allow_null = false};
    for (const std::string& text : request.recipients) {
        auto a = parse_address(text, rcpt_opts);
        if (a && a->local_part().starts_with('|'))
            a = Error::permanent("pipe addresses are not accepted from the command line");
        if (!a)
            return Error::permanent("invalid recipient address '" + text + "': " + a.error().message());
        s.recipients.push_back(std::move(a).value());
    }
    s.extract_recipients = request.extract_recipients;
    s.queue_only = request.queue_only || config.do_queue;
    s.full_name = request.full_name.value_or(caller.full_name);
    s.ident = caller.login;
    s.uid = static_cast<std::uint32_t>(caller.uid);
    return s;
}

} // namespace mm
