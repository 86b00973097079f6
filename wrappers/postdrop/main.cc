// SPDX-License-Identifier: GPL-2.0-or-later
// postdrop: the drop helper sendmail runs when no daemon takes a message.
// Installed set-gid masqmail-drop (never set-uid): it runs as the invoking
// user, and its one privilege is the group that may create files in
// spool_dir/maildrop/ (mode 1730: create, but neither list nor read). Its
// input (stdin, an encoded drop file, mm/maildrop.hh) comes from that user
// and is hostile; its configuration is the system's, never the user's.
#include "mm/config.hh"
#include "mm/fd.hh"
#include "mm/fs.hh"
#include "mm/ipc.hh"
#include "mm/maildrop.hh"
#include "mm/paths.hh"
#include "mm/sysexits.hh"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using namespace mm;

constexpr mode_t drop_file_mode = 0640; // owner: the user; group: masqmail-drop (enqueue reads)
constexpr int name_attempts = 8; // fresh names after an (improbable) EEXIST

int fail(const Error& error, int code)
{
    (void)std::fprintf(stderr, "postdrop: %s\n", error.message().c_str());
    return code;
}

// Set-gid (or otherwise privileged by exec): the user controls everything
// the process inherits, so nothing of it is used.
bool runs_set_gid()
{
    return ::getauxval(AT_SECURE) != 0 || ::getegid() != ::getgid() || ::geteuid() != ::getuid();
}

// Before anything else: no core dump or ptrace of a set-gid process, no
// inherited environment (nothing here reads one), files created with exactly
// the mode asked for, and descriptors 0-2 open so that no file we open can
// become someone's stdout or stderr.
void harden_process()
{
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    for (int fd = 0; fd <= 2; ++fd)
        if (::fcntl(fd, F_GETFD) < 0 && ::open("/dev/null", O_RDWR) < 0)
            std::_Exit(ex::oserr);
    ::clearenv();
    ::umask(077);
}

// -C FILE names another configuration, and with it another spool. A user
// could point a set-gid postdrop at a configuration naming any directory the
// group masqmail-drop may write, so while set-gid only root may use -C.
Result<std::string> config_path(int argc, char** argv, bool set_gid)
{
    if (argc == 1)
        return paths::default_config();
    if (argc != 3 || std::string_view(argv[1]) != "-C")
        return Error::permanent("usage: postdrop [-C /absolute/masqmail.conf] < dropfile").exit_as(ex::usage);
    std::string path = argv[2];
    if (path.empty() || path.front() != '/')
        return Error::permanent("-C needs an absolute path").exit_as(ex::usage);
    if (set_gid && ::getuid() != 0)
        return Error::permanent("-C is refused: postdrop runs set-gid and you are not root")
            .exit_as(ex::noperm);
    return path;
}

Result<std::string> read_spool_dir(const std::string& path, bool set_gid)
{
    config::Diagnostics diag;
    auto config = config::read_main_config(path, diag);
    if (!config) {
        // A set-gid process may read what its user cannot: show no text of it.
        if (!set_gid || ::getuid() == 0)
            diag.print(stderr);
        return Error::permanent("cannot read configuration " + path).exit_as(ex::config);
    }
    return config->spool_dir;
}

// Reads the whole drop file and checks it before anything touches the spool.
Result<std::string> read_drop_file()
{
    Fd in(STDIN_FILENO);
    auto bytes = read_all(in, maildrop::max_file_size());
    in.release();
    if (!bytes)
        return std::move(bytes).error().with_context("stdin");
    if (auto parsed = maildrop::parse(*bytes); !parsed)
        return Error::permanent("refused: " + parsed.error().message());
    return bytes;
}

// maildrop/ itself is never a symlink. A set-gid user may search but not
// read it (1730): then an O_PATH handle serves the *at() calls, and
// `readable` says that fsync of the directory is impossible.
Result<Dir> open_maildrop(const std::string& spool_dir, bool& readable)
{
    std::string path = spool_dir + "/maildrop";
    readable = true;
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == EACCES) {
        readable = false;
        fd = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return Error::from_errno("cannot open " + path, errno);
    return Dir(Fd(fd), path);
}

Result<void> give_maildrop_group(const Dir& dir, int fd)
{
    struct stat d {}, f {};
    if (::fstat(dir.get(), &d) != 0 || ::fstat(fd, &f) != 0)
        return Error::from_errno("fstat", errno);
    if (f.st_gid == d.st_gid)
        return ok();
    if (::fchown(fd, static_cast<uid_t>(-1), d.st_gid) != 0)
        return Error::from_errno("cannot give the drop file maildrop's group (is postdrop set-gid?)", errno)
            .exit_as(ex::tempfail);
    return ok();
}

struct TempFile {
    std::string name; // ".NAME"
    Fd fd;
};

Result<TempFile> create_temporary(const Dir& dir)
{
    for (int attempt = 0;; ++attempt) {
        auto name = maildrop::unique_name();
        if (!name)
            return std::move(name).error();
        std::string temp_name = "." + *name;
        auto fd = create_at(dir, temp_name, 0600);
        if (fd) {
            // The umask is 077: the group bit comes from an explicit fchmod.
            if (::fchmod(fd->get(), drop_file_mode) != 0) {
                int err = errno;
                (void)unlink_at(dir, temp_name, true);
                return Error::from_errno("fchmod " + dir.describe(temp_name), err);
            }
            // Run by root, or with no_new_privs (the set-gid bit then does
            // nothing), the file gets the caller's group, which enqueue
            // cannot read: give it maildrop/'s group, or fail before any
            // acknowledgement.
            if (auto r = give_maildrop_group(dir, fd->get()); !r) {
                (void)unlink_at(dir, temp_name, true);
                return std::move(r).error().with_context(dir.describe(temp_name));
            }
            return TempFile { std::move(temp_name), std::move(fd).value() };
        }
        if (fd.error().sys_errno() != EEXIST || attempt + 1 == name_attempts)
            return std::move(fd).error();
    }
}

// Renames ".NAME" to a final name that exists nowhere yet; returns it.
Result<std::string> publish(const Dir& dir, const std::string& temp_name)
{
    std::string name = temp_name.substr(1);
    for (int attempt = 0;; ++attempt) {
        auto renamed = rename_noreplace_at(dir, temp_name, dir, name);
        if (renamed)
            return name;
        if (renamed.error().sys_errno() != EEXIST || attempt + 1 == name_attempts)
            return std::move(renamed).error();
        auto fresh = maildrop::unique_name();
        if (!fresh)
            return std::move(fresh).error();
        name = std::move(fresh).value();
    }
}

// The new name must be on disk before exit 0. fsync of the directory needs
// a readable handle; a set-gid user has none, and syncfs(2) of the file's
// file system is what makes the entry durable then.
Result<void> make_name_durable(const Dir& dir, bool readable, const Fd& file)
{
    if (readable)
        return fsync_dir(dir);
    if (::syncfs(file.get()) != 0)
        return Error::from_errno("syncfs " + dir.path(), errno);
    return ok();
}

// Write, fsync, rename, make the name durable (DESIGN rule 1). Any failure
// before the rename removes the temporary; one after it leaves the file,
// which enqueue may then commit although postdrop reported a failure (a
// duplicate if the user retries, never a loss).
Result<std::string> write_drop_file(const std::string& spool_dir, std::string_view bytes)
{
    bool readable = true;
    auto dir = open_maildrop(spool_dir, readable);
    if (!dir)
        return std::move(dir).error();
    auto temp = create_temporary(*dir);
    if (!temp)
        return std::move(temp).error();
    auto written = write_all(temp->fd, bytes);
    if (written)
        written = fsync_file(temp->fd);
    if (!written) {
        (void)unlink_at(*dir, temp->name, true);
        return std::move(written).error().with_context(dir->path());
    }
    auto name = publish(*dir, temp->name);
    if (!name) {
        (void)unlink_at(*dir, temp->name, true);
        return std::move(name).error();
    }
    if (auto durable = make_name_durable(*dir, readable, temp->fd); !durable)
        return std::move(durable).error();
    if (auto closed = temp->fd.close(); !closed)
        return std::move(closed).error().with_context(dir->describe(*name));
    return name;
}

// Best effort: with no enqueue daemon listening the file waits in
// maildrop/ for the next start or queue run, which is fine.
void wake_enqueue(const std::string& spool_dir)
{
    auto sock = ipc::connect_seqpacket(spool_dir + "/public/pickup", ipc::IoMode::nonblocking);
    if (!sock)
        return;
    ipc::FrameWriter writer(ipc::MessageType::new_message, 0);
    if (auto frame = writer.finish())
        (void)ipc::send_frame(*sock, *frame);
}

} // namespace

// Confinement: no uid change and no capability; the set-gid group (set by
// the package or the administrator, not by meson) is the only privilege,
// and it is used for nothing but creating one file in maildrop/.
int main(int argc, char** argv)
{
    harden_process();
    const bool set_gid = runs_set_gid();
    if (argc < 1)
        return ex::usage;
    auto path = config_path(argc, argv, set_gid);
    if (!path)
        return fail(path.error(), path.error().exit_code());
    auto bytes = read_drop_file();
    if (!bytes)
        return fail(bytes.error(), bytes.error().exit_code());
    auto spool_dir = read_spool_dir(*path, set_gid);
    if (!spool_dir)
        return fail(spool_dir.error(), spool_dir.error().exit_code());
    // Local trouble is always temporary: sendmail must keep the message.
    auto written = write_drop_file(*spool_dir, *bytes);
    if (!written)
        return fail(written.error(), ex::tempfail);
    wake_enqueue(*spool_dir);
    return ex::ok;
}
