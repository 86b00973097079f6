// SPDX-License-Identifier: GPL-2.0-or-later
// File helpers over directory descriptors: every open is *at() with
// O_NOFOLLOW|O_CLOEXEC, names are single path components checked by
// is_safe_name(), and every durability step (fsync of file and directory) is
// an explicit call. Linked by every process.
#pragma once

#include "mm/fd.hh"
#include "mm/result.hh"

#include <cstddef>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace mm {

// A name usable as one directory entry: 1..255 bytes, no '/', no NUL, not
// "." or "..". Names from spool listings and peers are checked with this.
bool is_safe_name(std::string_view name);

// Opens a directory by absolute or relative path (O_DIRECTORY, following
// symlinks in the path as the administrator configured it).
Result<Dir> open_dir(const std::string& path);
// Opens the subdirectory `name` of `dir` without following a symlink.
Result<Dir> open_dir_at(const Dir& dir, std::string_view name);
// Creates directory `name` with `mode` unless it exists as a directory.
Result<void> make_dir_at(const Dir& dir, std::string_view name, mode_t mode);

// openat(dir, name, flags|O_NOFOLLOW|O_CLOEXEC, mode). A symlink gives ELOOP.
Result<Fd> open_at(const Dir& dir, std::string_view name, int flags, mode_t mode = 0600);
// Creates a new file exclusively (O_CREAT|O_EXCL|O_WRONLY).
Result<Fd> create_at(const Dir& dir, std::string_view name, mode_t mode = 0600);

// Writes everything, retrying short writes and EINTR.
Result<void> write_all(const Fd& fd, std::string_view data);
// Reads until EOF; more than `max_bytes` is an error, not a truncation.
Result<std::string> read_all(const Fd& fd, std::size_t max_bytes);
// Reads `length` bytes at `offset` with pread(2), leaving the fd's offset
// alone (a passed descriptor shares it with its sender); fewer at end of file.
Result<std::string> read_range(const Fd& fd, std::uint64_t offset, std::size_t length);
// Reads the whole file `name` in `dir` (regular files only), at most max_bytes.
Result<std::string> read_file_at(const Dir& dir, std::string_view name, std::size_t max_bytes);

// fsync(2) of a file, and of a directory (makes its entries durable).
Result<void> fsync_file(const Fd& fd);
Result<void> fsync_dir(const Dir& dir);

// renameat(2): replaces an existing target atomically.
Result<void> rename_at(const Dir& from, std::string_view from_name, const Dir& to, std::string_view to_name);
// Like rename_at() but fails with EEXIST instead of replacing a target.
Result<void> rename_noreplace_at(const Dir& from, std::string_view from_name, const Dir& to,
    std::string_view to_name);
// unlinkat(2); a missing file is not an error when missing_ok.
Result<void> unlink_at(const Dir& dir, std::string_view name, bool missing_ok = false);

// Names in `dir` other than "." and "..", unsorted, at most max_entries.
Result<std::vector<std::string>> list_dir(const Dir& dir, std::size_t max_entries);

// Writes `data` to `name` atomically and durably: a unique temporary name in
// the same directory, write, fsync, rename over `name`, fsync the directory.
// A crash leaves either the old or the new content, never a mix.
Result<void> replace_file_at(const Dir& dir, std::string_view name, std::string_view data, mode_t mode = 0600);

} // namespace mm
