// SPDX-License-Identifier: GPL-2.0-or-later
// The local-deliver daemon as a real process: a private instance in a
// scratch directory, the listening socket passed as descriptor 3 as the
// supervisor does, deliver frames with a message file sent as qmgr sends
// them, and the mailboxes, result frames and log lines checked.
#include "aliases.hh"
#include "catch.hh"
#include "leaf_delivery.hh"
#include "request.hh"

#include "mm/alias.hh"
#include "mm/alias_expand.hh"
#include "mm/config.hh"
#include "mm/fs.hh"
#include "mm/ipc.hh"
#include "mm/protocol.hh"

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <poll.h>
#include <pwd.h>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using mm::protocol::DeliverRequest;
using mm::protocol::LeafOutcome;
using mm::protocol::LeafResult;
using mm::test::TempDir;

namespace {

constexpr int reply_timeout_ms = 20000;
const std::string queue_id = "1700000000.0123456789abcdef";
const std::string content = "From: alice@example.net\nSubject: hi\n\nFrom the start.\nbye\n";

std::string slurp(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void spit(const std::string& path, const std::string& text, mode_t mode = 0600)
{
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
    }
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

std::size_t count(const std::string& haystack, const std::string& needle)
{
    std::size_t n = 0;
    for (std::size_t pos = haystack.find(needle); pos != std::string::npos;
         pos = haystack.find(needle, pos + 1))
        ++n;
    return n;
}

// A private instance with its own local-deliver process.
class Instance {
public:
    explicit Instance(const std::string& aliases = "", const std::string& extra_conf = "")
    {
        for (const char* d : { "mail", "spool", "log" })
            std::filesystem::create_directory(dir_.file(d));
        spit(dir_.file("aliases"), aliases);
        spit(dir_.file("masqmail.conf"),
            "host_name = \"test.example\"\n"
            "spool_dir = \""
                + dir_.file("spool") + "\"\nlog_dir = \"" + dir_.file("log") + "\"\nmail_dir = \""
                + dir_.file("mail") + "\"\nalias_file = \"" + dir_.file("aliases")
                + "\"\nrun_as_user = true\n" + extra_conf);
        // The message file as qmgr has it: content after some bytes of envelope.
        spit(dir_.file("message"), "ENVELOPE RECORDS\n" + content);
        start();
    }
    ~Instance()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;

    std::string path(const std::string& name) const { return dir_.file(name); }
    std::string socket_path() const { return dir_.file("spool/local"); }
    pid_t pid() const { return pid_; }
    std::string log() const { return slurp(dir_.file("log/masqmail.log")); }

    // Sends SIGTERM and returns the wait status.
    int stop()
    {
        REQUIRE(::kill(pid_, SIGTERM) == 0);
        int status = 0;
        REQUIRE(::waitpid(pid_, &status, 0) == pid_);
        pid_ = -1;
        return status;
    }

    // The keys of every local leaf of `recipient`, as qmgr computes them
    // from the same configuration and alias file.
    std::vector<std::string> local_keys(const std::string& recipient) const
    {
        mm::config::Diagnostics diag;
        auto cfg = mm::config::read_main_config(dir_.file("masqmail.conf"), diag);
        REQUIRE(cfg);
        auto table = mm::config::read_alias_file(
            dir_.file("aliases"), mm::config::AliasFileKind::plain, cfg->host_name, diag);
        REQUIRE(table);
        auto address = mm::parse_path(recipient, {});
        REQUIRE(address);
        auto expansion = mm::expand_aliases(*address, { nullptr, &*table }, *cfg);
        REQUIRE(expansion);
        std::vector<std::string> keys;
        for (const mm::AliasLeaf& leaf : expansion->leaves)
            if (leaf.local)
                keys.push_back(mm::leaf_key(leaf, cfg->caseless_matching));
        return keys;
    }

    DeliverRequest request(const std::string& recipient, std::vector<std::string> keys) const
    {
        DeliverRequest q;
        q.queue_id = queue_id;
        q.return_path = "alice@example.net";
        q.recipient = recipient;
        q.leaves = std::move(keys);
        q.ident = "alice";
        q.content_offset = std::string("ENVELOPE RECORDS\n").size();
        q.content_length = content.size();
        return q;
    }

    mm::Fd open_message(int flags = O_RDONLY) const
    {
        mm::Fd fd(::open(dir_.file("message").c_str(), flags | O_CLOEXEC));
        REQUIRE(fd.valid());
        return fd;
    }

private:
    void start()
    {
        auto listener = mm::ipc::listen_seqpacket(socket_path(), 0600, mm::ipc::IoMode::blocking);
        REQUIRE(listener);
        std::string conf = dir_.file("masqmail.conf");
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            // As the supervisor passes it: descriptor 3, inherited across exec.
            if (listener->get() == 3)
                ::fcntl(3, F_SETFD, 0);
            else if (::dup2(listener->get(), 3) != 3)
                ::_exit(127);
            const char* argv[] = { "local-deliver", "-C", conf.c_str(), nullptr };
            ::execv(MM_LOCAL_DELIVER_BIN, const_cast<char* const*>(argv));
            ::_exit(127);
        }
    }

    TempDir dir_;
    pid_t pid_ = -1;
};

mm::Fd connect(const Instance& instance)
{
    auto sock = mm::ipc::connect_seqpacket(instance.socket_path());
    REQUIRE(sock);
    return std::move(sock).value();
}

// The next frame, or nothing once the daemon closed the connection.
std::optional<std::string> receive(const mm::Fd& sock)
{
    pollfd p { sock.get(), POLLIN, 0 };
    REQUIRE(::poll(&p, 1, reply_timeout_ms) == 1);
    auto got = mm::ipc::recv_frame(sock);
    if (!got || got->status == mm::ipc::RecvStatus::peer_closed)
        return std::nullopt;
    REQUIRE(got->status == mm::ipc::RecvStatus::frame);
    return got->bytes;
}

struct Answer {
    std::uint64_t request_id = 0;
    std::map<std::string, LeafResult> leaves;
};

Answer decode(const std::string& frame)
{
    auto reader = mm::ipc::FrameReader::parse(frame);
    REQUIRE(reader);
    auto results = mm::protocol::decode_delivery_result(*reader);
    REQUIRE(results);
    Answer answer;
    answer.request_id = reader->request_id();
    for (LeafResult& r : *results) {
        INFO(r.key << ": " << r.reason);
        REQUIRE(answer.leaves.emplace(r.key, r).second);
    }
    return answer;
}

void send(const mm::Fd& sock, const Instance& instance, std::uint64_t request_id, const DeliverRequest& q)
{
    auto frame = mm::protocol::encode_deliver(request_id, q);
    REQUIRE(frame);
    mm::Fd message = instance.open_message();
    REQUIRE(mm::ipc::send_frame(sock, *frame, &message));
}

// One request on a fresh connection, and its answer.
Answer deliver(const Instance& instance, const DeliverRequest& q, std::uint64_t request_id = 7)
{
    mm::Fd sock = connect(instance);
    send(sock, instance, request_id, q);
    auto frame = receive(sock);
    REQUIRE(frame);
    Answer answer = decode(*frame);
    CHECK(answer.request_id == request_id);
    return answer;
}

Answer deliver_all(const Instance& instance, const std::string& recipient)
{
    return deliver(instance, instance.request(recipient, instance.local_keys(recipient)));
}

LeafOutcome outcome(const Answer& answer, const std::string& key)
{
    auto found = answer.leaves.find(key);
    REQUIRE(found != answer.leaves.end());
    INFO(key << ": " << found->second.reason);
    return found->second.outcome;
}

std::string reason(const Answer& answer, const std::string& key)
{
    auto found = answer.leaves.find(key);
    REQUIRE(found != answer.leaves.end());
    return found->second.reason;
}

// Waits until `path` exists (a pipe script has started).
bool appears(const std::string& path)
{
    for (int i = 0; i < 2000; ++i) {
        if (std::filesystem::exists(path))
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

} // namespace

TEST_CASE("local-deliver daemon: a mailbox gets the message in mbox form")
{
    Instance instance;
    Answer answer = deliver_all(instance, "bob@test.example");
    REQUIRE(answer.leaves.size() == 1);
    CHECK(outcome(answer, "m bob") == LeafOutcome::delivered);
    std::string mbox = slurp(instance.path("mail/bob"));
    CHECK(mbox.starts_with("From alice@example.net "));
    CHECK(mbox.substr(mbox.find('\n') + 1)
        == "Envelope-to: <bob@test.example>\nReturn-path: <alice@example.net>\n"
           "From: alice@example.net\nSubject: hi\n\n>From the start.\nbye\n\n");
    CHECK(instance.log().find(queue_id + " => <bob@test.example> with mbox") != std::string::npos);
}

TEST_CASE("local-deliver daemon: the null sender and a second message append")
{
    Instance instance;
    DeliverRequest q = instance.request("bob@test.example", { "m bob" });
    q.return_path = "";
    CHECK(outcome(deliver(instance, q), "m bob") == LeafOutcome::delivered);
    CHECK(outcome(deliver(instance, q), "m bob") == LeafOutcome::delivered);
    std::string mbox = slurp(instance.path("mail/bob"));
    CHECK(count(mbox, "From MAILER-DAEMON ") == 2);
    CHECK(count(mbox, "Return-path: <>\n") == 2);
}

TEST_CASE("local-deliver daemon: a maildir user gets a Maildir under mail_dir")
{
    Instance instance("", "maildir_users = \"carol\"\n");
    CHECK(outcome(deliver_all(instance, "carol@test.example"), "m carol") == LeafOutcome::delivered);
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(instance.path("mail/carol/new")))
        files.push_back(e.path());
    REQUIRE(files.size() == 1);
    CHECK(slurp(files[0]).find("Envelope-to: <carol@test.example>\n") == 0);
    CHECK(std::filesystem::is_directory(instance.path("mail/carol/cur")));
    CHECK(instance.log().find("=> <carol@test.example> with maildir") != std::string::npos);
}

TEST_CASE("local-deliver daemon: mbox_default = mda runs the mda, mbox_users still get mbox")
{
    TempDir scripts;
    std::string out = scripts.file("out");
    std::string mda = scripts.file("mda");
    spit(mda, "#!/bin/sh\necho \"$1 $2\" > " + out + ".args\n/bin/cat > " + out + "\n", 0700);
    Instance instance("",
        "mbox_default = mda\nmbox_users = \"bob\"\nmda = \"" + mda
            + " ${rcpt_local} $uid\"\nmda_fromline = yes\n");
    CHECK(outcome(deliver_all(instance, "dave@test.example"), "m dave") == LeafOutcome::delivered);
    CHECK(slurp(out + ".args") == "dave " + queue_id + "\n");
    std::string delivered = slurp(out);
    CHECK(delivered.starts_with("From alice@example.net "));
    CHECK(delivered.find("\nEnvelope-to: <dave@test.example>\n") != std::string::npos);
    CHECK(instance.log().find("=> <dave@test.example> with mda") != std::string::npos);

    CHECK(outcome(deliver_all(instance, "bob@test.example"), "m bob") == LeafOutcome::delivered);
    CHECK(std::filesystem::is_regular_file(instance.path("mail/bob")));
}

TEST_CASE("local-deliver daemon: an alias to two mailboxes delivers both")
{
    // \carol: a final address, delivered to the mailbox without a lookup.
    Instance instance("team: bob, \\carol\ncarol: nobody-else\n");
    auto keys = instance.local_keys("team@test.example");
    REQUIRE(keys == std::vector<std::string> { "m bob", "m carol" });
    Answer answer = deliver_all(instance, "team@test.example");
    CHECK(outcome(answer, "m bob") == LeafOutcome::delivered);
    CHECK(outcome(answer, "m carol") == LeafOutcome::delivered);
    CHECK(slurp(instance.path("mail/bob")).find("Envelope-to: <team@test.example>\n") != std::string::npos);
    CHECK(slurp(instance.path("mail/carol")).find("Envelope-to: <team@test.example>\n") != std::string::npos);
    CHECK(instance.log().find("=> bob@test.example <team@test.example> with mbox") != std::string::npos);
}

TEST_CASE("local-deliver daemon: alias pipes exiting 0, 75 and 1")
{
    TempDir scripts;
    std::string out = scripts.file("out");
    auto make = [&](const std::string& name, const std::string& body) {
        std::string path = scripts.file(name);
        spit(path, "#!/bin/sh\n" + body, 0700);
        return path;
    };
    std::string ok = make("ok", "/bin/cat > " + out + "\nexit 0\n");
    std::string later = make("later", "echo busy now\nexit 75\n");
    std::string never = make("never", "echo no such list\nexit 1\n");
    Instance instance("ok: \"|" + ok + "\"\nlater: \"|" + later + "\"\nnever: \"|" + never + "\"\n");

    Answer answer = deliver_all(instance, "ok@test.example");
    REQUIRE(answer.leaves.size() == 1);
    CHECK(answer.leaves.begin()->second.outcome == LeafOutcome::delivered);
    CHECK(slurp(out) == "Envelope-to: <ok@test.example>\nReturn-path: <alice@example.net>\n" + content);
    CHECK(instance.log().find(queue_id + " => |" + ok + " <ok@test.example> with pipe") != std::string::npos);

    answer = deliver_all(instance, "later@test.example");
    REQUIRE(answer.leaves.size() == 1);
    CHECK(answer.leaves.begin()->second.outcome == LeafOutcome::deferred);
    CHECK(answer.leaves.begin()->second.reason.find("busy now") != std::string::npos);

    answer = deliver_all(instance, "never@test.example");
    REQUIRE(answer.leaves.size() == 1);
    CHECK(answer.leaves.begin()->second.outcome == LeafOutcome::failed);
    CHECK(answer.leaves.begin()->second.reason.find("no such list") != std::string::npos);
    CHECK(instance.log().find(queue_id + " == |" + never + " <never@test.example> failed: ")
        != std::string::npos);
}

TEST_CASE("local-deliver daemon: keys not in its own expansion are not delivered")
{
    Instance instance("list: bob, someone@elsewhere.org\n");
    Answer answer = deliver(instance,
        instance.request("list@test.example", { "m bob", "m carol", "r someone@elsewhere.org", "m bob" }));
    REQUIRE(answer.leaves.size() == 3);
    CHECK(outcome(answer, "m bob") == LeafOutcome::delivered);
    CHECK(outcome(answer, "m carol") == LeafOutcome::deferred);
    CHECK(reason(answer, "m carol") == "alias files changed since the queue manager expanded this recipient");
    CHECK(outcome(answer, "r someone@elsewhere.org") == LeafOutcome::failed);
    CHECK(reason(answer, "r someone@elsewhere.org") == "not a local leaf");
    CHECK(count(slurp(instance.path("mail/bob")), "Envelope-to:") == 1);
    CHECK(!std::filesystem::exists(instance.path("mail/carol")));
}

TEST_CASE("local-deliver daemon: an alias loop fails every asked key")
{
    Instance instance("loop1: loop2, bob\nloop2: loop1\n");
    Answer answer = deliver(instance, instance.request("loop1@test.example", { "m bob", "m loop2" }));
    CHECK(outcome(answer, "m bob") == LeafOutcome::failed);
    CHECK(outcome(answer, "m loop2") == LeafOutcome::failed);
    CHECK(reason(answer, "m bob").find("alias loop") != std::string::npos);
    CHECK(!std::filesystem::exists(instance.path("mail/bob")));
}

TEST_CASE("local-deliver daemon: a bad frame closes that connection only")
{
    Instance instance;
    SECTION("garbage")
    {
        mm::Fd sock = connect(instance);
        REQUIRE(::send(sock.get(), "garbage", 7, 0) == 7);
        CHECK(!receive(sock));
    }
    SECTION("a frame of another type")
    {
        mm::Fd sock = connect(instance);
        auto frame = mm::protocol::encode_run_queue(1);
        REQUIRE(frame);
        REQUIRE(mm::ipc::send_frame(sock, *frame));
        CHECK(!receive(sock));
    }
    SECTION("a deliver frame without its descriptor")
    {
        mm::Fd sock = connect(instance);
        auto frame = mm::protocol::encode_deliver(1, instance.request("bob@test.example", { "m bob" }));
        REQUIRE(frame);
        REQUIRE(mm::ipc::send_frame(sock, *frame));
        CHECK(!receive(sock));
    }
    SECTION("a writable message descriptor")
    {
        mm::Fd sock = connect(instance);
        auto frame = mm::protocol::encode_deliver(1, instance.request("bob@test.example", { "m bob" }));
        REQUIRE(frame);
        mm::Fd writable = instance.open_message(O_RDWR);
        REQUIRE(mm::ipc::send_frame(sock, *frame, &writable));
        CHECK(!receive(sock));
    }
    SECTION("a range beyond the end of the file")
    {
        mm::Fd sock = connect(instance);
        DeliverRequest q = instance.request("bob@test.example", { "m bob" });
        q.content_length += 1;
        send(sock, instance, 1, q);
        CHECK(!receive(sock));
    }
    SECTION("a bad queue id")
    {
        mm::Fd sock = connect(instance);
        DeliverRequest q = instance.request("bob@test.example", { "m bob" });
        q.queue_id = "../../etc";
        send(sock, instance, 1, q);
        CHECK(!receive(sock));
    }
    CHECK(instance.log().find("closing connection") != std::string::npos);
    CHECK(!std::filesystem::exists(instance.path("mail/bob")));
    CHECK(outcome(deliver_all(instance, "bob@test.example"), "m bob") == LeafOutcome::delivered);
}

TEST_CASE("local-deliver daemon: many requests on one connection, more than run at once")
{
    Instance instance;
    mm::Fd sock = connect(instance);
    constexpr std::uint64_t requests = 40;
    for (std::uint64_t id = 1; id <= requests; ++id)
        send(sock, instance, id, instance.request("bob@test.example", { "m bob" }));
    std::set<std::uint64_t> answered;
    for (std::uint64_t i = 0; i < requests; ++i) {
        auto frame = receive(sock);
        REQUIRE(frame);
        Answer answer = decode(*frame);
        CHECK(outcome(answer, "m bob") == LeafOutcome::delivered);
        answered.insert(answer.request_id);
    }
    CHECK(answered.size() == requests);
    CHECK(count(slurp(instance.path("mail/bob")), "\nEnvelope-to: <bob@test.example>\n") == requests);
}

TEST_CASE("local-deliver daemon: interleaved requests for two mailboxes are batched per mailbox")
{
    Instance instance;
    mm::Fd sock = connect(instance);
    constexpr std::uint64_t per_mailbox = 60;
    for (std::uint64_t id = 1; id <= 2 * per_mailbox; ++id) {
        std::string rcpt = id % 2 == 0 ? "bob@test.example" : "carol@test.example";
        send(sock, instance, id, instance.request(rcpt, { id % 2 == 0 ? "m bob" : "m carol" }));
    }
    std::set<std::uint64_t> answered;
    for (std::uint64_t i = 0; i < 2 * per_mailbox; ++i) {
        auto frame = receive(sock);
        REQUIRE(frame);
        Answer answer = decode(*frame);
        CHECK(outcome(answer, answer.request_id % 2 == 0 ? "m bob" : "m carol") == LeafOutcome::delivered);
        answered.insert(answer.request_id);
    }
    CHECK(answered.size() == 2 * per_mailbox);
    CHECK(count(slurp(instance.path("mail/bob")), "\nEnvelope-to: <bob@test.example>\n") == per_mailbox);
    CHECK(count(slurp(instance.path("mail/carol")), "\nEnvelope-to: <carol@test.example>\n") == per_mailbox);
    CHECK(count(slurp(instance.path("mail/bob")), "carol") == 0);
}

TEST_CASE("local-deliver daemon: SIGTERM exits 0")
{
    Instance instance;
    CHECK(outcome(deliver_all(instance, "bob@test.example"), "m bob") == LeafOutcome::delivered);
    int status = instance.stop();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(instance.log().find("local-deliver quitting") != std::string::npos);
}

TEST_CASE("local-deliver daemon: SIGTERM waits for a running delivery and sends its result")
{
    TempDir scripts;
    std::string started = scripts.file("started");
    std::string slow = scripts.file("slow");
    spit(slow, "#!/bin/sh\n: > " + started + "\n/bin/sleep 1\n/bin/cat > /dev/null\nexit 0\n", 0700);
    Instance instance("slow: \"|" + slow + "\"\n");
    mm::Fd sock = connect(instance);
    send(sock, instance, 9, instance.request("slow@test.example", instance.local_keys("slow@test.example")));
    REQUIRE(appears(started));
    REQUIRE(::kill(instance.pid(), SIGTERM) == 0);
    auto frame = receive(sock);
    REQUIRE(frame);
    Answer answer = decode(*frame);
    CHECK(answer.request_id == 9);
    REQUIRE(answer.leaves.size() == 1);
    CHECK(answer.leaves.begin()->second.outcome == LeafOutcome::delivered);
    int status = instance.stop();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("local-deliver daemon: a peer of another uid is refused")
{
    if (::geteuid() != 0) {
        WARN("needs root to connect as another user; skipped");
        return;
    }
    struct passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    uid_t uid = nobody->pw_uid;
    Instance instance;
    // The socket's directory and the socket itself open to the test's other user.
    REQUIRE(::chmod(instance.path("").c_str(), 0755) == 0);
    REQUIRE(::chmod(instance.path("spool").c_str(), 0755) == 0);
    REQUIRE(::chmod(instance.socket_path().c_str(), 0666) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (::setresuid(uid, uid, uid) != 0)
            ::_exit(2);
        auto sock = mm::ipc::connect_seqpacket(instance.socket_path());
        if (!sock)
            ::_exit(3);
        pollfd p { sock->get(), POLLIN, 0 };
        if (::poll(&p, 1, reply_timeout_ms) != 1)
            ::_exit(4);
        auto got = mm::ipc::recv_frame(*sock);
        ::_exit(got && got->status == mm::ipc::RecvStatus::peer_closed ? 0 : 5);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(instance.log().find("connection refused") != std::string::npos);
    CHECK(outcome(deliver_all(instance, "bob@test.example"), "m bob") == LeafOutcome::delivered);
}

// --- The choices behind a delivery, without a process: planning, and the
// user and transport of each leaf in a system install. ---

namespace {

struct Setup {
    mm::config::MainConfig cfg;
    mm::local::LocalAliases aliases;
};

Setup setup(const std::string& conf, const std::string& plain, uid_t plain_owner,
    const std::string& glob = "", uid_t glob_owner = 0)
{
    mm::config::Diagnostics diag;
    auto cfg = mm::config::parse_main_config("host_name = \"test.example\"\n" + conf, "test.conf", diag);
    REQUIRE(cfg);
    auto table = [&](const std::string& text, mm::config::AliasFileKind kind) {
        std::optional<mm::config::AliasTable> t;
        if (!text.empty()) {
            t = mm::config::parse_alias_table(text, "aliases", kind, "test.example", diag);
            REQUIRE(t);
        }
        return t;
    };
    return { *cfg,
        mm::local::LocalAliases(table(glob, mm::config::AliasFileKind::glob), glob_owner,
            table(plain, mm::config::AliasFileKind::plain), plain_owner) };
}

mm::local::DeliveryContext system_install(const Setup& s)
{
    return { &s.cfg, &s.aliases, false, 0 };
}

mm::AliasLeaf only_leaf(const Setup& s, const std::string& recipient)
{
    auto address = mm::parse_path(recipient, {});
    REQUIRE(address);
    auto expansion = mm::expand_aliases(*address, s.aliases.tables(), s.cfg);
    REQUIRE(expansion);
    REQUIRE(expansion->leaves.size() == 1);
    return expansion->leaves.front();
}

uid_t uid_of(const char* name)
{
    struct passwd* pw = ::getpwnam(name);
    REQUIRE(pw != nullptr);
    return pw->pw_uid;
}

} // namespace

TEST_CASE("local-deliver plan: asked keys are matched against its own expansion")
{
    Setup s = setup("", "list: bob, \\carol, far@elsewhere.org\n", 0);
    mm::local::DeliveryContext ctx = system_install(s);
    DeliverRequest q;
    q.queue_id = queue_id;
    q.recipient = "list@test.example";
    q.leaves = { "m carol", "m bob", "m dave", "r far@elsewhere.org", "m bob" };
    mm::local::DeliveryPlan plan = mm::local::plan_delivery(q, ctx);
    REQUIRE(plan.to_deliver.size() == 2);
    CHECK(plan.to_deliver[0].key == "m carol");
    CHECK(plan.to_deliver[0].leaf.kind == mm::LeafKind::final_address);
    CHECK(plan.to_deliver[1].key == "m bob");
    REQUIRE(plan.answered.size() == 2);
    CHECK(plan.answered[0].key == "m dave");
    CHECK(plan.answered[0].outcome == LeafOutcome::deferred);
    CHECK(plan.answered[1].key == "r far@elsewhere.org");
    CHECK(plan.answered[1].outcome == LeafOutcome::failed);
    CHECK(plan.envelope.return_path.is_null());
    CHECK(plan.envelope.qualify_domain == "test.example");

    q.recipient = "not an address";
    plan = mm::local::plan_delivery(q, ctx);
    CHECK(plan.to_deliver.empty());
    REQUIRE(plan.answered.size() == 4);
    CHECK(plan.answered[0].outcome == LeafOutcome::failed);
}

TEST_CASE("local-deliver target: a system user's mailbox is delivered as that user")
{
    Setup s = setup("maildir_users = daemon\n", "", 0);
    auto target = mm::local::choose_target(only_leaf(s, "daemon@test.example"), system_install(s));
    REQUIRE(target);
    CHECK(target->method == mm::local::Method::maildir);
    REQUIRE(target->identity);
    CHECK(target->identity->name == "daemon");
    CHECK(target->owner == uid_of("daemon"));
    CHECK(target->mailbox == "daemon");

    target = mm::local::choose_target(only_leaf(s, "root@test.example"), system_install(s));
    REQUIRE(!target);
    CHECK(target.error().kind() == mm::ErrorKind::permanent);
    CHECK(target.error().message() == "mail is never delivered as root; alias root to a user");

    target = mm::local::choose_target(only_leaf(s, "no-such-user-here@test.example"), system_install(s));
    REQUIRE(!target);
    CHECK(target.error().kind() == mm::ErrorKind::permanent);
    CHECK(target.error().message() == "no such user");
}

TEST_CASE("local-deliver target: a pipe runs as its alias file's owner, root's as nobody")
{
    SECTION("root's alias file")
    {
        Setup s = setup("", "list: \"|/usr/bin/list-handler\"\n", 0);
        auto target = mm::local::choose_target(only_leaf(s, "list@test.example"), system_install(s));
        REQUIRE(target);
        CHECK(target->method == mm::local::Method::pipe);
        REQUIRE(target->identity);
        CHECK(target->identity->uid == uid_of("nobody"));
    }
    SECTION("an alias file of another user")
    {
        Setup s = setup("", "list: \"|/usr/bin/list-handler\"\n", uid_of("daemon"));
        auto target = mm::local::choose_target(only_leaf(s, "list@test.example"), system_install(s));
        REQUIRE(target);
        REQUIRE(target->identity);
        CHECK(target->identity->name == "daemon");
    }
    SECTION("the glob file is asked first, as alias expansion does")
    {
        Setup s = setup("", "other: bob\n", 0, "list@*: \"|/usr/bin/list-handler\"\n", uid_of("daemon"));
        auto target = mm::local::choose_target(only_leaf(s, "list@TEST.example"), system_install(s));
        REQUIRE(target);
        REQUIRE(target->identity);
        CHECK(target->identity->name == "daemon");
    }
    SECTION("a private instance switches to no one")
    {
        Setup s = setup("", "list: \"|/usr/bin/list-handler\"\n", 0);
        mm::local::DeliveryContext ctx { &s.cfg, &s.aliases, true, 4242 };
        auto target = mm::local::choose_target(only_leaf(s, "list@test.example"), ctx);
        REQUIRE(target);
        CHECK(!target->identity);
        CHECK(target->owner == 4242);
    }
}
