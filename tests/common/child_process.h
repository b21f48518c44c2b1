// Test helpers: child processes (dnsmasq, sipp) owned by PID with RAII
// cleanup, free loopback ports, temp dirs.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace siplb::testing {

// A child process killed (SIGTERM, then SIGKILL) and reaped by saved PID.
class ChildProcess {
public:
    ChildProcess() = default;
    explicit ChildProcess(const std::vector<std::string>& argv, const std::string& log_path = "/dev/null") {
        start(argv, log_path);
    }
    ~ChildProcess() { stop(); }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    void start(const std::vector<std::string>& argv, const std::string& log_path = "/dev/null") {
        stop();
        pid_ = fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            setpgid(0, 0);
            int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            int in = open("/dev/null", O_RDONLY);
            if (in >= 0) dup2(in, 0);
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            execv(args[0], args.data());
            _exit(127);
        }
    }
    // Stops the child; returns true if it was running.
    bool stop() {
        if (pid_ <= 0) return false;
        kill(pid_, SIGTERM);
        int status = 0;
        bool reaped = false;
        for (int i = 0; i < 200 && !reaped; ++i) {
            if (waitpid(pid_, &status, WNOHANG) == pid_)
                reaped = true;
            else
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (!reaped) {
            kill(pid_, SIGKILL);
            waitpid(pid_, &status, 0);
        }
        pid_ = -1;
        return true;
    }
    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return false;
        }
        return true;
    }
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
};

// A UDP port on addr that was free a moment ago.
inline uint16_t free_udp_port(const char* addr = "127.0.0.1") {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, addr, &sa.sin_addr);
    bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    close(fd);
    return ntohs(sa.sin_port);
}

// True once something listens on addr:port/udp (bind fails with EADDRINUSE).
inline bool udp_port_taken(const char* addr, uint16_t port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, addr, &sa.sin_addr);
    const int rc = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    const int err = errno;
    close(fd);
    return rc != 0 && err == EADDRINUSE;
}

inline bool wait_udp_port(const char* addr, uint16_t port, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (udp_port_taken(addr, port)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "siplb-disc-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    std::string file(const std::string& name) const { return (path_ / name).string(); }
    void write(const std::string& name, const std::string& text) const { std::ofstream(file(name)) << text; }

private:
    std::filesystem::path path_;
};

// dnsmasq serving only the records of its conf file on 127.0.0.1:port.
class Dnsmasq {
public:
    explicit Dnsmasq(const TempDir& dir) : dir_(dir), port_(free_udp_port()) {}
    // (Re)starts with these conf lines ("srv-host=...", "host-record=...").
    bool start(const std::vector<std::string>& records, unsigned local_ttl = 2) {
        proc_.stop();
        std::string conf;
        for (const auto& r : records) conf += r + "\n";
        dir_.write("dnsmasq.conf", conf);
        std::vector<std::string> argv = {"/usr/sbin/dnsmasq",
                                         "--keep-in-foreground",
                                         "--port=" + std::to_string(port_),
                                         "--listen-address=127.0.0.1",
                                         "--bind-interfaces",
                                         "--no-resolv",
                                         "--no-hosts",
                                         "--no-negcache",
                                         "--pid-file=" + dir_.file("dnsmasq.pid"),
                                         "--local-ttl=" + std::to_string(local_ttl),
                                         "--conf-file=" + dir_.file("dnsmasq.conf"),
                                         "--log-queries",
                                         "--log-facility=-"};
        if (geteuid() == 0) argv.push_back("--user=root");  // keep access to the temp dir
        proc_.start(argv, dir_.file("dnsmasq.out"));
        return wait_udp_port("127.0.0.1", port_, std::chrono::seconds(5));
    }
    void stop() { proc_.stop(); }
    uint16_t port() const { return port_; }

private:
    const TempDir& dir_;
    uint16_t port_;
    ChildProcess proc_;
};

}  // namespace siplb::testing
