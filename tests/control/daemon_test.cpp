// Integration: the real siplb daemon (child process, saved PID) on a
// net_null vdev, control socket in a temp dir, driven over the socket and
// through siplbctl.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v ? v : fallback;
}

const std::string kSiplb = env_or("SIPLB_BIN", "siplb");
const std::string kSiplbctl = env_or("SIPLBCTL_BIN", "siplbctl");

uint16_t free_tcp_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

struct Files {
    fs::path dir;
    std::string prefix;
    uint16_t metrics_port = 0;
    fs::path config() const { return dir / "siplb.toml"; }
    fs::path socket() const { return dir / "run" / "siplb.sock"; }

    std::string config_text(const std::string& extra_backends = "", uint32_t workers = 1) const {
        std::ostringstream o;
        o << "[control]\nsocket = \"" << socket().string() << "\"\nsocket_mode = \"0660\"\n"
          << "metrics = \"127.0.0.1:" << metrics_port << "\"\n\n"
          << "[log]\nlevel = \"info\"\n\n"
          << "[dataplane]\neal = [\"--no-huge\", \"-m\", \"512\", \"--no-pci\", \"--vdev=net_null0\", "
          << "\"--file-prefix\", \"" << prefix << "\", \"--log-level\", \"error\"]\n"
          << "workers = " << workers << "\nmbufs = 4096\naffinity_capacity = 4096\n\n"
          << "[[dataplane.port]]\nname = \"null\"\ndevice = \"net_null0\"\naddresses = [\"203.0.113.2/24\"]\n\n"
          << "[health]\nenabled = false\n\n"
          << "[[pool]]\nname = \"lund\"\nlisten = [\"203.0.113.10:5060\"]\n"
          << "backends = [\"198.51.100.11:5060\", \"198.51.100.12:5060\", \"198.51.100.13:5060\"" << extra_backends
          << "]\n\n"
          << "[[pool]]\nname = \"malmo\"\nlisten = [\"203.0.113.11:5060\"]\n"
          << "backends = [\"198.51.100.21:5060\", \"198.51.100.22:5060\"]\n";
        return o.str();
    }
    void write(const std::string& text) const {
        const fs::path tmp = dir / "siplb.toml.tmp";
        std::ofstream(tmp) << text;
        fs::rename(tmp, config());
    }
};

// A line-oriented client of the control socket.
class Client {
public:
    explicit Client(const fs::path& path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    }
    ~Client() {
        if (fd_ >= 0) ::close(fd_);
    }
    Client(const Client&) = delete;
    bool connected() const { return connected_; }
    bool send_raw(const std::string& data) {
        size_t off = 0;
        while (off < data.size()) {
            ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return false;
            off += static_cast<size_t>(n);
        }
        return true;
    }
    // Next response line; empty string on timeout or EOF.
    std::string read_line(std::chrono::milliseconds timeout = 5000ms) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (true) {
            const size_t nl = buf_.find('\n');
            if (nl != std::string::npos) {
                std::string line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return line;
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return "";
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
            char tmp[65536];
            const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
            if (n <= 0) return "";
            buf_.append(tmp, static_cast<size_t>(n));
        }
    }
    bool at_eof(std::chrono::milliseconds timeout = 3000ms) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
        char c;
        return ::recv(fd_, &c, 1, 0) == 0;
    }
    json request(const json& req) {
        if (!send_raw(req.dump() + "\n")) return json();
        const std::string line = read_line();
        if (line.empty()) return json();
        return json::parse(line, nullptr, false);
    }

private:
    int fd_ = -1;
    bool connected_ = false;
    std::string buf_;
};

struct RunResult {
    int status = -1;
    std::string out;
};

// Runs a command with stdout+stderr captured, bounded in time.
RunResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout = 20s) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return {};
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipefd[1], 1);
        ::dup2(pipefd[1], 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        _exit(127);
    }
    ::close(pipefd[1]);
    RunResult r;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (true) {
        pollfd p{pipefd[0], POLLIN, 0};
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            ::kill(pid, SIGKILL);
            break;
        }
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        const ssize_t n = ::read(pipefd[0], buf, sizeof(buf));
        if (n <= 0) break;
        r.out.append(buf, static_cast<size_t>(n));
    }
    ::close(pipefd[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

// Waits for a child with a deadline; returns its exit code, or -1 (then it was killed).
int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int st = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        const pid_t r = ::waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        std::this_thread::sleep_for(20ms);
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    return -1;
}

pid_t spawn_daemon(const Files& f, const fs::path& log) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::execl(kSiplb.c_str(), kSiplb.c_str(), "--config", f.config().c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    return pid;
}

// spawn_daemon with extra environment entries ("NAME=value"); with
// watchdog_pid, WATCHDOG_PID is set to the child's own pid (sd_watchdog_enabled
// ignores WATCHDOG_USEC meant for another process). Everything is prepared
// before fork: the child only formats its pid into a buffer and execs.
pid_t spawn_daemon_env(const Files& f, const fs::path& log, const std::vector<std::string>& extra, bool watchdog_pid) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string_view kv(*e);
        if (kv.rfind("NOTIFY_SOCKET=", 0) != 0 && kv.rfind("WATCHDOG_", 0) != 0) env.emplace_back(kv);
    }
    env.insert(env.end(), extra.begin(), extra.end());
    char pid_entry[48] = "WATCHDOG_PID=";
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    if (watchdog_pid) envp.push_back(pid_entry);
    envp.push_back(nullptr);
    const std::string path = f.config().string();
    const pid_t pid = ::fork();
    if (pid == 0) {
        char digits[24];
        int n = 0;
        for (pid_t p = ::getpid(); p > 0; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
        char* out = pid_entry + std::strlen(pid_entry);
        while (n > 0) *out++ = digits[--n];
        *out = '\0';
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        const char* argv[] = {kSiplb.c_str(), "--config", path.c_str(), nullptr};
        ::execve(kSiplb.c_str(), const_cast<char* const*>(argv), envp.data());
        _exit(127);
    }
    return pid;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

Files make_files(const char* tag) {
    Files f;
    char tmpl[] = "/tmp/siplb-ctl-XXXXXX";
    f.dir = ::mkdtemp(tmpl);
    f.prefix = std::string("siplb-ctl-") + tag + "-" + std::to_string(::getpid());
    f.metrics_port = free_tcp_port();
    return f;
}

// Waits until the daemon answers status with its dataplane running; false
// when it exited or did not get there in time.
bool wait_running(const Files& f, pid_t pid) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
        Client c(f.socket());
        if (c.connected()) {
            json s = c.request({{"cmd", "status"}});
            if (s.is_object() && s.value("ok", false) && s["result"].value("dataplane", "") == "running") return true;
        }
        int st;
        if (::waitpid(pid, &st, WNOHANG) == pid) return false;
        std::this_thread::sleep_for(100ms);
    }
    return false;
}

void remove_files(const Files& f) {
    std::error_code ec;
    fs::remove_all(f.dir, ec);
    fs::remove_all(fs::path("/var/run/dpdk") / f.prefix, ec);
}

class Daemon : public ::testing::Test {
protected:
    static inline Files files;
    static inline pid_t pid = -1;

    static void SetUpTestSuite() {
        files = make_files("d");
        files.write(files.config_text());
        pid = spawn_daemon(files, files.dir / "daemon.log");
        // Ready when the socket answers status.
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (std::chrono::steady_clock::now() < deadline) {
            Client c(files.socket());
            if (c.connected() && c.request({{"cmd", "status"}}).value("ok", false)) {
                // and the dataplane is up
                if (c.request({{"cmd", "status"}})["result"].value("dataplane", "") == "running") return;
            }
            int st;
            if (::waitpid(pid, &st, WNOHANG) == pid) {
                pid = -1;
                break;
            }
            std::this_thread::sleep_for(100ms);
        }
    }
    static void TearDownTestSuite() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            pid = -1;
        }
        remove_files(files);
    }
    void SetUp() override { ASSERT_GT(pid, 0) << "daemon did not start:\n" << slurp(files.dir / "daemon.log"); }
    json req(const json& r) {
        Client c(files.socket());
        EXPECT_TRUE(c.connected());
        return c.request(r);
    }
    RunResult ctl(std::vector<std::string> args) {
        args.insert(args.begin(), kSiplbctl);
        args.push_back("--socket");
        args.push_back(files.socket().string());
        return run(args);
    }
    json backend(const std::string& pool, const std::string& addr) {
        json r = req({{"cmd", "backends"}, {"pool", pool}});
        for (const auto& b : r["result"]["backends"])
            if (b["address"] == addr) return b;
        return json();
    }
};

TEST_F(Daemon, StatusPoolsBackends) {
    json s = req({{"cmd", "status"}});
    ASSERT_EQ(s["ok"], true) << s.dump();
    EXPECT_EQ(s["result"]["workers"], 1);
    EXPECT_EQ(s["result"]["pid"], pid);
    EXPECT_GE(s["result"]["snapshot_version"].get<int>(), 1);
    EXPECT_TRUE(s["result"]["tables"].contains("lund"));
    EXPECT_EQ(s["result"]["config"], files.config().string());
    json p = req({{"cmd", "pools"}});
    ASSERT_EQ(p["result"]["pools"].size(), 2u);
    EXPECT_EQ(p["result"]["pools"][0]["active"], 3);
    json b = req({{"cmd", "backends"}, {"pool", "lund"}});
    ASSERT_EQ(b["result"]["backends"].size(), 3u);
    double share = 0;
    for (const auto& x : b["result"]["backends"]) {
        EXPECT_EQ(x["source"], "static");
        EXPECT_EQ(x["state"], "active");
        EXPECT_EQ(x["advertises_itself"], 0);  // no traffic on net_null
        share += x["table_share"].get<double>();
    }
    EXPECT_NEAR(share, 1.0, 1e-6);
    EXPECT_EQ(req({{"cmd", "backends"}})["result"]["backends"].size(), 5u);
    json st = req({{"cmd", "stats"}});
    ASSERT_EQ(st["ok"], true);
    EXPECT_EQ(st["result"]["workers"].size(), 1u);
    EXPECT_TRUE(st["result"]["totals"]["drops"].is_object());
    // Edge counters reach the socket: worker 0 announces the port address and both VIPs at start.
    for (const char* group : {"icmp", "fragments", "kernel_path", "neighbor", "affinity"})
        EXPECT_TRUE(st["result"]["totals"][group].is_object()) << group;
    EXPECT_TRUE(st["result"]["totals"]["fragments"]["oversize"].is_number());
    uint64_t garps = 0;
    for (int i = 0; i < 200 && garps < 3; ++i) {
        garps = req({{"cmd", "stats"}})["result"]["totals"]["neighbor"]["gratuitous_arps"].get<uint64_t>();
        if (garps < 3) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(garps, 3u);
}

TEST_F(Daemon, SocketPermissions) {
    struct stat sb {};
    ASSERT_EQ(::stat(files.socket().c_str(), &sb), 0);
    EXPECT_TRUE(S_ISSOCK(sb.st_mode));
    EXPECT_EQ(sb.st_mode & 07777, 0660u);
}

TEST_F(Daemon, ErrorsAreClearAndKeepTheConnection) {
    Client c(files.socket());
    ASSERT_TRUE(c.connected());
    struct Case {
        std::string line;
        std::string error_part;
    };
    const std::vector<Case> cases = {
        {"garbage", "not valid JSON"},
        {"{\"cmd\":\"frobnicate\"}", "unknown command 'frobnicate'"},
        {"{\"cmd\":\"drain\",\"pool\":\"lund\"}", "missing field 'backend'"},
        {"{\"cmd\":\"drain\",\"pool\":\"nope\",\"backend\":\"198.51.100.11:5060\"}", "unknown pool 'nope'"},
        {"{\"cmd\":\"drain\",\"pool\":\"lund\",\"backend\":\"198.51.100.99:5060\"}", "no backend 198.51.100.99:5060"},
        {"{\"cmd\":\"lookup\",\"pool\":\"nope\",\"call_id\":\"x\"}", "unknown pool 'nope'"},
        {"{\"cmd\":\"weight\",\"pool\":\"lund\",\"backend\":\"198.51.100.11:5060\",\"weight\":100000}", "out of range"},
        {"{\"cmd\":\"resolve\",\"pool\":\"lund\"}", "no DNS names"},
        {"{\"cmd\":\"remove\",\"pool\":\"lund\",\"backend\":\"198.51.100.77:5060\"}", "no static backend"},
    };
    for (const auto& tc : cases) {
        ASSERT_TRUE(c.send_raw(tc.line + "\n"));
        json r = json::parse(c.read_line(), nullptr, false);
        ASSERT_TRUE(r.is_object()) << tc.line;
        EXPECT_EQ(r["ok"], false) << tc.line;
        EXPECT_NE(r["error"].get<std::string>().find(tc.error_part), std::string::npos)
            << tc.line << " -> " << r["error"];
    }
    // Pipelined requests in one write, CRLF and blank lines tolerated.
    ASSERT_TRUE(c.send_raw("{\"cmd\":\"status\"}\r\n\n{\"cmd\":\"pools\"}\n"));
    EXPECT_EQ(json::parse(c.read_line())["ok"], true);
    EXPECT_EQ(json::parse(c.read_line())["ok"], true);
}

TEST_F(Daemon, OverlongLineIsRejectedAndClosed) {
    Client c(files.socket());
    ASSERT_TRUE(c.connected());
    c.send_raw(std::string(70 * 1024, 'x'));
    json r = json::parse(c.read_line(), nullptr, false);
    ASSERT_TRUE(r.is_object());
    EXPECT_NE(r["error"].get<std::string>().find("exceeds 65536"), std::string::npos);
    EXPECT_TRUE(c.at_eof());
    EXPECT_EQ(req({{"cmd", "status"}})["ok"], true);
}

TEST_F(Daemon, HalfLineDoesNotStallOthers) {
    Client slow(files.socket());
    ASSERT_TRUE(slow.send_raw("{\"cmd\":\"sta"));
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(req({{"cmd", "status"}})["ok"], true);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    ASSERT_TRUE(slow.send_raw("tus\"}\n"));
    EXPECT_EQ(json::parse(slow.read_line())["ok"], true);
}

TEST_F(Daemon, ConcurrentClientsAndClientCap) {
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t)
        threads.emplace_back([&] {
            Client c(files.socket());
            for (int i = 0; i < 20; ++i)
                if (json r = c.request({{"cmd", i % 2 ? "backends" : "status"}}); r.is_object() && r.value("ok", false))
                    ++ok;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), 16 * 20);
    // Wait until the daemon has noticed those clients left (only the asker remains).
    for (int i = 0; i < 100; ++i) {
        json s = req({{"cmd", "status"}});
        if (s.is_object() && s["result"].value("control_clients", 99) == 1) break;
        std::this_thread::sleep_for(20ms);
    }
    std::this_thread::sleep_for(300ms);  // the asker's own connection closes too

    std::vector<std::unique_ptr<Client>> idle;
    for (int i = 0; i < 64; ++i) {
        idle.push_back(std::make_unique<Client>(files.socket()));
        ASSERT_TRUE(idle.back()->connected());
    }
    // Make sure the daemon has accepted them all.
    for (auto& c : idle) {
        json r = c->request({{"cmd", "pools"}});
        ASSERT_TRUE(r.is_object() && r.value("ok", false)) << r.dump();
    }
    Client extra(files.socket());
    json r = json::parse(extra.read_line(), nullptr, false);
    ASSERT_TRUE(r.is_object());
    EXPECT_NE(r["error"].get<std::string>().find("too many control clients"), std::string::npos);
    idle.clear();
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(req({{"cmd", "status"}})["ok"], true);
}

TEST_F(Daemon, DrainIsObservedThroughLookupAndBackends) {
    const std::string target = "198.51.100.12:5060";
    std::vector<std::string> to_target, others;
    std::map<std::string, std::string> before;
    for (int i = 0; i < 60; ++i) {
        const std::string id = "call-" + std::to_string(i) + "@test";
        json r = req({{"cmd", "lookup"}, {"pool", "lund"}, {"call_id", id}});
        ASSERT_EQ(r["ok"], true) << r.dump();
        EXPECT_EQ(r["result"]["reason"], "table");
        before[id] = r["result"]["backend"];
        (r["result"]["backend"] == target ? to_target : others).push_back(id);
    }
    ASSERT_FALSE(to_target.empty());
    const int v0 = req({{"cmd", "status"}})["result"]["snapshot_version"];

    RunResult d = ctl({"drain", "lund", target});
    ASSERT_EQ(d.status, 0) << d.out;
    EXPECT_NE(d.out.find("draining"), std::string::npos);
    EXPECT_GT(req({{"cmd", "status"}})["result"]["snapshot_version"].get<int>(), v0);
    json b = backend("lund", target);
    EXPECT_EQ(b["state"], "draining");
    EXPECT_EQ(b["table_share"], 0.0);
    EXPECT_EQ(b["admin_by"].get<std::string>().rfind("uid=", 0), 0u);
    // New Call-IDs avoid the drained backend; the others keep their backend
    // (Maglev moves only the drained backend's calls).
    for (const auto& id : to_target) {
        json r = req({{"cmd", "lookup"}, {"pool", "lund"}, {"call_id", id}});
        EXPECT_NE(r["result"]["backend"], target) << id;
    }
    for (const auto& id : others) {
        json r = req({{"cmd", "lookup"}, {"pool", "lund"}, {"call_id", id}});
        EXPECT_EQ(r["result"]["backend"], before[id]) << id;
    }
    // The other pool's table is untouched.
    RunResult q = ctl({"query", "lund", to_target[0]});
    EXPECT_EQ(q.status, 0);
    EXPECT_EQ(q.out.find(target), std::string::npos) << q.out;

    ASSERT_EQ(ctl({"enable", "lund", target}).status, 0);
    EXPECT_EQ(backend("lund", target)["state"], "active");
    for (const auto& id : to_target)
        EXPECT_EQ(req({{"cmd", "lookup"}, {"pool", "lund"}, {"call_id", id}})["result"]["backend"], target);
}

TEST_F(Daemon, OtherPoolUntouchedByChanges) {
    const std::string malmo_fp = req({{"cmd", "status"}})["result"]["tables"]["malmo"];
    ASSERT_EQ(ctl({"disable", "lund", "198.51.100.11:5060"}).status, 0);
    EXPECT_EQ(backend("lund", "198.51.100.11:5060")["state"], "disabled");
    json s = req({{"cmd", "status"}});
    EXPECT_EQ(s["result"]["tables"]["malmo"], malmo_fp);
    EXPECT_NE(s["result"]["tables"]["lund"], "");
    ASSERT_EQ(ctl({"enable", "lund", "198.51.100.11:5060"}).status, 0);
}

TEST_F(Daemon, WeightAddRemoveThroughSiplbctl) {
    RunResult w = ctl({"weight", "lund", "198.51.100.13:5060", "3"});
    ASSERT_EQ(w.status, 0) << w.out;
    EXPECT_EQ(backend("lund", "198.51.100.13:5060")["weight"], 3);
    ASSERT_EQ(ctl({"add", "lund", "198.51.100.14:5070", "2"}).status, 0);
    json b = backend("lund", "198.51.100.14:5070");
    EXPECT_EQ(b["state"], "active");
    EXPECT_EQ(b["weight"], 2);
    // The stats table is generated from the counter schema: every section renders.
    RunResult st = ctl({"stats"});
    EXPECT_EQ(st.status, 0) << st.out;
    for (const char* section : {"WORKER", "PORT", "GROUP", "POOL", "BACKEND", "PACKETS_TO"})
        EXPECT_NE(st.out.find(section), std::string::npos) << section << "\n" << st.out;
    RunResult tbl = ctl({"backends", "lund"});
    EXPECT_EQ(tbl.status, 0);
    EXPECT_NE(tbl.out.find("198.51.100.14:5070"), std::string::npos);
    EXPECT_NE(tbl.out.find("SHARE"), std::string::npos);
    EXPECT_NE(tbl.out.find("SELF_ADV"), std::string::npos) << tbl.out;
    RunResult dup = ctl({"add", "lund", "198.51.100.14:5070"});
    EXPECT_EQ(dup.status, 1);
    EXPECT_NE(dup.out.find("already has"), std::string::npos);
    ASSERT_EQ(ctl({"remove", "lund", "198.51.100.14:5070"}).status, 0);
    EXPECT_TRUE(backend("lund", "198.51.100.14:5070").is_null());
    ASSERT_EQ(ctl({"weight", "lund", "198.51.100.13:5060", "1"}).status, 0);
    RunResult js = ctl({"status", "--json"});
    ASSERT_EQ(js.status, 0);
    EXPECT_EQ(json::parse(js.out)["workers"], 1);
    EXPECT_EQ(ctl({"drain", "lund"}).status, 2);  // usage
}

TEST_F(Daemon, ReloadGoodBadAndRestartRequired) {
    files.write(files.config_text(", \"198.51.100.15:5060\""));
    json r = req({{"cmd", "reload"}});
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_FALSE(r["result"]["changes"].empty());
    EXPECT_EQ(backend("lund", "198.51.100.15:5060")["state"], "active");

    files.write("this is [not toml");
    r = req({{"cmd", "reload"}});
    ASSERT_EQ(r["ok"], false);
    EXPECT_NE(r["error"].get<std::string>().find("running config kept"), std::string::npos) << r["error"];
    EXPECT_EQ(backend("lund", "198.51.100.15:5060")["state"], "active");

    files.write(files.config_text(", \"198.51.100.16:5060\"", /*workers=*/2));
    RunResult ctlr = ctl({"reload"});
    EXPECT_EQ(ctlr.status, 1);
    EXPECT_NE(ctlr.out.find("restart"), std::string::npos) << ctlr.out;
    EXPECT_TRUE(backend("lund", "198.51.100.16:5060").is_null());

    // SIGHUP reloads too.
    files.write(files.config_text(", \"198.51.100.16:5060\""));
    ASSERT_EQ(::kill(pid, SIGHUP), 0);
    bool seen = false;
    for (int i = 0; i < 50 && !seen; ++i) {
        seen = !backend("lund", "198.51.100.16:5060").is_null();
        if (!seen) std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(seen);
    EXPECT_TRUE(backend("lund", "198.51.100.15:5060").is_null() ||
                backend("lund", "198.51.100.15:5060")["state"] == "draining");  // removed from config: drains

    files.write(files.config_text());
    EXPECT_EQ(req({{"cmd", "reload"}})["ok"], true);
    EXPECT_EQ(req({{"cmd", "status"}})["ok"], true);
}

TEST_F(Daemon, MetricsOverSocketAndHttp) {
    json m = req({{"cmd", "metrics"}});
    ASSERT_EQ(m["ok"], true);
    const std::string text = m["result"]["text"];
    EXPECT_NE(text.find("# TYPE siplb_backend_up gauge"), std::string::npos);
    EXPECT_NE(text.find("siplb_backend_up{pool=\"lund\",backend=\"198.51.100.11:5060\"} 1"), std::string::npos);
    EXPECT_NE(text.find("siplb_drops_total{worker=\"0\",reason="), std::string::npos);
    EXPECT_NE(text.find("# TYPE siplb_fragments_total counter"), std::string::npos);
    EXPECT_NE(text.find("siplb_fragments_total{worker=\"0\",kind=\"oversize\"} "), std::string::npos);
    EXPECT_NE(text.find("siplb_neighbors "), std::string::npos);

    auto http = [&](const std::string& request) {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(files.metrics_port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        std::string out;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
            ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
            char buf[65536];
            pollfd p{fd, POLLIN, 0};
            while (::poll(&p, 1, 5000) > 0) {
                const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
                if (n <= 0) break;
                out.append(buf, static_cast<size_t>(n));
            }
        }
        ::close(fd);
        return out;
    };
    const std::string ok = http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(ok.rfind("HTTP/1.0 200 OK", 0), 0u) << ok.substr(0, 200);
    EXPECT_NE(ok.find("siplb_snapshot_version"), std::string::npos);
    EXPECT_EQ(http("GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.0 404", 0), 0u);
    RunResult cm = ctl({"metrics"});
    EXPECT_EQ(cm.status, 0);
    EXPECT_NE(cm.out.find("siplb_traffic_total{worker=\"0\",kind=\"rx_packets\"}"), std::string::npos);
}

TEST_F(Daemon, SecondDaemonOnSameSocketRefused) {
    Files other = make_files("dup");
    other.metrics_port = free_tcp_port();
    std::string text = other.config_text();
    // Same control socket as the running daemon.
    const std::string mine = other.socket().string(), theirs = files.socket().string();
    text.replace(text.find(mine), mine.size(), theirs);
    other.write(text);
    RunResult r = run({kSiplb, "--config", other.config().string()}, 20s);
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.out.find("in use"), std::string::npos) << r.out;
    remove_files(other);
    EXPECT_EQ(req({{"cmd", "status"}})["ok"], true);
}

TEST_F(Daemon, WorkerHeartbeatInStatus) {
    json s = req({{"cmd", "status"}});
    ASSERT_EQ(s["ok"], true) << s.dump();
    EXPECT_EQ(s["result"]["dataplane"], "running");
    ASSERT_EQ(s["result"]["worker_status"].size(), 1u) << s.dump();
    const json w0 = s["result"]["worker_status"][0];
    EXPECT_EQ(w0["worker"], 0);
    EXPECT_EQ(w0["stalled"], false);
    EXPECT_EQ(s["result"]["stalled_workers"], 0);
    // Sampled by the control loop every 250 ms: the counter moves while the worker runs.
    std::this_thread::sleep_for(600ms);
    json s2 = req({{"cmd", "status"}});
    const json w1 = s2["result"]["worker_status"][0];
    EXPECT_GT(w1["loops"].get<uint64_t>(), w0["loops"].get<uint64_t>());
    EXPECT_EQ(w1["stalled"], false);
    RunResult t = ctl({"status"});
    ASSERT_EQ(t.status, 0) << t.out;
    EXPECT_NE(t.out.find("dataplane running"), std::string::npos) << t.out;
    EXPECT_NE(t.out.find("running, loops "), std::string::npos) << t.out;
    EXPECT_EQ(t.out.find("STALLED"), std::string::npos) << t.out;
}

TEST_F(Daemon, QueryCallIdStartingWithDash) {
    const std::string id = "-8f3a@pbx.example.net";
    json want = req({{"cmd", "lookup"}, {"pool", "lund"}, {"call_id", id}});
    ASSERT_EQ(want["ok"], true) << want.dump();
    const std::string backend = want["result"]["backend"];
    // Options before "--", arguments after it, even when they start with '-'.
    RunResult q = run({kSiplbctl, "query", "--socket", files.socket().string(), "--", "lund", id, "--json"});
    ASSERT_EQ(q.status, 0) << q.out;
    EXPECT_NE(q.out.find(id + "\t" + backend), std::string::npos) << q.out;  // "--json" is a Call-ID here
    // No traffic, so no VIP recorded: "-" in the VIP column, next to the backend.
    EXPECT_TRUE(want["result"]["vip"].is_null()) << want.dump();
    EXPECT_NE(q.out.find(id + "\t" + backend + "\t-\ttable\n"), std::string::npos) << q.out;
    EXPECT_NE(q.out.find("--json\t"), std::string::npos) << q.out;
    // Without "--" the Call-ID is taken for an option: usage error.
    RunResult bad = ctl({"query", "lund", id});
    EXPECT_EQ(bad.status, 2) << bad.out;
    EXPECT_NE(bad.out.find("unknown option"), std::string::npos) << bad.out;
    // Other online commands take "--" too.
    RunResult d = run({kSiplbctl, "backends", "--socket", files.socket().string(), "--", "malmo"});
    EXPECT_EQ(d.status, 0) << d.out;
    EXPECT_NE(d.out.find("198.51.100.21:5060"), std::string::npos) << d.out;
}

// Last in the suite: SIGTERM stops cleanly with exit status 0.
TEST_F(Daemon, SigtermExitsZeroAndRemovesSocket) {
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    const int code = wait_exit(pid, 15s);
    pid = -1;
    EXPECT_EQ(code, 0) << slurp(files.dir / "daemon.log");
    EXPECT_FALSE(fs::exists(files.socket()));
    const std::string log = slurp(files.dir / "daemon.log");
    EXPECT_NE(log.find("level=info msg=\"stopped\""), std::string::npos);
    EXPECT_NE(log.find("by=\"uid="), std::string::npos);  // changes were logged with who made them
    RunResult r = ctl({"status"});
    EXPECT_EQ(r.status, 3);
    EXPECT_NE(r.out.find("is siplb running"), std::string::npos);
}

TEST(DaemonCli, CheckAndBadConfig) {
    Files f = make_files("chk");
    f.write(f.config_text());
    RunResult ok = run({kSiplb, "--config", f.config().string(), "--check"});
    EXPECT_EQ(ok.status, 0) << ok.out;
    EXPECT_NE(ok.out.find("configuration valid"), std::string::npos);
    f.write("[[pool]]\nname = 7\n");
    RunResult bad = run({kSiplb, "--config", f.config().string()});
    EXPECT_EQ(bad.status, 2) << bad.out;
    EXPECT_NE(bad.out.find("level=error msg=\"invalid configuration\""), std::string::npos) << bad.out;
    RunResult missing = run({kSiplb, "--config", (f.dir / "nope.toml").string(), "--check"});
    EXPECT_EQ(missing.status, 2);
    EXPECT_EQ(run({kSiplb}).status, 2);
    remove_files(f);
}

// [control] stop_grace_ms: after SIGTERM the daemon reports "stopping" and
// keeps running for the grace, then exits 0; a second SIGTERM ends it at once.
Files grace_files(const char* tag, uint32_t grace_ms) {
    Files f = make_files(tag);
    std::string text = f.config_text();
    const std::string head = "[control]\n";
    text.replace(text.find(head), head.size(), head + "stop_grace_ms = " + std::to_string(grace_ms) + "\n");
    f.write(text);
    return f;
}

std::string dataplane_state(const Files& f) {
    Client c(f.socket());
    json s = c.request({{"cmd", "status"}});
    return s.is_object() && s.value("ok", false) ? s["result"].value("dataplane", "") : "";
}

TEST(DaemonStop, GraceReportsStoppingThenExits) {
    Files f = grace_files("grace", 1500);
    const pid_t pid = spawn_daemon(f, f.dir / "daemon.log");
    ASSERT_TRUE(wait_running(f, pid)) << slurp(f.dir / "daemon.log");
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    std::string state;
    for (int i = 0; i < 50 && state != "stopping"; ++i) {
        state = dataplane_state(f);
        if (state != "stopping") std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(state, "stopping");
    RunResult st = run({kSiplbctl, "status", "--socket", f.socket().string()});
    EXPECT_NE(st.out.find("dataplane stopping"), std::string::npos) << st.out;
    const int code = wait_exit(pid, 15s);
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(code, 0) << slurp(f.dir / "daemon.log");
    EXPECT_GE(elapsed, 1500ms);
    const std::string log = slurp(f.dir / "daemon.log");
    EXPECT_NE(log.find("grace period over"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(f.socket()));
    remove_files(f);
}

TEST(DaemonStop, SecondSigtermStopsAtOnce) {
    Files f = grace_files("grace2", 60000);
    const pid_t pid = spawn_daemon(f, f.dir / "daemon.log");
    ASSERT_TRUE(wait_running(f, pid)) << slurp(f.dir / "daemon.log");
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    std::string state;
    for (int i = 0; i < 50 && state != "stopping"; ++i) {
        state = dataplane_state(f);
        if (state != "stopping") std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(state, "stopping");
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    // Well inside the 60 s grace.
    const int code = wait_exit(pid, 15s);
    EXPECT_EQ(code, 0) << slurp(f.dir / "daemon.log");
    EXPECT_EQ(slurp(f.dir / "daemon.log").find("grace period over"), std::string::npos);
    remove_files(f);
}

// Live protection changes on the shipped daemon: net_pcap replays client
// INVITEs (half from a "evil-bot" User-Agent) forever into a VIP, the
// backends sit behind a net_null port. A reload that adds a drop rule takes
// effect while traffic flows, in the same process; a reload with a bad
// pattern is refused naming the rule, and the running rules stay.
void write_pcap(const fs::path& path) {
    std::ofstream out(path, std::ios::binary);
    auto put32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
    auto put16 = [&](uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
    put32(0xa1b2c3d4);
    put16(2);
    put16(4);
    put32(0);
    put32(0);
    put32(65535);
    put32(1);  // Ethernet
    for (int i = 0; i < 64; ++i) {
        const std::string ua = i % 2 ? "evil-bot/2.0" : "Yealink SIP-T46S";
        const std::string call_id = "pcap-" + std::to_string(i) + "@192.0.2.10";
        const std::string sip =
            "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" +
            std::to_string(i) +
            "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>"
            "\r\nCall-ID: " +
            call_id + "\r\nCSeq: 1 INVITE\r\nUser-Agent: " + ua + "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        std::vector<uint8_t> f(14 + 20 + 8);
        const uint8_t dst_mac[6] = {0x02, 0, 0, 0, 0x01, 0x01}, src_mac[6] = {0x02, 0, 0, 0, 0x00, 0xfe};
        std::copy(dst_mac, dst_mac + 6, f.begin());
        std::copy(src_mac, src_mac + 6, f.begin() + 6);
        f[12] = 0x08;
        const uint16_t ip_len = static_cast<uint16_t>(20 + 8 + sip.size());
        const uint8_t ip[20] = {0x45,
                                0,
                                static_cast<uint8_t>(ip_len >> 8),
                                static_cast<uint8_t>(ip_len),
                                0,
                                0,
                                0,
                                0,
                                64,
                                17,
                                0,
                                0,
                                192,
                                0,
                                2,
                                10,
                                203,
                                0,
                                113,
                                10};
        std::copy(ip, ip + 20, f.begin() + 14);
        uint32_t sum = 0;
        for (int k = 0; k < 20; k += 2) sum += static_cast<uint32_t>(ip[k] << 8 | ip[k + 1]);
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        f[24] = static_cast<uint8_t>(~sum >> 8);
        f[25] = static_cast<uint8_t>(~sum);
        const uint16_t udp_len = static_cast<uint16_t>(8 + sip.size());
        const uint8_t udp[8] =
            {0x13, 0xbe, 0x13, 0xc4, static_cast<uint8_t>(udp_len >> 8), static_cast<uint8_t>(udp_len),
             0,    0};  // 5054 -> 5060, no UDP checksum (IPv4 allows it)
        std::copy(udp, udp + 8, f.begin() + 34);
        f.insert(f.end(), sip.begin(), sip.end());
        put32(0);
        put32(0);
        put32(static_cast<uint32_t>(f.size()));
        put32(static_cast<uint32_t>(f.size()));
        out.write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size()));
    }
}

std::string pcap_config(const Files& f, const std::string& rules) {
    std::ostringstream o;
    o << "[control]\nsocket = \"" << f.socket().string() << "\"\n\n"
      << "[dataplane]\neal = [\"--no-huge\", \"-m\", \"512\", \"--no-pci\", \"--file-prefix\", \"" << f.prefix
      << "\", \"--log-level\", \"error\"]\nworkers = 1\nmbufs = 8192\naffinity_capacity = 4096\n\n"
      << "[[dataplane.port]]\nname = \"ext\"\ndevice = \"net_pcap0\"\nvdev_args = \"rx_pcap="
      << (f.dir / "in.pcap").string() << ",tx_pcap=/dev/null,infinite_rx=1\"\naddresses = [\"203.0.113.2/24\"]\n"
      << "mac = \"02:00:00:00:01:01\"\n\n"
      << "[[dataplane.port]]\nname = \"int\"\ndevice = \"net_null1\"\nvdev_args = \"no-rx=1\"\n"
      << "addresses = [\"198.51.100.2/24\"]\n\n"
      << "[[dataplane.route]]\nprefix = \"0.0.0.0/0\"\nvia = \"203.0.113.254\"\n\n"
      << "[[dataplane.neighbor]]\nip = \"203.0.113.254\"\nmac = \"02:00:00:00:00:fe\"\n\n"
      << "[[dataplane.neighbor]]\nip = \"198.51.100.11\"\nmac = \"02:00:00:00:0b:11\"\n\n"
      << "[[dataplane.neighbor]]\nip = \"198.51.100.12\"\nmac = \"02:00:00:00:0b:12\"\n\n"
      << "[health]\nenabled = false\n\n"
      << "[[pool]]\nname = \"lund\"\nlisten = [\"203.0.113.10:5060\"]\n"
      << "backends = [\"198.51.100.11:5060\", \"198.51.100.12:5060\"]\n"
      << rules;
    return o.str();
}

TEST(DaemonProtect, DropRuleAddedByReloadAppliesWhileTrafficFlows) {
    Files f = make_files("prot");
    write_pcap(f.dir / "in.pcap");
    f.write(pcap_config(f, ""));
    const pid_t pid = spawn_daemon(f, f.dir / "daemon.log");
    ASSERT_TRUE(wait_running(f, pid)) << slurp(f.dir / "daemon.log");
    auto stats = [&] {
        Client c(f.socket());
        return c.request({{"cmd", "stats"}})["result"];
    };
    auto counter = [](const json& st, const char* group, const char* name) -> uint64_t {
        for (const auto& p : st["pools"])
            if (p["pool"] == "lund") return p[group][name].get<uint64_t>();
        return 0;
    };
    // A rule of lund's hits; UINT64_MAX when stats do not list it.
    auto rule_hits = [](const json& st, const char* name) -> uint64_t {
        for (const auto& r : st.value("rules", json::array()))
            if (r["pool"] == "lund" && r["rule"] == name) return r["protect"]["hits"].get<uint64_t>();
        return UINT64_MAX;
    };
    auto wait_for = [&](auto pred) {
        for (int i = 0; i < 100; ++i) {
            if (pred(stats())) return true;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    };
    EXPECT_TRUE(wait_for([&](const json& st) { return counter(st, "traffic", "packets_in") > 1000; }));
    EXPECT_EQ(counter(stats(), "protect", "rule_drops"), 0u);
    EXPECT_EQ(rule_hits(stats(), "bots"), UINT64_MAX);  // no rules, none listed

    f.write(pcap_config(f,
                        "[[pool.rule]]\nname = \"bots\"\nfield = \"user_agent\"\npattern = \"evil-bot\"\n"
                        "action = \"drop\"\n"));
    RunResult r = run({kSiplbctl, "--socket", f.socket().string(), "reload"});
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("rule bots added"), std::string::npos) << r.out;
    const json mid = stats();
    EXPECT_TRUE(wait_for([&](const json& st) {
        return counter(st, "protect", "rule_drops") > 1000 &&
               counter(st, "traffic", "packets_in") > counter(mid, "traffic", "packets_in") + 1000;
    })) << stats().dump();
    EXPECT_GT(stats()["totals"]["drops"]["protect_rule"].get<uint64_t>(), 1000u);
    // The rule's own hits, and the memo answering the two User-Agents of the
    // replay instead of scanning them again.
    EXPECT_GT(rule_hits(stats(), "bots"), 1000u);
    EXPECT_GT(counter(stats(), "protect", "memo_hits"), 1000u);
    EXPECT_LT(counter(stats(), "protect", "scans"), 100u);
    EXPECT_EQ(counter(stats(), "protect", "scan_errors"), 0u);

    // A bad pattern: refused, naming the rule; the bots stay dropped.
    f.write(pcap_config(f,
                        "[[pool.rule]]\nname = \"bots\"\nfield = \"user_agent\"\npattern = \"evil-bot\"\n"
                        "action = \"drop\"\n[[pool.rule]]\nname = \"broken\"\nfield = \"user_agent\"\n"
                        "pattern = \"(\"\naction = \"drop\"\n"));
    r = run({kSiplbctl, "--socket", f.socket().string(), "reload"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("rule 'broken'"), std::string::npos) << r.out;
    const uint64_t drops_then = counter(stats(), "protect", "rule_drops");
    EXPECT_TRUE(wait_for([&](const json& st) { return counter(st, "protect", "rule_drops") > drops_then + 1000; }));

    // A reload that adds a rule before "bots": its hits carry on (by name,
    // not position), the new rule starts at 0.
    const uint64_t bots_then = rule_hits(stats(), "bots");
    f.write(pcap_config(f,
                        "[[pool.rule]]\nname = \"quiet\"\nfield = \"user_agent\"\npattern = \"nobody-sends-this\"\n"
                        "action = \"drop\"\n[[pool.rule]]\nname = \"bots\"\nfield = \"user_agent\"\n"
                        "pattern = \"evil-bot\"\naction = \"drop\"\n"));
    r = run({kSiplbctl, "--socket", f.socket().string(), "reload"});
    EXPECT_EQ(r.status, 0) << r.out;
    const json reloaded = stats();
    EXPECT_GE(rule_hits(reloaded, "bots"), bots_then) << reloaded.dump();
    EXPECT_EQ(rule_hits(reloaded, "quiet"), 0u) << reloaded.dump();
    EXPECT_TRUE(wait_for([&](const json& st) { return rule_hits(st, "bots") > bots_then + 1000; }));
    // siplbctl's text shows the rules with their hits.
    r = run({kSiplbctl, "--socket", f.socket().string(), "stats"});
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("RULE"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("quiet"), std::string::npos) << r.out;

    Client c(f.socket());
    EXPECT_EQ(c.request({{"cmd", "status"}})["result"]["pid"], pid);  // the same process throughout
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    EXPECT_EQ(wait_exit(pid, 15s), 0) << slurp(f.dir / "daemon.log");
    remove_files(f);
}

// siplbctl top in a real terminal: a detached tmux session (80x24, no
// status line) runs it against a daemon forwarding a pcap replay. The frame
// must show the header and the pool with a rate, fit in 80 columns, and
// leave the terminal as it found it after q and after Ctrl-C (the shell
// script prints the exit status and stty's icanon/echo flags after each run,
// then waits for Enter, so the pane is alive when the cursor is checked).
const std::string kTmux = "/usr/bin/tmux";

TEST(DaemonTop, LiveViewInTmux) {
    ASSERT_TRUE(fs::exists(kTmux)) << "tmux is missing (scripts/setup installs it)";
    Files f = make_files("top");
    write_pcap(f.dir / "in.pcap");
    f.write(pcap_config(f, ""));
    pid_t pid = spawn_daemon(f, f.dir / "daemon.log");
    const std::string sock = (f.dir / "tmux.sock").string();
    struct Cleanup {
        pid_t& pid;
        Files& f;
        std::string sock;
        ~Cleanup() {
            run({kTmux, "-S", sock, "kill-server"}, 10s);  // this test's own server, by its socket
            if (pid > 0) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, nullptr, 0);
            }
            remove_files(f);
        }
    } cleanup{pid, f, sock};
    ASSERT_TRUE(wait_running(f, pid)) << slurp(f.dir / "daemon.log");

    std::ofstream(f.dir / "tmux.conf") << "set -g remain-on-exit on\nset -g status off\n";
    std::ofstream(f.dir / "top.sh")
        << "trap true INT\n"
        << "flags() { stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; "
           "echo; }\n"
        << "\"$1\" top --socket \"$2\" --interval 0.5\necho \"top exited $? after q\"\nflags\nread go\n"
        << "\"$1\" top --socket \"$2\" --interval 0.5\necho \"top exited $? after C-c\"\nflags\nread go\n";
    RunResult started =
        run({kTmux, "-S", sock, "-f", (f.dir / "tmux.conf").string(), "new-session", "-d", "-s", "top", "-x", "80",
             "-y", "24", "sh " + (f.dir / "top.sh").string() + " " + kSiplbctl + " " + f.socket().string()});
    ASSERT_EQ(started.status, 0) << started.out;
    auto tmux = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {kTmux, "-S", sock});
        return run(args, 10s).out;
    };
    // The screen, wrapped lines joined (a line the terminal wrapped would show as longer than 80).
    auto screen = [&] {
        std::vector<std::string> lines;
        std::istringstream in(tmux({"capture-pane", "-p", "-J", "-t", "top"}));
        for (std::string l; std::getline(in, l);) {
            while (!l.empty() && l.back() == ' ') l.pop_back();
            lines.push_back(l);
        }
        return lines;
    };
    auto wait_screen = [&](auto pred) {
        for (int i = 0; i < 75; ++i) {
            if (pred(screen())) return true;
            std::this_thread::sleep_for(200ms);
        }
        return false;
    };
    auto has = [](const std::vector<std::string>& lines, const std::string& prefix) {
        for (const auto& l : lines)
            if (l.rfind(prefix, 0) == 0) return &l;
        return static_cast<const std::string*>(nullptr);
    };
    // A frame with rates: the pool line's IN/s is a number, not "-".
    auto frame_with_rates = [&](const std::vector<std::string>& lines) {
        const std::string* pool = has(lines, "lund ");
        return has(lines, "siplb ") && pool && pool->find(" - ") == std::string::npos;
    };
    auto flags_restored = [](const std::vector<std::string>& lines, const std::string& after) {
        for (size_t i = 0; i + 1 < lines.size(); ++i)
            if (lines[i] == "top exited " + after) return lines[i + 1] == "icanon echo";
        return false;
    };

    for (const char* round : {"0 after q", "130 after C-c"}) {
        std::vector<std::string> lines;
        ASSERT_TRUE(wait_screen([&](const auto& l) { return frame_with_rates(lines = l); }))
            << round << ":\n"
            << testing::PrintToString(screen()) << slurp(f.dir / "daemon.log");
        EXPECT_NE(has(lines, "siplb 0.1.0  pid " + std::to_string(pid) + "  up "), nullptr)
            << testing::PrintToString(lines);
        EXPECT_NE(has(lines, "POOL / BACKEND "), nullptr);
        EXPECT_NE(has(lines, "  198.51.100.11:5060 "), nullptr);
        EXPECT_LE(lines.size(), 24u);
        for (const auto& l : lines) EXPECT_LE(l.size(), 80u) << l;
        EXPECT_EQ(tmux({"display-message", "-p", "-t", "top", "#{cursor_flag}"}), "0\n");  // hidden while running

        tmux({"send-keys", "-t", "top", std::string(round).find("q") != std::string::npos ? "q" : "C-c"});
        EXPECT_TRUE(wait_screen([&](const auto& l) { return flags_restored(l, round); }))
            << round << ":\n"
            << testing::PrintToString(screen());
        EXPECT_EQ(tmux({"display-message", "-p", "-t", "top", "#{cursor_flag}"}), "1\n");
        tmux({"send-keys", "-t", "top", "Enter"});  // on to the next round
    }
    EXPECT_TRUE(wait_screen([&](const auto&) {
        return tmux({"display-message", "-p", "-t", "top", "#{pane_dead}"}) == "1\n";
    }));

    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    EXPECT_EQ(wait_exit(pid, 15s), 0) << slurp(f.dir / "daemon.log");
    pid = -1;
}

// systemd's end of sd_notify: a datagram socket the test binds in its temp
// dir and hands to the daemon as NOTIFY_SOCKET, with a 1 s WATCHDOG_USEC.
class NotifySocket {
public:
    explicit NotifySocket(const fs::path& path) : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
        bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    }
    ~NotifySocket() { ::close(fd_); }
    bool bound() const { return bound_; }
    // The next notification, "" when none arrives in time.
    std::string next(std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "";
        char buf[4096];
        const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    }

private:
    fs::path path_;
    int fd_ = -1;
    bool bound_ = false;
};

TEST(DaemonNotify, ReadyStatusWatchdogReloadStopping) {
    Files f = make_files("notify");
    f.write(f.config_text());
    NotifySocket ns(f.dir / "notify.sock");
    ASSERT_TRUE(ns.bound());
    const fs::path log = f.dir / "daemon.log";
    pid_t pid = spawn_daemon_env(f, log, {"NOTIFY_SOCKET=" + (f.dir / "notify.sock").string(), "WATCHDOG_USEC=1000000"},
                                 /*watchdog_pid=*/true);
    struct Cleanup {
        pid_t& pid;
        Files& f;
        ~Cleanup() {
            if (pid > 0) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, nullptr, 0);
            }
            remove_files(f);
        }
    } cleanup{pid, f};

    // The first notification is READY=1 with a status line, and by then the
    // dataplane runs and the control socket answers.
    const std::string ready = ns.next(30s);
    ASSERT_EQ(ready.rfind("READY=1\nSTATUS=running: 2 pools, 5/5 backends up", 0), 0u) << ready << "\n" << slurp(log);
    {
        Client c(f.socket());
        ASSERT_TRUE(c.connected());
        const json s = c.request({{"cmd", "status"}});
        EXPECT_EQ(s["result"]["dataplane"], "running") << s.dump();
        EXPECT_EQ(s["result"]["pid"], pid);
    }
    // Watchdog pings every half interval while the worker runs, and
    // periodic STATUS lines carry the transmit rate.
    size_t pings = 0;
    std::string status;
    const auto until = std::chrono::steady_clock::now() + 4s;
    while (std::chrono::steady_clock::now() < until) {
        const std::string m = ns.next(100ms);
        if (m == "WATCHDOG=1")
            ++pings;
        else if (m.rfind("STATUS=", 0) == 0)
            status = m;
        else
            EXPECT_EQ(m, "") << "unexpected notification";
    }
    EXPECT_GE(pings, 4u) << slurp(log);
    EXPECT_NE(status.find(" Mpps tx, 1 worker"), std::string::npos) << status;
    EXPECT_NE(slurp(log).find("systemd watchdog on"), std::string::npos);

    // A reload is bracketed by RELOADING=1 and READY=1.
    ASSERT_EQ(::kill(pid, SIGHUP), 0);
    std::vector<std::string> seen;
    for (std::string m; seen.size() < 2 && !(m = ns.next(5s)).empty();)
        if (m != "WATCHDOG=1" && m.rfind("STATUS=", 0) != 0) seen.push_back(m);
    EXPECT_EQ(seen, (std::vector<std::string>{"RELOADING=1", "READY=1"}));

    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    bool stopping = false;
    for (std::string m; !stopping && !(m = ns.next(5s)).empty();) stopping = m == "STOPPING=1";
    EXPECT_TRUE(stopping);
    EXPECT_EQ(wait_exit(pid, 15s), 0) << slurp(log);
    pid = -1;
}

}  // namespace
