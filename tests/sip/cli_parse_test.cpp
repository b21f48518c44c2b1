// Runs the built `siplbctl parse` on the shipped sample datagrams and on
// captures written here with libpcap (Ethernet, 802.1Q, IPv6, Linux cooked,
// fragments, non-UDP), and checks its JSON lines and exit codes.
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct CliRun {
    int exit_code = -1;
    std::string output;
    std::vector<json> lines;
};

std::string siplbctl() {
    const char* p = std::getenv("SIPLBCTL");
    return p ? p : "";
}

CliRun run(const std::string& args, bool json_lines = true) {
    CliRun r;
    const std::string cmd = siplbctl() + " parse " + args + " 2>/dev/null";
    FILE* f = popen(cmd.c_str(), "r");
    if (!f) return r;
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    const int status = pclose(f);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.output = out;
    if (!json_lines) return r;
    size_t pos = 0;
    while (pos < out.size()) {
        size_t nl = out.find('\n', pos);
        if (nl == std::string::npos) nl = out.size();
        r.lines.push_back(json::parse(out.substr(pos, nl - pos)));
        pos = nl + 1;
    }
    return r;
}

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/siplb-cli-parse-XXXXXX";
        path_ = mkdtemp(tmpl) ? tmpl : "";
    }
    ~TempDir() {
        std::error_code ec;
        if (!path_.empty()) fs::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

const std::string kSip =
    "OPTIONS sip:198.51.100.11 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
    "From: <sip:a@192.0.2.1>;tag=ft\r\nTo: <sip:198.51.100.11>\r\nCall-ID: pcap-call@192.0.2.1\r\n"
    "CSeq: 3 OPTIONS\r\nUser-Agent: test-ua\r\nContent-Length: 0\r\n\r\n";

// Appends with resize + memcpy: vector::insert at -O3 trips GCC 12's
// -Warray-bounds false positive.
template <class Bytes>
void append(std::vector<uint8_t>& v, const Bytes& tail) {
    const size_t old = v.size();
    v.resize(old + tail.size());
    if (!tail.empty()) std::memcpy(v.data() + old, tail.data(), tail.size());
}

void put16(std::vector<uint8_t>& v, size_t at, uint16_t x) {
    v[at] = uint8_t(x >> 8);
    v[at + 1] = uint8_t(x);
}

std::vector<uint8_t> udp(const std::string& payload) {
    std::vector<uint8_t> u(8);
    put16(u, 0, 5060);
    put16(u, 2, 5060);
    put16(u, 4, uint16_t(8 + payload.size()));
    append(u, payload);
    return u;
}

std::vector<uint8_t> ipv4(uint8_t proto, const std::vector<uint8_t>& l4, uint16_t frag = 0) {
    std::vector<uint8_t> ip(20);
    ip[0] = 0x45;
    put16(ip, 2, uint16_t(20 + l4.size()));
    put16(ip, 6, frag);
    ip[8] = 64;
    ip[9] = proto;
    const uint8_t src[] = {192, 0, 2, 1}, dst[] = {198, 51, 100, 11};
    std::copy(src, src + 4, ip.begin() + 12);
    std::copy(dst, dst + 4, ip.begin() + 16);
    append(ip, l4);
    return ip;
}

std::vector<uint8_t> ipv6(uint8_t next, const std::vector<uint8_t>& l4) {
    std::vector<uint8_t> ip(40);
    ip[0] = 0x60;
    put16(ip, 4, uint16_t(l4.size()));
    ip[6] = next;
    ip[7] = 64;
    ip[8] = 0x20, ip[9] = 0x01, ip[10] = 0x0d, ip[11] = 0xb8, ip[23] = 1;
    ip[24] = 0x20, ip[25] = 0x01, ip[26] = 0x0d, ip[27] = 0xb8, ip[39] = 2;
    append(ip, l4);
    return ip;
}

std::vector<uint8_t> ether(uint16_t type, const std::vector<uint8_t>& l3, bool vlan = false) {
    std::vector<uint8_t> e(12, 0x02);
    if (vlan) {
        e.push_back(0x81), e.push_back(0x00), e.push_back(0x00), e.push_back(0x64);
    }
    e.push_back(uint8_t(type >> 8)), e.push_back(uint8_t(type));
    append(e, l3);
    return e;
}

std::vector<uint8_t> sll(uint16_t type, const std::vector<uint8_t>& l3) {
    std::vector<uint8_t> e(16, 0);
    put16(e, 14, type);
    append(e, l3);
    return e;
}

void write_pcap(const std::string& path, int dlt, const std::vector<std::vector<uint8_t>>& packets) {
    pcap_t* dead = pcap_open_dead(dlt, 65535);
    ASSERT_NE(dead, nullptr);
    pcap_dumper_t* dumper = pcap_dump_open(dead, path.c_str());
    ASSERT_NE(dumper, nullptr) << pcap_geterr(dead);
    for (const auto& p : packets) {
        pcap_pkthdr h{};
        h.caplen = h.len = uint32_t(p.size());
        pcap_dump(reinterpret_cast<u_char*>(dumper), &h, p.data());
    }
    pcap_dump_close(dumper);
    pcap_close(dead);
}

}  // namespace

class CliParse : public ::testing::Test {
protected:
    void SetUp() override {
        if (siplbctl().empty()) GTEST_SKIP() << "SIPLBCTL not set";
        ASSERT_FALSE(dir_.path().empty());
    }
    TempDir dir_;
};

TEST_F(CliParse, SampleDatagramFiles) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(SIPLB_SIP_TEST_DATA))
        if (e.path().extension() == ".sip") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    std::string args;
    for (const auto& f : files) args += " '" + f + "'";
    const CliRun r = run(args);
    EXPECT_EQ(r.exit_code, 0);
    ASSERT_EQ(r.lines.size(), files.size());
    for (size_t i = 0; i < files.size(); ++i) {
        const json& j = r.lines[i];
        EXPECT_EQ(j["source"], files[i]);
        const std::string name = fs::path(files[i]).filename().string();
        if (name.rfind("reject_", 0) == 0) {
            EXPECT_EQ(j["verdict"], "reject") << name;
            EXPECT_TRUE(j.contains("reason")) << name;
        } else if (name.rfind("keepalive", 0) == 0) {
            EXPECT_EQ(j["verdict"], "keepalive") << name;
        } else {
            EXPECT_EQ(j["verdict"], "ok") << name;
            EXPECT_FALSE(j.value("call_id", "").empty()) << name;
            EXPECT_TRUE(j.contains("method") || j.contains("status")) << name;
        }
    }
    const auto invite = std::find_if(r.lines.begin(), r.lines.end(), [](const json& j) {
        return j["source"].get<std::string>().find("invite_asterisk") != std::string::npos;
    });
    ASSERT_NE(invite, r.lines.end());
    EXPECT_EQ((*invite)["method"], "INVITE");
    EXPECT_EQ((*invite)["call_id"], "3c2a9e7f-51d4-4a8e-b0c1-6f2d9a8e7b41");
    EXPECT_EQ((*invite)["cseq"], "24618 INVITE");
    EXPECT_EQ((*invite)["user_agent"], "Asterisk PBX 18.12.1");
}

TEST_F(CliParse, EthernetCapture) {
    const std::string path = dir_.path() + "/eth.pcap";
    write_pcap(path, DLT_EN10MB,
               {
                   ether(0x0800, ipv4(17, udp(kSip))),                                   // #1 ok
                   ether(0x0800, ipv4(6, std::vector<uint8_t>(20, 0))),                  // #2 TCP: skipped
                   ether(0x86DD, ipv6(17, udp("\r\n\r\n")), true),                       // #3 VLAN, IPv6 keepalive
                   ether(0x0800, ipv4(17, udp(kSip.substr(0, 60)), 0x2000)),             // #4 first fragment
                   ether(0x0806, std::vector<uint8_t>(28, 0)),                           // #5 ARP: skipped
                   ether(0x0800, ipv4(17, udp("SIP/2.0 200 OK\r\nCSeq: 1 X\r\n\r\n"))),  // #6 no Call-ID
               });
    const CliRun r = run("'" + path + "'");
    EXPECT_EQ(r.exit_code, 0);
    ASSERT_EQ(r.lines.size(), 4u);
    EXPECT_EQ(r.lines[0]["source"], path + "#1");
    EXPECT_EQ(r.lines[0]["verdict"], "ok");
    EXPECT_EQ(r.lines[0]["kind"], "request");
    EXPECT_EQ(r.lines[0]["method"], "OPTIONS");
    EXPECT_EQ(r.lines[0]["call_id"], "pcap-call@192.0.2.1");
    EXPECT_EQ(r.lines[0]["from_tag"], "ft");
    EXPECT_EQ(r.lines[0]["user_agent"], "test-ua");
    EXPECT_EQ(r.lines[0]["src"], "192.0.2.1:5060");
    EXPECT_EQ(r.lines[1]["source"], path + "#3");
    EXPECT_EQ(r.lines[1]["verdict"], "keepalive");
    EXPECT_EQ(r.lines[1]["dst"], "[2001:db8:0:0:0:0:0:2]:5060");
    EXPECT_EQ(r.lines[2]["source"], path + "#4");
    EXPECT_EQ(r.lines[2]["verdict"], "reject");
    EXPECT_EQ(r.lines[2]["reason"], "fragment");
    EXPECT_EQ(r.lines[3]["source"], path + "#6");
    EXPECT_EQ(r.lines[3]["reason"], "no_call_id");
    EXPECT_EQ(r.lines[3]["status"], 200);
}

TEST_F(CliParse, LinuxCookedCaptureAndIpv6Fragment) {
    const std::string path = dir_.path() + "/any.pcap";
    std::vector<uint8_t> frag_hdr = {17, 0, 0, 1, 0, 0, 0, 42};  // fragment header, more fragments
    auto frag_payload = udp(kSip);
    append(frag_hdr, frag_payload);
    write_pcap(path, DLT_LINUX_SLL, {sll(0x86DD, ipv6(44, frag_hdr)), sll(0x0800, ipv4(17, udp(kSip)))});
    const CliRun r = run("'" + path + "'");
    EXPECT_EQ(r.exit_code, 0);
    ASSERT_EQ(r.lines.size(), 2u);
    EXPECT_EQ(r.lines[0]["reason"], "fragment");
    EXPECT_EQ(r.lines[1]["call_id"], "pcap-call@192.0.2.1");
}

TEST_F(CliParse, ExitCodes) {
    EXPECT_EQ(run("").exit_code, 2);
    EXPECT_EQ(run("--bogus x").exit_code, 2);
    const CliRun help = run("--help", false);
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.output.find("usage: siplbctl parse [--config FILE] FILE..."), std::string::npos);
    const CliRun missing =
        run("'" + dir_.path() + "/missing.sip' '" + std::string(SIPLB_SIP_TEST_DATA) + "/keepalive_crlf.sip'");
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_EQ(missing.lines.size(), 1u);  // the readable file is still reported
    // A truncated capture is an unreadable file.
    const std::string path = dir_.path() + "/cut.pcap";
    write_pcap(path, DLT_EN10MB, {ether(0x0800, ipv4(17, udp(kSip)))});
    fs::resize_file(path, fs::file_size(path) - 10);
    EXPECT_EQ(run("'" + path + "'").exit_code, 1);
}
