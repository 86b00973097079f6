// SPDX-License-Identifier: GPL-2.0-or-later
// local-deliver: delivers one top-level local recipient per request from
// qmgr into mbox, Maildir, the mda or an alias pipe, each leaf as its user.
// Started by the supervisor as `local-deliver -C /abs/masqmail.conf` with
// private/local listening on descriptor 3; runs until SIGTERM.
#include "aliases.hh"
#include "request.hh"
#include "server.hh"

#include "mm/daemon.hh"
#include "mm/log.hh"
#include "mm/sysexits.hh"

#include <cstdio>

namespace {

int fail(const char* what, const mm::Error& error)
{
    mm::log::error("%s: %s", what, error.message().c_str());
    (void)std::fprintf(stderr, "local-deliver: %s: %s\n", what, error.message().c_str());
    return error.exit_code();
}

} // namespace

int main(int argc, char** argv)
{
    using mm::priv::Capability;
    namespace daemon = mm::daemon;

    auto started = daemon::start(argc, argv, "local-deliver");
    if (!started)
        return fail("start", started.error());
    daemon::common_signals();

    // Descriptor 3: spool_dir/private/local, created by the supervisor.
    auto listener = daemon::inherited_listener(0);
    if (!listener)
        return fail("listener", listener.error());
    // The alias files are read before the switch: they may be root's alone.
    auto aliases = mm::local::LocalAliases::load(started->config);
    if (!aliases)
        return fail("aliases", mm::Error(aliases.error()).exit_as(mm::ex::config));
    // Only qmgr (user masqmail; the instance user in a private instance) may connect.
    auto qmgr = daemon::peer_uid(*started, daemon::queue_user);
    if (!qmgr)
        return fail("queue manager user", qmgr.error());

    // Become masqmail-local keeping CAP_SETUID and CAP_SETGID, permitted but
    // not effective, for the children's switch to each recipient; a private
    // instance keeps nothing and switches nothing.
    if (auto became
        = daemon::become(*started, daemon::local_user, { Capability::setuid, Capability::setgid });
        !became)
        return fail("privileges", became.error());

    mm::local::DeliveryContext ctx { &started->config, &*aliases, started->private_instance,
        started->instance_uid };
    mm::local::Server server(ctx, std::move(listener).value(), *qmgr);
    if (auto served = server.run(); !served)
        return fail("serve", served.error());
    return mm::ex::ok;
}
