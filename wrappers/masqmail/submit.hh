// SPDX-License-Identifier: GPL-2.0-or-later
// Accept mode (sendmail, -bm, rmail): one message from stdin into the queue.
#pragma once

#include "context.hh"

#include "mm/enqueue.hh"
#include "mm/protocol.hh"

#include <string>
#include <string_view>

namespace mm::frontend {

// Returns the exit status: 0 only once the message is committed durably.
int submit_from_stdin(const Context& ctx);

// The Submission enqueue will make of `request` from this caller, or why not.
Result<Submission> check_submission(const Context& ctx, const protocol::SubmitRequest& request);

// Commits one message the way the caller can: to a running enqueue, in this
// process for the owner of a private instance, else through postdrop.
// Returns the queue id ("maildrop" through postdrop) once it is durable.
Result<std::string> queue_message(const Context& ctx, const protocol::SubmitRequest& request,
    const Submission& submission, std::string_view content);

} // namespace mm::frontend
