// SPDX-License-Identifier: GPL-2.0-or-later
// IPC sockets: frames and passed descriptors over AF_UNIX SOCK_SEQPACKET,
// peer credentials, listening and connecting. The peer may be hostile: what
// it sends (ancillary data included) is checked, and any descriptor we do not
// hand to the caller is closed. Linked by every daemon and client.
#include "mm/ipc.hh"

#include "mm/limits.hh"

#include <array>
#include <cerrno>
#include <cstring>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace mm::ipc {

namespace {

// Room for more descriptors than we accept, so that a peer sending a few too
// many has them delivered, and closed by us, rather than cut by the kernel.
constexpr std::size_t fds_received_max = 8;
constexpr int listen_backlog = 128;

union ControlBuffer {
    cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int) * fds_received_max)];
};

int socket_flags(IoMode io)
{
    return SOCK_CLOEXEC | (io == IoMode::nonblocking ? SOCK_NONBLOCK : 0);
}

bool errno_would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK;
}

// The descriptors that came with a message: the one announced frames may
// carry, or an error after closing all of them.
Result<Fd> take_descriptors(msghdr& msg)
{
    std::array<Fd, fds_received_max> fds;
    std::size_t count = 0;
    bool foreign = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) {
            foreign = true;
            continue;
        }
        std::size_t in_message = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char* data = CMSG_DATA(c);
        for (std::size_t i = 0; i < in_message && count < fds.size(); ++i) {
            int fd = -1;
            std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
            fds[count++].reset(fd);
        }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0)
        return Error::protocol("ipc: ancillary data truncated");
    if (foreign)
        return Error::protocol("ipc: unexpected ancillary data");
    if (count > limits::ipc_fds)
        return Error::protocol("ipc: " + std::to_string(count) + " descriptors with one frame");
    return std::move(fds[0]);
}

Result<sockaddr_un> socket_address(const std::string& path)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    // sun_path needs its terminating NUL for a portable pathname socket.
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        return Error::permanent("ipc: socket path '" + path + "' of " + std::to_string(path.size())
            + " octets, must be 1 to " + std::to_string(sizeof(addr.sun_path) - 1));
    if (path.find('\0') != std::string::npos)
        return Error::permanent("ipc: socket path with a NUL octet");
    std::memcpy(addr.sun_path, path.data(), path.size());
    return addr;
}

Result<Fd> new_socket(IoMode io)
{
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | socket_flags(io), 0);
    if (fd < 0)
        return Error::from_errno("ipc: socket", errno);
    return Fd(fd);
}

int connect_to(const Fd& sock, const sockaddr_un& addr)
{
    return ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
}

// Unlinks a socket at `path` that no server listens on any more. Anything
// else found there is left alone and reported.
Result<void> remove_stale_socket(const std::string& path, const sockaddr_un& addr)
{
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0)
        return errno == ENOENT ? ok() : Result<void>(Error::from_errno("ipc: lstat " + path, errno));
    if (!S_ISSOCK(st.st_mode))
        return Error::permanent("ipc: " + path + " exists and is not a socket");
    Result<Fd> probe = new_socket(IoMode::nonblocking);
    if (!probe)
        return std::move(probe).error();
    if (connect_to(*probe, addr) == 0 || errno_would_block(errno))
        return Error(ErrorKind::temporary, "ipc: a server already listens on " + path, EADDRINUSE);
    if (errno != ECONNREFUSED)
        return Error::from_errno("ipc: probe " + path, errno);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        return Error::from_errno("ipc: unlink stale " + path, errno);
    return ok();
}

} // namespace

bool is_would_block(const Error& error)
{
    return error.kind() == ErrorKind::temporary && errno_would_block(error.sys_errno());
}

Result<void> send_frame(const Fd& sock, std::string_view frame, const Fd* pass_fd)
{
    // An empty message reads as the end of the connection at the other side.
    if (frame.empty() || frame.size() > limits::ipc_frame)
        return Error::internal("ipc: refusing to send a frame of " + std::to_string(frame.size()) + " octets");
    iovec iov{const_cast<char*>(frame.data()), frame.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ControlBuffer control{};
    if (pass_fd != nullptr) {
        if (!pass_fd->valid())
            return Error::internal("ipc: passing an invalid descriptor");
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int));
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        int fd = pass_fd->get();
        std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t sent = -1;
    do
        sent = ::sendmsg(sock.get(), &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent < 0)
        return Error::from_errno("ipc: send", errno);
    // SOCK_SEQPACKET sends a message whole or not at all.
    if (static_cast<std::size_t>(sent) != frame.size())
        return Error::internal("ipc: short send of a frame");
    return ok();
}

Result<Received> recv_frame(const Fd& sock)
{
    Received rx;
    rx.bytes.resize(limits::ipc_frame);
    iovec iov{rx.bytes.data(), rx.bytes.size()};
    ControlBuffer control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof(control.bytes);
    ssize_t got = -1;
    do
        got = ::recvmsg(sock.get(), &msg, MSG_CMSG_CLOEXEC);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        int err = errno;
        rx.bytes.clear();
        if (errno_would_block(err) || err == ECONNRESET) {
            rx.status = errno_would_block(err) ? RecvStatus::would_block : RecvStatus::peer_closed;
            return rx;
        }
        return Error::from_errno("ipc: receive", err);
    }
    // Own the descriptors first: every return below closes them unless handed out.
    Result<Fd> fd = take_descriptors(msg);
    if (!fd)
        return std::move(fd).error();
    if ((msg.msg_flags & MSG_TRUNC) != 0)
        return Error::protocol("ipc: frame larger than " + std::to_string(limits::ipc_frame) + " octets");
    rx.bytes.resize(static_cast<std::size_t>(got));
    if (got == 0)
        rx.status = RecvStatus::peer_closed;
    else
        rx.fd = std::move(*fd);
    return rx;
}

Result<ucred> peer_credentials(const Fd& sock)
{
    ucred cred{};
    socklen_t size = sizeof(cred);
    if (::getsockopt(sock.get(), SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0)
        return Error::from_errno("ipc: SO_PEERCRED", errno);
    if (size != sizeof(cred))
        return Error::internal("ipc: SO_PEERCRED returned " + std::to_string(size) + " octets");
    return cred;
}

Result<void> require_peer_uid(const Fd& sock, std::span<const uid_t> allowed)
{
    Result<ucred> cred = peer_credentials(sock);
    if (!cred)
        return std::move(cred).error();
    for (uid_t uid : allowed)
        if (cred->uid == uid)
            return ok();
    return Error(ErrorKind::permanent,
        "ipc: peer uid " + std::to_string(cred->uid) + " (pid " + std::to_string(cred->pid) + ") not allowed",
        EPERM);
}

Result<void> require_peer_uid(const Fd& sock, std::initializer_list<uid_t> allowed)
{
    return require_peer_uid(sock, std::span<const uid_t>(allowed.begin(), allowed.size()));
}

Result<SocketPair> seqpacket_pair(IoMode mode)
{
    int fds[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | socket_flags(mode), 0, fds) != 0)
        return Error::from_errno("ipc: socketpair", errno);
    return SocketPair{Fd(fds[0]), Fd(fds[1])};
}

Result<Fd> listen_seqpacket(const std::string& path, mode_t mode, IoMode io)
{
    Result<sockaddr_un> addr = socket_address(path);
    if (!addr)
        return std::move(addr).error();
    Result<void> cleared = remove_stale_socket(path, *addr);
    if (!cleared)
        return std::move(cleared).error();
    Result<Fd> sock = new_socket(io);
    if (!sock)
        return sock;
    // bind(2) creates the file with 0777 & ~umask: the exact mode, at once.
    mode_t old_umask = ::umask(~mode & 0777);
    int bound = ::bind(sock->get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(sockaddr_un));
    int err = errno;
    ::umask(old_umask);
    if (bound != 0)
        return Error::from_errno("ipc: bind " + path, err);
    if (::listen(sock->get(), listen_backlog) != 0)
        return Error::from_errno("ipc: listen " + path, errno);
    return sock;
}

Result<Fd> accept_seqpacket(const Fd& listener, IoMode io)
{
    int fd = -1;
    do
        fd = ::accept4(listener.get(), nullptr, nullptr, socket_flags(io));
    while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
    if (fd < 0)
        return Error::from_errno("ipc: accept", errno);
    return Fd(fd);
}

Result<Fd> connect_seqpacket(const std::string& path, IoMode io)
{
    Result<sockaddr_un> addr = socket_address(path);
    if (!addr)
        return std::move(addr).error();
    Result<Fd> sock = new_socket(io);
    if (!sock)
        return sock;
    if (connect_to(*sock, *addr) != 0)
        return Error::from_errno("ipc: connect " + path, errno);
    return sock;
}

} // namespace mm::ipc
