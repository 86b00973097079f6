// SPDX-License-Identifier: GPL-2.0-or-later
// masqmail -bs, smtpd, in.smtpd: one SMTP session on stdin and stdout.
#pragma once

#include "context.hh"

namespace mm::frontend {

// Runs the SMTP server session of smtp-listener on stdin/stdout as the
// invoking user; each accepted message is queued as sendmail queues it.
// Returns 0 at the end of the session.
int smtp_on_stdio(const Context& ctx);

} // namespace mm::frontend
