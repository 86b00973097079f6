// SPDX-License-Identifier: GPL-2.0-or-later
#include "catch.hh"
#include "mm/limits.hh"
#include "mm/maildrop.hh"
#include "mm/spool_format.hh"

#include <set>
#include <string>
#include <unistd.h>

namespace md = mm::maildrop;

namespace {

std::string rec(std::string_view tag, std::string_view value)
{
    return std::string(tag) + std::to_string(value.size()) + ":" + std::string(value) + "\n";
}

// A drop file from hand-written records (magic line added, CT0: not) with a
// correct END record, so that a refusal is the field check's, not the CRC's.
std::string sealed(const std::string& records, std::string_view content = "Subject: x\n\nbody\n")
{
    std::string head = std::string(md::magic) + records + "CT0:\n";
    return head + std::string(content) + md::encode_end(head, content);
}

const std::string flags = rec("EX", "0") + rec("QO", "0") + rec("VB", "0");

md::DropRequest simple_request()
{
    md::DropRequest r;
    r.recipients = { "bob@example.org" };
    return r;
}

md::DropRequest full_request()
{
    md::DropRequest r;
    r.sender = "alice@example.org";
    r.recipients = { "bob@example.org", "Carol Example <carol@example.net>", "dave+tag@[192.0.2.1]" };
    r.extract_recipients = true;
    r.full_name = "J\xc3\xa9r\xc3\xb4me + Fran=\xc3\xa7ois";
    r.queue_only = true;
    r.verbose = true;
    return r;
}

md::DropFile round_trip(const md::DropRequest& request, std::string_view content, std::string& file)
{
    auto encoded = md::encode(request, content);
    REQUIRE(encoded);
    file = *encoded;
    auto parsed = md::parse(file);
    REQUIRE(parsed);
    return *parsed;
}

void require_same(const md::DropRequest& a, const md::DropRequest& b)
{
    CHECK(a.sender == b.sender);
    CHECK(a.recipients == b.recipients);
    CHECK(a.extract_recipients == b.extract_recipients);
    CHECK(a.full_name == b.full_name);
    CHECK(a.queue_only == b.queue_only);
    CHECK(a.verbose == b.verbose);
}

std::string refusal(const md::DropRequest& request, std::string_view content = "x\n")
{
    auto encoded = md::encode(request, content);
    REQUIRE_FALSE(encoded);
    CHECK(encoded.error().kind() == mm::ErrorKind::permanent);
    return encoded.error().message();
}

std::string parse_refusal(std::string_view file)
{
    auto parsed = md::parse(file);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().kind() == mm::ErrorKind::permanent);
    return parsed.error().message();
}

} // namespace

TEST_CASE("maildrop: a minimal request survives a round trip")
{
    std::string file;
    auto drop = round_trip(simple_request(), "Subject: hi\n\nhello\n", file);
    require_same(drop.request, simple_request());
    CHECK(drop.content == "Subject: hi\n\nhello\n");
    CHECK(file.substr(0, md::magic.size()) == md::magic);
}

TEST_CASE("maildrop: every field survives a round trip")
{
    std::string file;
    auto drop = round_trip(full_request(), "From: a\n\nb\n", file);
    require_same(drop.request, full_request());
    CHECK(drop.content == "From: a\n\nb\n");

    md::DropRequest flipped = full_request();
    flipped.extract_recipients = false;
    flipped.queue_only = false;
    flipped.sender.reset();
    flipped.full_name.reset();
    require_same(round_trip(flipped, "", file).request, flipped);
}

TEST_CASE("maildrop: the bytes are the documented records")
{
    md::DropRequest r = full_request();
    r.recipients = { "bob@example.org" };
    r.full_name = "Ann \xc3\xa9+=";
    auto encoded = md::encode(r, "S: x\n\nb\n");
    REQUIRE(encoded);
    std::string head = std::string(md::magic) + rec("MF", "alice@example.org") + rec("RT", "bob@example.org")
        + rec("EX", "1") + rec("FN", "Ann+20+C3+A9+2B+3D") + rec("QO", "1") + rec("VB", "1") + "CT0:\n";
    CHECK(encoded->substr(0, head.size()) == head);
    // The spool's END record: content length, header length, CRC-32C.
    CHECK(encoded->substr(head.size() + 8, 25) == "EN50:00000000000000000008");
    CHECK(encoded->substr(head.size() + 8 + 25, 22) == " 00000000000000000006 ");
    CHECK(encoded->size() == head.size() + 8 + 56);
    auto pieces = md::encode_head(r);
    REQUIRE(pieces);
    CHECK(*pieces + "S: x\n\nb\n" + md::encode_end(*pieces, "S: x\n\nb\n") == *encoded);
}

TEST_CASE("maildrop: content with 8-bit bytes, NUL and no header survives")
{
    std::string content("Subject: \xff\xfe\n\n\x80\x00\x01 body\n", 19);
    std::string file;
    CHECK(round_trip(simple_request(), content, file).content == content);
    CHECK(round_trip(simple_request(), "", file).content.empty());
    CHECK(round_trip(simple_request(), "no newline at all", file).content == "no newline at all");
    CHECK(round_trip(simple_request(), "\n", file).content == "\n");
}

TEST_CASE("maildrop: -t without recipients is a request; neither is refused")
{
    md::DropRequest r;
    r.extract_recipients = true;
    std::string file;
    require_same(round_trip(r, "To: x@example.org\n\n", file).request, r);

    r.extract_recipients = false;
    CHECK(refusal(r) == "no recipients and no -t");
    CHECK(parse_refusal(sealed(flags)) == "no recipients and no -t");
}

TEST_CASE("maildrop: a file cut at any byte is refused")
{
    auto encoded = md::encode(full_request(), "Subject: cut\n\nbody line\n");
    REQUIRE(encoded);
    for (std::size_t n = 0; n < encoded->size(); ++n) {
        INFO("prefix of " << n << " bytes");
        CHECK_FALSE(md::parse(std::string_view(*encoded).substr(0, n)));
    }
    CHECK_FALSE(md::parse(*encoded + "x"));
}

TEST_CASE("maildrop: any changed byte is refused")
{
    auto encoded = md::encode(full_request(), "Subject: flip\n\nbody line\n");
    REQUIRE(encoded);
    for (std::size_t i = 0; i < encoded->size(); ++i) {
        for (int bit : { 0x01, 0x20, 0x80 }) {
            std::string copy = *encoded;
            copy[i] = static_cast<char>(static_cast<unsigned char>(copy[i]) ^ bit);
            INFO("byte " << i << " xor " << bit);
            CHECK_FALSE(md::parse(copy));
        }
    }
    std::string content_flip = *encoded;
    content_flip[content_flip.size() - 60] ^= 0x01;
    CHECK(parse_refusal(content_flip) == "checksum mismatch");
}

TEST_CASE("maildrop: control bytes in text fields are refused on encode")
{
    for (std::string bad : { std::string("a\nb@x"), std::string("a\rb@x"), std::string("a\0b@x", 5),
             std::string("a\tb@x"), std::string("a\x7f@x"), std::string("a\xc3\xa9@x") }) {
        INFO("value " << bad);
        md::DropRequest r = simple_request();
        r.recipients.push_back(bad);
        CHECK(refusal(r).find("control or 8-bit") != std::string::npos);
        r = simple_request();
        r.sender = bad;
        CHECK(refusal(r).find("control or 8-bit") != std::string::npos);
    }
    for (std::string bad : { std::string("A\nB"), std::string("A\0B", 3), std::string("A\x1b[0m") }) {
        md::DropRequest r = simple_request();
        r.full_name = bad;
        CHECK(refusal(r) == "full name contains a control byte");
    }
}

TEST_CASE("maildrop: empty and long fields")
{
    md::DropRequest r = simple_request();
    r.sender = "";
    CHECK(refusal(r).find("empty") != std::string::npos);
    r = simple_request();
    r.full_name = "";
    CHECK(refusal(r) == "empty full name");
    r = simple_request();
    r.recipients = { "" };
    CHECK(refusal(r).find("empty") != std::string::npos);

    std::string longest(mm::limits::spool_text_field, 'a');
    r = simple_request();
    r.recipients = { longest };
    r.sender = longest;
    r.full_name = std::string(mm::limits::spool_text_field, '\xe9'); // three bytes each as xtext
    std::string file;
    require_same(round_trip(r, "x", file).request, r);
    r.recipients = { longest + "a" };
    CHECK(refusal(r).find("longer than") != std::string::npos);
    r = simple_request();
    r.full_name = longest + "a";
    CHECK(refusal(r).find("longer than") != std::string::npos);
    CHECK(parse_refusal(sealed(rec("RT", longest + "a") + flags)).find("empty or too long")
        != std::string::npos);
}

TEST_CASE("maildrop: at most limits::recipients recipients")
{
    md::DropRequest r;
    for (std::size_t i = 0; i < mm::limits::recipients; ++i)
        r.recipients.push_back("user" + std::to_string(i) + "@example.org");
    std::string file;
    CHECK(round_trip(r, "x\n", file).request.recipients.size() == mm::limits::recipients);
    r.recipients.push_back("one@too.many");
    CHECK(refusal(r) == "more than 1000 recipients");

    std::string records;
    for (const auto& recipient : r.recipients)
        records += rec("RT", recipient);
    CHECK(parse_refusal(sealed(records + flags)) == "more than 1000 recipients");
}

TEST_CASE("maildrop: the parser takes only the one spelling it writes")
{
    const std::string rt = rec("RT", "b@example.org");
    CHECK(md::parse(sealed(rt + flags)));
    // Flags are 0 or 1; records in their fixed order, none unknown, none twice.
    CHECK_FALSE(md::parse(sealed(rt + rec("EX", "2") + rec("QO", "0") + rec("VB", "0"))));
    CHECK_FALSE(md::parse(sealed(rt + rec("EX", "01") + rec("QO", "0") + rec("VB", "0"))));
    CHECK_FALSE(md::parse(sealed(rt + rec("EX", "") + rec("QO", "0") + rec("VB", "0"))));
    CHECK_FALSE(md::parse(sealed(rt + rec("QO", "0") + rec("EX", "0") + rec("VB", "0"))));
    CHECK_FALSE(md::parse(sealed(rt + flags + rec("VB", "0"))));
    CHECK_FALSE(md::parse(sealed(rt + rec("EX", "0") + rec("QO", "0"))));
    CHECK_FALSE(md::parse(sealed(rt + flags + rec("ZZ", "x"))));
    CHECK_FALSE(md::parse(sealed(rec("MF", "a@b") + rec("MF", "a@b") + rt + flags)));
    CHECK_FALSE(md::parse(sealed(rt + rec("MF", "a@b") + flags)));
    CHECK_FALSE(md::parse(sealed(rt + "RT013:b@example.org\n" + flags)));
    // xtext: upper-case hex, and only for bytes that need it.
    auto with_name = [&](std::string_view xtext) {
        return sealed(rt + rec("EX", "0") + rec("FN", xtext) + rec("QO", "0") + rec("VB", "0"));
    };
    auto named = md::parse(with_name("Ann+20+C3+A9"));
    REQUIRE(named);
    CHECK(named->request.full_name == "Ann \xc3\xa9");
    CHECK(parse_refusal(with_name("Ann+41")) == "bad xtext in FN record");
    CHECK(parse_refusal(with_name("Ann+c3+a9")) == "bad xtext in FN record");
    CHECK(parse_refusal(with_name("Ann+2")) == "bad xtext in FN record");
    CHECK(parse_refusal(with_name("A=B")) == "bad xtext in FN record");
    CHECK(parse_refusal(with_name("A B")) == "bad xtext in FN record");
    CHECK(parse_refusal(with_name("A+0A")) == "full name contains a control byte");
    CHECK(parse_refusal(with_name("")) == "empty full name");
}

TEST_CASE("maildrop: foreign files are refused")
{
    CHECK(parse_refusal("") == "not a maildrop file (bad magic line)");
    CHECK(parse_refusal("masqmail-spool 1\nQI27:...") == "not a maildrop file (bad magic line)");
    CHECK(parse_refusal("masqmail-drop 2\n") == "not a maildrop file (bad magic line)");
    // A CT record with a value, a header length that does not match the content.
    CHECK_FALSE(md::parse(std::string(md::magic) + rec("RT", "b@x") + flags + "CT1:x\n"));
    std::string head = std::string(md::magic) + rec("RT", "b@x") + flags + "CT0:\n";
    std::string file = head + "A: b\n\nc\n" + md::encode_end(head, "A: b\n\nc\n");
    CHECK(md::parse(file));
    mm::spool_record::Crc32c crc;
    crc.update(head + "A: b\n\nc\n");
    std::string lying = head + "A: b\n\nc\n" + mm::spool_format::encode_end(8, 8, crc);
    CHECK(parse_refusal(lying) == "header length in END record does not match the content");
    CHECK(md::max_file_size() > mm::limits::message_size_hard);
}

TEST_CASE("maildrop: file names")
{
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        auto name = md::unique_name();
        REQUIRE(name);
        CHECK(md::is_drop_name(*name));
        CHECK_FALSE(md::is_temporary_name(*name));
        CHECK(md::is_temporary_name("." + *name));
        CHECK(name->find_first_not_of("0123456789abcdef.") == std::string::npos);
        CHECK(name->find("." + std::to_string(::getpid()) + ".") == 10);
        seen.insert(*name);
    }
    CHECK(seen.size() == 100);
    CHECK(md::is_drop_name("1700000000.1.0123456789abcdef"));
    CHECK(md::is_drop_name("1700000000.4194304.0123456789abcdef"));
    for (std::string_view bad : { "", ".", "..", "1700000000.0123456789abcdef",
             "1700000000..0123456789abcdef", "1700000000.0.0123456789abcdef",
             "1700000000.01.0123456789abcdef", "1700000000.12345678901.0123456789abcdef",
             "1700000000.12.0123456789ABCDEF", "1700000000.12.0123456789abcde",
             "170000000.12.0123456789abcdef0", "1700000000.12.0123456789abcdef.tmp",
             "../1700000000.12.0123456789abcdef", "1700000000.1a.0123456789abcdef" }) {
        INFO(bad);
        CHECK_FALSE(md::is_drop_name(bad));
        CHECK_FALSE(md::is_temporary_name(bad));
    }
    CHECK_FALSE(md::is_temporary_name("..1700000000.1.0123456789abcdef"));
}
