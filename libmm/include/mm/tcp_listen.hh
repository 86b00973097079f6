// SPDX-License-Identifier: GPL-2.0-or-later
// Listening TCP sockets for listen_addresses entries. The host comes from
// root-owned configuration; a name is resolved with getaddrinfo (the hosts
// file first, as the system is set up). Linked by the supervisor and tests.
#pragma once

#include "mm/fd.hh"
#include "mm/result.hh"

#include <cstdint>
#include <string>
#include <vector>

namespace mm::tcp {

// Binds and listens on every address `host` resolves to (IPv6 sockets are
// IPv6-only, so "::" and "0.0.0.0" can both be listed), non-blocking and
// close-on-exec, with SO_REUSEADDR. Fails if none could be bound.
Result<std::vector<Fd>> listen(const std::string& host, std::uint16_t port);

} // namespace mm::tcp
