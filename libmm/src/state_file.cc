// SPDX-License-Identifier: GPL-2.0-or-later
// State file encoding and parsing (doc/spool-format.md). Parsed bytes come
// from the spool and are hostile: counts, lengths, numbers, text and the
// checksum are checked, nothing grows beyond the limits. Linked by qmgr.
#include "mm/state_file.hh"

#include "mm/limits.hh"
#include "mm/spool_record.hh"

#include <array>
#include <optional>

namespace mm {

namespace {

using spool_record::RecordReader;

constexpr std::array<std::string_view, 4> state_names = { "pending", "delivered", "failed", "dsn_sent" };
constexpr std::string_view leaf_delivered = "delivered ";
constexpr std::string_view leaf_failed = "failed ";
constexpr std::string_view end_tag = "EN8:";
constexpr std::size_t end_record_size = end_tag.size() + 8 + 1;

bool valid_time(std::int64_t t)
{
    return t >= 0 && t <= QueueId::max_seconds;
}

std::optional<RecipientState> parse_state_name(std::string_view name)
{
    for (std::size_t i = 0; i < state_names.size(); ++i)
        if (state_names[i] == name)
            return static_cast<RecipientState>(i);
    return std::nullopt;
}

Result<void> check_recipient(const RecipientProgress& r)
{
    if (!valid_time(r.first_attempt) || !valid_time(r.last_attempt) || !valid_time(r.next_attempt))
        return Error::internal("attempt time out of range");
    if (r.last_error.size() > limits::error_text || !spool_record::is_storable_text(r.last_error))
        return Error::internal("last error text not storable (use sanitize_error_text)");
    if (r.finished_leaves.size() > limits::alias_fanout)
        return Error::internal("too many finished alias leaves");
    for (const auto& leaf : r.finished_leaves) {
        std::size_t prefix = leaf.delivered ? leaf_delivered.size() : leaf_failed.size();
        if (leaf.key.empty() || leaf.key.size() > limits::spool_envelope_field - prefix
            || !spool_record::is_storable_text(leaf.key))
            return Error::internal("alias leaf key not storable");
    }
    return ok();
}

void append_recipient(std::string& out, std::size_t index, const RecipientProgress& r)
{
    std::string value = std::to_string(index);
    value += ' ';
    value += recipient_state_name(r.state);
    for (std::int64_t n : { std::int64_t { r.attempts }, r.first_attempt, r.last_attempt, r.next_attempt }) {
        value += ' ';
        value += std::to_string(n);
    }
    (void)spool_record::append(out, "RS", value, limits::spool_envelope_field);
    if (!r.last_error.empty())
        (void)spool_record::append(out, "RE", r.last_error, limits::error_text);
    for (const auto& leaf : r.finished_leaves) {
        std::string v(leaf.delivered ? leaf_delivered : leaf_failed);
        v += leaf.key;
        (void)spool_record::append(out, "AL", v, limits::spool_envelope_field);
    }
}

// "a b c": the next space-separated word of `text`, consumed.
std::string_view next_word(std::string_view& text)
{
    auto space = text.find(' ');
    std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    return word;
}

std::optional<std::int64_t> parse_time(std::string_view text)
{
    auto n = spool_record::parse_number(text, static_cast<std::uint64_t>(QueueId::max_seconds));
    if (!n)
        return std::nullopt;
    return static_cast<std::int64_t>(*n);
}

Result<RecipientProgress> parse_rs_value(std::string_view value, std::size_t index)
{
    auto bad = Error::permanent("bad RS record for recipient " + std::to_string(index));
    if (spool_record::parse_number(next_word(value)) != index)
        return bad;
    RecipientProgress r;
    auto state = parse_state_name(next_word(value));
    auto attempts = spool_record::parse_number(next_word(value), UINT32_MAX);
    auto first = parse_time(next_word(value));
    auto last = parse_time(next_word(value));
    auto next = parse_time(value);
    if (!state || !attempts || !first || !last || !next)
        return bad;
    r.state = *state;
    r.attempts = static_cast<std::uint32_t>(*attempts);
    r.first_attempt = *first;
    r.last_attempt = *last;
    r.next_attempt = *next;
    return r;
}

Result<RecipientProgress> parse_recipient(RecordReader& reader, std::size_t index)
{
    auto rs = reader.expect("RS");
    if (!rs)
        return std::move(rs).error();
    auto r = parse_rs_value(*rs, index);
    if (!r)
        return r;
    auto re = reader.next_if("RE");
    if (!re)
        return std::move(re).error();
    if (*re) {
        if ((*re)->empty() || (*re)->size() > limits::error_text)
            return Error::permanent("RE record empty or too long");
        r->last_error = std::string(**re);
    }
    while (reader.peek_tag() == "AL") {
        if (r->finished_leaves.size() >= limits::alias_fanout)
            return Error::permanent("too many finished alias leaves");
        auto al = reader.expect("AL");
        if (!al)
            return std::move(al).error();
        std::string_view v = *al;
        bool delivered = v.starts_with(leaf_delivered);
        if (!delivered && !v.starts_with(leaf_failed))
            return Error::permanent("bad AL record");
        v.remove_prefix(delivered ? leaf_delivered.size() : leaf_failed.size());
        if (v.empty())
            return Error::permanent("empty AL record");
        r->finished_leaves.push_back({ std::string(v), delivered });
    }
    return r;
}

Result<std::int64_t> parse_time_record(RecordReader& reader, std::string_view tag)
{
    auto value = reader.expect(tag);
    if (!value)
        return std::move(value).error();
    auto t = parse_time(*value);
    if (!t)
        return Error::permanent("bad number in " + std::string(tag) + " record");
    return *t;
}

Result<void> check_end(std::string_view file)
{
    if (file.size() < state_file::magic.size() + end_record_size)
        return Error::permanent("truncated: no END record");
    std::string_view end = file.substr(file.size() - end_record_size);
    auto crc = spool_record::parse_crc(end.substr(end_tag.size(), 8));
    if (!end.starts_with(end_tag) || end.back() != '\n' || !crc)
        return Error::permanent("truncated or bad END record");
    if (spool_record::crc32c(file.substr(0, file.size() - 9)) != *crc)
        return Error::permanent("checksum mismatch");
    return ok();
}

} // namespace

const char* recipient_state_name(RecipientState s)
{
    auto i = static_cast<std::size_t>(s);
    return i < state_names.size() ? state_names[i].data() : "pending";
}

bool is_final(RecipientState s)
{
    return s == RecipientState::delivered || s == RecipientState::dsn_sent;
}

DeliveryState DeliveryState::all_pending(std::size_t recipient_count)
{
    DeliveryState s;
    s.recipients.resize(recipient_count);
    return s;
}

bool DeliveryState::all_final() const
{
    for (const auto& r : recipients)
        if (!is_final(r.state))
            return false;
    return true;
}

std::string sanitize_error_text(std::string_view text)
{
    std::string out(text.substr(0, limits::error_text));
    for (char& c : out)
        if (c < 0x20 || c > 0x7e)
            c = '?';
    return out;
}

namespace state_file {

Result<std::string> encode(const QueueId& id, const DeliveryState& state)
{
    if (!valid_time(state.last_warning) || !valid_time(state.online_seconds))
        return Error::internal("state time out of range");
    if (state.recipients.empty() || state.recipients.size() > limits::recipients)
        return Error::internal("bad recipient count in delivery state");
    std::string out(magic);
    (void)spool_record::append(out, "QI", id.str(), QueueId::length);
    spool_record::append_number(out, "TW", static_cast<std::uint64_t>(state.last_warning));
    spool_record::append_number(out, "OS", static_cast<std::uint64_t>(state.online_seconds));
    spool_record::append_number(out, "NR", state.recipients.size());
    for (std::size_t i = 0; i < state.recipients.size(); ++i) {
        if (auto r = check_recipient(state.recipients[i]); !r)
            return std::move(r).error();
        append_recipient(out, i, state.recipients[i]);
        if (out.size() > limits::state_file - end_record_size)
            return Error::internal("state file larger than " + std::to_string(limits::state_file) + " bytes");
    }
    out += end_tag;
    out += spool_record::format_crc(spool_record::crc32c(out));
    out += '\n';
    return out;
}

Result<Parsed> parse(std::string_view file)
{
    if (file.size() > limits::state_file)
        return Error::permanent("state file larger than " + std::to_string(limits::state_file) + " bytes");
    if (!file.starts_with(magic))
        return Error::permanent("not a masqmail state file (bad magic line)");
    if (auto r = check_end(file); !r)
        return std::move(r).error();
    RecordReader reader(file.substr(magic.size(), file.size() - magic.size() - end_record_size),
        limits::spool_envelope_field);
    auto qi = reader.expect("QI");
    auto id = qi ? QueueId::parse(*qi) : Result<QueueId>(std::move(qi).error());
    if (!id)
        return Error::permanent("bad QI record");
    DeliveryState state;
    auto warning = parse_time_record(reader, "TW");
    auto online = warning ? parse_time_record(reader, "OS") : warning;
    if (!online)
        return std::move(online).error();
    state.last_warning = *warning;
    state.online_seconds = *online;
    auto nr = reader.expect("NR");
    std::optional<std::uint64_t> count;
    if (nr)
        count = spool_record::parse_number(*nr, limits::recipients);
    if (!count || *count == 0)
        return Error::permanent("bad NR record");
    for (std::size_t i = 0; i < *count; ++i) {
        auto r = parse_recipient(reader, i);
        if (!r)
            return std::move(r).error();
        state.recipients.push_back(std::move(r).value());
    }
    if (!reader.at_end())
        return Error::permanent("records after the last recipient");
    return Parsed { std::move(id).value(), std::move(state) };
}

} // namespace state_file

} // namespace mm
