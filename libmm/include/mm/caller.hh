// SPDX-License-Identifier: GPL-2.0-or-later
// Who submits a local message and what that user may ask for (masqmail
// §1.6): the login and GECOS name of a uid, whether it is privileged (-f,
// runq, mailrm of others' mail), and the Submission built from what a
// sendmail command line asked. The uid comes from the kernel (getuid, or
// SO_PEERCRED in enqueue); the request is untrusted. Linked by the front end
// and enqueue.
#pragma once

#include "mm/config.hh"
#include "mm/enqueue.hh"
#include "mm/protocol.hh"
#include "mm/result.hh"

#include <optional>
#include <string>
#include <sys/types.h>

namespace mm {

struct Caller {
    uid_t uid = 0;
    std::string login;     // the passwd name, or the uid in decimal without one
    std::string full_name; // GECOS up to the first comma, "" when none
    bool privileged = false;
};

// root, the users mail and masqmail, members of group mail, and the owner of
// a private instance (`instance_owner`, when there is one) are privileged.
Caller identify_caller(uid_t uid, std::optional<uid_t> instance_owner);

// The Submission for a local sendmail request: the sender is the caller
// unless -f was given (privileged callers only; others get EX_NOPERM with
// masqmail's message), recipients parsed and qualified with host_name, pipe
// addresses refused, the full name from -F or GECOS. A request with an
// SMTP origin (smtp-listener, -bs) takes its MAIL FROM as given, needing no
// privilege; the caller (enqueue) decides whether its peer address is trusted.
Result<Submission> local_submission(
    const protocol::SubmitRequest& request, const Caller& caller, const config::MainConfig& config);

} // namespace mm
