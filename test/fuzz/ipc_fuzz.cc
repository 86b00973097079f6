// SPDX-License-Identifier: GPL-2.0-or-later
// Fuzz target for IPC frames: any bytes through FrameReader::parse, a generic
// walk over the fields with the typed getters, and the end check. A frame
// that is accepted must encode back, through FrameWriter, to the same bytes.
#include "mm/ipc.hh"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <unistd.h>

namespace {

using mm::ipc::FrameReader;
using mm::ipc::FrameWriter;

[[noreturn]] void fail(const char* what)
{
    (void)std::fprintf(stderr, "ipc_fuzz: %s\n", what);
    std::abort();
}

// Takes the next field with the most specific getter that accepts it and
// adds it to `w` with the matching add_*().
bool copy_field(FrameReader& r, FrameWriter& w)
{
    std::uint16_t tag = *r.next_tag();
    if (tag == mm::ipc::fd_tag) {
        mm::Result<mm::Fd> fd = r.get_fd();
        if (!fd || !fd->valid())
            fail("announced descriptor not handed out");
        w.add_fd();
        return true;
    }
    if (auto v = r.get_u32(tag)) {
        w.add_u32(tag, *v);
    } else if (auto v64 = r.get_u64(tag)) {
        w.add_u64(tag, *v64);
    } else if (auto b = r.get_bool(tag)) {
        w.add_bool(tag, *b);
    } else if (auto text = r.get_text(tag)) {
        w.add_text(tag, *text);
    } else if (auto field = r.get_field()) {
        if (field->tag != tag)
            fail("get_field returned another tag");
        w.add_bytes(tag, field->value);
    } else {
        return false;
    }
    return true;
}

void walk_and_reencode(std::string_view input, FrameReader& r)
{
    FrameWriter w(r.type(), r.request_id());
    while (!r.at_end())
        if (!copy_field(r, w))
            fail("a field parse() accepted cannot be read");
    if (!r.finish())
        fail("finish failed after every field was taken");
    mm::Result<std::string> again = w.finish();
    if (!again)
        fail("an accepted frame cannot be encoded");
    if (*again != input)
        fail("re-encoded frame differs");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view input(reinterpret_cast<const char*>(data), size);
    mm::Result<FrameReader> r = FrameReader::parse(input);
    if (!r) {
        // The same bytes may be a frame that announces a descriptor.
        int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            fail("cannot open /dev/null");
        r = FrameReader::parse(input, mm::Fd(fd));
    }
    if (r) {
        if (r->finish() && !r->at_end())
            fail("finish passed with fields left");
        walk_and_reencode(input, *r);
    }
    return 0;
}
