// SPDX-License-Identifier: GPL-2.0-or-later
// The frames the daemons of the local mail path exchange, on top of the
// framing of mm/ipc.hh: submissions to enqueue, deliveries to local-deliver,
// requests to qmgr's control socket, and the status reply. Every decoder
// takes hostile bytes (any local user can reach public/ sockets) and checks
// each field and the end. Linked by the daemons and the front end.
#pragma once

#include "mm/fd.hh"
#include "mm/ipc.hh"
#include "mm/result.hh"
#include "mm/state_file.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mm::protocol {

// --- status (any server): ok, or an error with its kind and exit code. ---

Result<std::string> encode_status(std::uint64_t request_id, const Result<void>& status);
// The status carried by the frame (an Error rebuilt with kind, text and exit
// code); the outer Result fails when the frame itself is malformed.
Result<Result<void>> decode_status(ipc::FrameReader& frame);

// --- submit_begin → enqueue (public/submit, private/enqueue) ---
// The message travels as a passed descriptor (a memfd the client filled with
// canonical content, LF line ends, dot rules already applied), so a
// submission is one frame. Addresses are as the user typed them: enqueue
// parses them and decides from the peer's credentials whether -f is allowed.
// A message received over SMTP (smtp-listener, or -bs on the front end's
// stdin). Its sender is the MAIL FROM path, which needs no privilege: anyone
// may connect to the SMTP port and give any. enqueue trusts peer_address
// only from its private socket; a local -bs submission leaves it empty.
struct SmtpOrigin {
    std::string protocol;     // "smtp", "esmtp" or "esmtps" (spool_format names)
    std::string peer_address; // the client's IP address; "" for local -bs
    std::string helo_name;    // the HELO/EHLO argument as given
    bool eight_bit_mime = false; // MAIL FROM ... BODY=8BITMIME
    friend bool operator==(const SmtpOrigin&, const SmtpOrigin&) = default;
};

struct SubmitRequest {
    std::optional<std::string> sender;   // -f/-r or MAIL FROM; "<>" for a bounce (qmgr) or SMTP null sender
    std::vector<std::string> recipients; // command-line recipients
    bool extract_recipients = false;     // -t
    std::optional<std::string> full_name; // -F
    bool queue_only = false;             // -odq: no immediate delivery
    bool verbose = false;                // -v (logged)
    std::optional<SmtpOrigin> smtp;      // set for SMTP: recipients are RCPT TO paths
};

// Announces one descriptor: send the content fd with the frame.
Result<std::string> encode_submit(std::uint64_t request_id, const SubmitRequest& request);
struct DecodedSubmit {
    SubmitRequest request;
    Fd content;
};
Result<DecodedSubmit> decode_submit(ipc::FrameReader& frame);

// submit_result: the queue id, or the error (kind, text, exit code).
Result<std::string> encode_submit_result(std::uint64_t request_id, const Result<std::string>& queue_id);
Result<Result<std::string>> decode_submit_result(ipc::FrameReader& frame);

// --- deliver → local-deliver (private/local), from qmgr ---
// One top-level local recipient of one message. `leaves` are the keys
// (mm::leaf_key) of the alias leaves to deliver now; local-deliver expands
// the recipient again from its own alias files and delivers only leaves of
// that expansion whose key was asked for (DESIGN rule 3: qmgr never tells it
// a command or a file). The message file is the passed descriptor.
struct DeliverRequest {
    std::string queue_id;
    std::string return_path;  // "" for the null sender, else local@domain
    std::string recipient;    // the top-level recipient, local@domain
    std::vector<std::string> leaves;
    std::string ident;        // the submitting user (masqmail's $ident)
    std::string received_host; // the SMTP client, "" for local submissions
    std::uint64_t content_offset = 0;
    std::uint64_t content_length = 0;
};
Result<std::string> encode_deliver(std::uint64_t request_id, const DeliverRequest& request);
struct DecodedDeliver {
    DeliverRequest request;
    Fd message;
};
Result<DecodedDeliver> decode_deliver(ipc::FrameReader& frame);

enum class LeafOutcome : std::uint32_t { delivered = 0, deferred = 1, failed = 2 };
struct LeafResult {
    std::string key;
    LeafOutcome outcome = LeafOutcome::deferred;
    std::string reason; // printable; "" when delivered
};
// delivery_result: one entry per asked-for leaf, in any order; a leaf not
// answered counts as deferred.
Result<std::string> encode_delivery_result(std::uint64_t request_id, const std::vector<LeafResult>& leaves);
Result<std::vector<LeafResult>> decode_delivery_result(ipc::FrameReader& frame);

// --- route_query → route-selector (private/route), from qmgr ---
// Which route takes each remote recipient of one message now. `pass`
// numbers qmgr's delivery passes: route-selector runs online_query once a
// pass, so every message of a queue run sees the same connection.
// `connection` (runq -qo NAME) replaces online_query. The message file is
// passed so that route-selector reads the From: header itself (the
// allowed/denied_from_hdrs filters); header_length bounds what it reads.
struct RouteQuery {
    std::uint64_t pass = 0;
    std::optional<std::string> connection;
    std::string queue_id;       // for logs
    std::string sender;         // local@domain, "" for the null sender
    std::vector<std::string> recipients; // local@domain, remote ones only
    std::uint64_t content_offset = 0;
    std::uint64_t header_length = 0;
};
Result<std::string> encode_route_query(std::uint64_t request_id, const RouteQuery& query);
struct DecodedRouteQuery {
    RouteQuery query;
    Fd message;
};
Result<DecodedRouteQuery> decode_route_query(ipc::FrameReader& frame);

// The routes that take one recipient now, in the order to try them (a
// route that defers hands the recipient to the next, as in masqmail): each
// the route file's path and the next hop (the smarthost "host:port", the
// recipient's domain for direct delivery, "pipe" or "wrapper"). No
// candidate: `reason` says why no route takes it.
struct RouteCandidate {
    std::string route;
    std::string next_hop;
    friend bool operator==(const RouteCandidate&, const RouteCandidate&) = default;
};
struct RouteChoice {
    std::vector<RouteCandidate> candidates;
    std::string reason;
};
struct RouteAnswer {
    std::optional<std::string> connection; // the online connection's name
    std::vector<RouteChoice> recipients;    // in the order asked
};
Result<std::string> encode_route_answer(std::uint64_t request_id, const RouteAnswer& answer);
Result<RouteAnswer> decode_route_answer(ipc::FrameReader& frame);

// --- remote_deliver → remote-deliver (private/remote), from qmgr ---
// One message for the recipients that take one route to one next hop.
// remote-deliver re-reads the route file and checks that the path is one
// of the routes the configuration names (DESIGN rule 3). Messages for the
// same route and next hop share one connection.
struct RemoteRequest {
    std::string queue_id;
    std::string route;     // the route file's path, as route-selector named it
    std::string next_hop;  // as route-selector named it
    std::string return_path; // "" for the null sender
    std::vector<std::string> recipients;
    bool eight_bit_mime = false;
    std::uint64_t content_offset = 0;
    std::uint64_t content_length = 0;
};
Result<std::string> encode_remote_deliver(std::uint64_t request_id, const RemoteRequest& request);
struct DecodedRemote {
    RemoteRequest request;
    Fd message;
};
Result<DecodedRemote> decode_remote_deliver(ipc::FrameReader& frame);

// remote_result: one outcome per recipient in the order asked (a missing
// one counts as deferred), and where the message went.
struct RemoteRecipientResult {
    LeafOutcome outcome = LeafOutcome::deferred;
    std::string reason; // the server's reply or our error, printable
};
struct RemoteResult {
    std::vector<RemoteRecipientResult> recipients;
    std::string server; // "host[address:port]", "" when none was reached
};
Result<std::string> encode_remote_result(std::uint64_t request_id, const RemoteResult& result);
Result<RemoteResult> decode_remote_result(ipc::FrameReader& frame);

// --- qmgr control (public/qmgr-ctl): runq, runq -qo NAME, mailrm ---
// run_queue: no fields; status reply once every message of the run had its attempt.
// run_route: the route name; remove_message: queue ids. Each gets a status reply.
Result<std::string> encode_run_queue(std::uint64_t request_id);
Result<std::string> encode_run_route(std::uint64_t request_id, const std::string& route);
Result<std::string> decode_run_route(ipc::FrameReader& frame);
Result<std::string> encode_remove(std::uint64_t request_id, const std::vector<std::string>& queue_ids);
Result<std::vector<std::string>> decode_remove(ipc::FrameReader& frame);

// queue_list (mailq of a user who cannot read the spool): no fields. qmgr
// answers with queue_list_entry frames, one per message the caller may see
// (more when its recipients do not fit in one frame: each carries the
// message's fields again, with `continued` set), then queue_list_end, a
// status frame.
struct ListedRecipient {
    std::string address; // local@domain
    RecipientState state = RecipientState::pending;
    std::uint32_t attempts = 0;
    std::string last_error; // printable
    std::int64_t next_try = 0; // Unix seconds; 0: as soon as possible
};
struct ListedMessage {
    std::string id;
    std::string sender; // local@domain, "" for the null sender
    std::uint64_t size = 0; // the whole message (headers and body)
    std::uint64_t body_size = 0;
    std::int64_t received_time = 0;
    std::string peer_address; // "" for local submissions
    std::string ident;
    std::vector<ListedRecipient> recipients;
};
Result<std::string> encode_queue_list(std::uint64_t request_id);
// The frames of one message.
Result<std::vector<std::string>> encode_queue_list_entry(std::uint64_t request_id, const ListedMessage& message);
// Appends the message of one frame to `listing`, or its recipients to the
// last message there when the frame continues it.
Result<void> decode_queue_list_entry(ipc::FrameReader& frame, std::vector<ListedMessage>& listing);
Result<std::string> encode_queue_list_end(std::uint64_t request_id, const Result<void>& status);
Result<Result<void>> decode_queue_list_end(ipc::FrameReader& frame);

// new_message (enqueue → qmgr, private/qmgr): a hint that new/ID exists.
Result<std::string> encode_new_message(std::uint64_t request_id, const std::string& queue_id);
Result<std::string> decode_new_message(ipc::FrameReader& frame);

// Sends `frame` (and `fd`) on a blocking socket and waits for one reply
// frame, at most `timeout_ms`: for the front end and one-shot clients.
struct Reply {
    std::string bytes;
    Fd fd;
};
Result<Reply> call(const Fd& sock, const std::string& frame, const Fd* fd, int timeout_ms);

} // namespace mm::protocol
