// SPDX-License-Identifier: GPL-2.0-or-later
// Delivery progress of one queued message: the per-recipient state file
// queue/ID.st that qmgr replaces atomically after each attempt. Encoder and
// in-memory parser; parsed bytes come from the spool and are hostile.
// Linked by qmgr (and the fuzzer).
#pragma once

#include "mm/queue_id.hh"
#include "mm/result.hh"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

// pending: try again; delivered: done; failed: permanent failure whose DSN
// is not yet sent; dsn_sent: failed and the DSN was accepted by enqueue.
enum class RecipientState : std::uint8_t { pending, delivered, failed, dsn_sent };
const char* recipient_state_name(RecipientState s);
// delivered and dsn_sent: nothing is left to do for the recipient.
bool is_final(RecipientState s);

// An alias expansion leaf of a top-level recipient that is done (masqmail
// resumes partially delivered aliases). The key names the leaf as alias
// expansion produces it ("user@host", "|command", "/file"): it is compared
// with a fresh expansion, never executed.
struct FinishedLeaf {
    std::string key;
    bool delivered = true; // false: failed permanently
    friend bool operator==(const FinishedLeaf&, const FinishedLeaf&) = default;
};

struct RecipientProgress {
    RecipientState state = RecipientState::pending;
    std::uint32_t attempts = 0;
    std::int64_t first_attempt = 0; // Unix seconds; 0 = never
    std::int64_t last_attempt = 0;
    std::int64_t next_attempt = 0; // 0 = as soon as possible
    std::string last_error; // printable, <= limits::error_text; see sanitize_error_text
    std::vector<FinishedLeaf> finished_leaves;
    friend bool operator==(const RecipientProgress&, const RecipientProgress&) = default;
};

struct DeliveryState {
    std::int64_t last_warning = 0; // Unix seconds of the last delay warning; 0 = none
    std::int64_t online_seconds = 0; // time spent queued while a route was online
    std::vector<RecipientProgress> recipients; // by index of the envelope's recipients

    // The state of a message without a state file.
    static DeliveryState all_pending(std::size_t recipient_count);
    bool all_final() const;
    friend bool operator==(const DeliveryState&, const DeliveryState&) = default;
};

// Makes text from a peer storable as last_error: control and 8-bit bytes
// become '?', and it is cut to limits::error_text bytes.
std::string sanitize_error_text(std::string_view text);

namespace state_file {

inline constexpr std::string_view magic = "masqmail-state 1\n";

// The whole file; refuses values that the parser would refuse.
Result<std::string> encode(const QueueId& id, const DeliveryState& state);

struct Parsed {
    QueueId id;
    DeliveryState state;
};
// Parses and verifies a whole state file (its END record and checksum).
Result<Parsed> parse(std::string_view file);

} // namespace state_file

} // namespace mm
