// SPDX-License-Identifier: GPL-2.0-or-later
// route-selector: answers qmgr's "which routes take these recipients now?"
// (selector.hh). Started by the supervisor as `route-selector -C
// /abs/masqmail.conf` with private/route listening on descriptor 3; runs
// as masqmail-route with no capability until SIGTERM. Its only untrusted
// input is the output of online_query and a message's header section.
#include "selector.hh"

#include "mm/daemon.hh"
#include "mm/fs.hh"
#include "mm/frame_server.hh"
#include "mm/limits.hh"
#include "mm/log.hh"
#include "mm/protocol.hh"
#include "mm/sysexits.hh"

#include <csignal>
#include <cstdio>
#include <event2/event.h>

namespace {

int fail(const char* what, const mm::Error& error)
{
    mm::log::error("%s: %s", what, error.message().c_str());
    (void)std::fprintf(stderr, "route-selector: %s: %s\n", what, error.message().c_str());
    return error.exit_code();
}

void on_signal(evutil_socket_t, short, void* base)
{
    event_base_loopexit(static_cast<event_base*>(base), nullptr);
}

} // namespace

int main(int argc, char** argv)
{
    namespace daemon = mm::daemon;
    namespace protocol = mm::protocol;

    auto started = daemon::start(argc, argv, "route-selector");
    if (!started)
        return fail("start", started.error());
    daemon::common_signals();
    auto listener = daemon::inherited_listener(0); // spool_dir/private/route
    if (!listener)
        return fail("listener", listener.error());
    auto qmgr = daemon::peer_uid(*started, daemon::queue_user);
    if (!qmgr)
        return fail("queue manager user", qmgr.error());
    if (auto became = daemon::become(*started, daemon::route_user, {}); !became)
        return fail("privileges", became.error());

    mm::route::Selector selector(started->config);
    event_base* base = event_base_new();
    {
        mm::FrameServer server(base, std::move(listener).value(), std::vector<uid_t> { *qmgr },
            [&](const mm::ConnectionPtr& c, mm::ipc::FrameReader& frame) {
                auto query = protocol::decode_route_query(frame);
                if (!query) {
                    mm::log::warning("bad route query: %s", query.error().message().c_str());
                    return c->close();
                }
                std::size_t want = static_cast<std::size_t>(
                    std::min<std::uint64_t>(query->query.header_length, mm::limits::header_section + 1));
                auto header = mm::read_range(query->message, query->query.content_offset, want);
                auto answer = protocol::encode_route_answer(frame.request_id(),
                    selector.answer(query->query, header ? *header : std::string()));
                if (!answer) {
                    mm::log::error("%s: cannot answer: %s", query->query.queue_id.c_str(),
                        answer.error().message().c_str());
                    return c->close();
                }
                c->send(*answer);
            },
            "route");
        event* term = evsignal_new(base, SIGTERM, on_signal, base);
        event* intr = evsignal_new(base, SIGINT, on_signal, base);
        event_add(term, nullptr);
        event_add(intr, nullptr);
        mm::log::info("route-selector started");
        event_base_dispatch(base);
        event_free(term);
        event_free(intr);
    }
    event_base_free(base);
    return mm::ex::ok;
}
