// Replays a capture of a realistic SIP call mix through the dataplane with
// net_pcap (rx_pcap -> worker -> tx_pcap) and checks the output capture with
// libpcap: every request of a Call-ID went to one backend (the one the Maglev
// table names), replies carry the VIP as source, payloads are unchanged and
// every checksum is valid by an independent computation.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "support/frame_builder.h"
#include "support/message_mix.h"
#include "dataplane_test_util.h"
#include "siplb/balance/hash.h"
#include "siplb/dataplane/dataplane.h"
#include "siplb/net/packet.h"
#include "siplb/sip/parser.h"

using namespace siplb;
using namespace siplb::test;

namespace {

const MacAddress kWireMac{{0x02, 0, 0, 0, 0x01, 0x01}};
const MacAddress kGatewayMac{{0x02, 0, 0, 0, 0x00, 0xfe}};
const Endpoint kVip = *Endpoint::parse("198.51.100.10:5060");
const std::vector<std::string> kBackends = {"203.0.113.11:5060", "203.0.113.12:5060", "203.0.113.13:5062",
                                            "203.0.113.14:5060"};

MacAddress backend_mac(size_t i) { return MacAddress{{0x02, 0, 0, 0, 0x0b, static_cast<uint8_t>(0x11 + i)}}; }

void write_pcap(const std::string& path, const std::vector<std::vector<uint8_t>>& frames) {
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
    ASSERT_NE(dead, nullptr);
    pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
    ASSERT_NE(d, nullptr) << pcap_geterr(dead);
    uint32_t usec = 0;
    for (const auto& f : frames) {
        pcap_pkthdr h{};
        h.ts.tv_sec = 1700000000;
        h.ts.tv_usec = usec++;
        h.caplen = h.len = static_cast<uint32_t>(f.size());
        pcap_dump(reinterpret_cast<u_char*>(d), &h, f.data());
    }
    pcap_dump_close(d);
    pcap_close(dead);
}

std::vector<std::vector<uint8_t>> read_pcap(const std::string& path) {
    std::vector<std::vector<uint8_t>> frames;
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(path.c_str(), err);
    EXPECT_NE(p, nullptr) << err;
    if (!p) return frames;
    pcap_pkthdr* h;
    const u_char* data;
    while (pcap_next_ex(p, &h, &data) == 1) frames.emplace_back(data, data + h->caplen);
    pcap_close(p);
    return frames;
}

TEST(DataplanePcap, ReplayedCallMixIsBalancedPerCallId) {
    auto dir = std::filesystem::temp_directory_path() / ("siplb_pcap_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    struct Cleanup {
        std::filesystem::path d;
        ~Cleanup() { std::filesystem::remove_all(d); }
    } cleanup{dir};
    const std::string in_path = (dir / "in.pcap").string(), out_path = (dir / "out.pcap").string();

    auto snapshot = make_snapshot({{"lund", {"198.51.100.10:5060"}, kBackends}});
    const balance::PoolSnapshot& pool = *snapshot->pools()[0];

    // Requests come from clients behind the gateway to the VIP; responses
    // come from the backend the table picks for the call, toward the client.
    auto mix = generate_message_mix(2000, 42);
    std::vector<std::vector<uint8_t>> frames;
    std::vector<bool> is_request;
    std::map<std::string, Endpoint> client_of_call;
    for (const auto& msg : mix) {
        sip::SipMessage m;
        sip::SipParser::parse(reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), m);
        ASSERT_TRUE(m.ok()) << msg;
        std::string call_id(m.call_id.view(reinterpret_cast<const uint8_t*>(msg.data())));
        auto [it, fresh] = client_of_call.try_emplace(call_id);
        if (fresh) {
            size_t n = client_of_call.size();
            it->second =
                *Endpoint::parse("192.0.2." + std::to_string(1 + n % 250) + ":" + std::to_string(5060 + n % 7));
        }
        const Endpoint& client = it->second;
        if (m.kind == sip::Kind::request) {
            frames.push_back(
                build_frame({.src_mac = kGatewayMac, .dst_mac = kWireMac, .src = client, .dst = kVip, .payload = msg})
                    .bytes);
            is_request.push_back(true);
        } else {
            uint16_t idx = pool.table().lookup(balance::hash_call_id(call_id, pool.seed()));
            frames.push_back(build_frame({.src_mac = backend_mac(idx),
                                          .dst_mac = kWireMac,
                                          .src = pool.backends()[idx].address,
                                          .dst = client,
                                          .payload = msg})
                                 .bytes);
            is_request.push_back(false);
        }
    }
    write_pcap(in_path, frames);

    config::Config cfg;
    auto& dc = cfg.dataplane;
    dc.eal = test_eal_args("siplb_dp_pcap");
    dc.workers = 1;
    dc.mbufs = 4096;
    dc.mbuf_cache = 32;
    dc.rx_ring = 512;
    dc.tx_ring = 512;
    dc.announce = false;  // the output capture is compared frame by frame
    config::PortConfig wire;
    wire.name = "wire";
    wire.device = "net_pcap_replay";
    wire.vdev_args = "rx_pcap=" + in_path + ",tx_pcap=" + out_path;
    wire.addresses = {*Prefix::parse("198.51.100.1/24", true), *Prefix::parse("203.0.113.1/24", true)};
    wire.mac = kWireMac;
    dc.ports = {wire};
    dc.routes = {{*Prefix::parse("192.0.2.0/24"), *IpAddress::parse("198.51.100.254"), ""}};
    dc.neighbors = {{*IpAddress::parse("198.51.100.254"), kGatewayMac, ""}};
    for (size_t i = 0; i < pool.backends().size(); ++i)
        dc.neighbors.push_back({pool.backends()[i].address.ip, backend_mac(i), ""});

    balance::SnapshotPublisher publisher(std::move(snapshot));
    auto affinity = balance::AffinityTable::create(1 << 14);
    ASSERT_TRUE(affinity);
    auto dp = dataplane::Dataplane::create(cfg.dataplane, publisher, *affinity.value());
    ASSERT_TRUE(dp) << dp.message();
    ASSERT_TRUE(dp.value()->start());
    // Both counts: the worker counts a burst's transmissions when it
    // flushes them, after its receptions, so a read in between saw the
    // last burst received and not yet sent (on a busy host).
    ASSERT_TRUE(wait_until(
        [&] {
            const auto s = dp.value()->stats();
            return s.total("traffic", "rx_packets") >= frames.size() &&
                   s.total("traffic", "tx_packets") >= frames.size();
        },
        std::chrono::seconds(20)));
    auto stats = dp.value()->stats();
    dp.value()->stop();  // closes the port: the output capture is complete
    EXPECT_EQ(stats.total("traffic", "rx_packets"), frames.size());
    EXPECT_EQ(stats.dropped(), 0u);
    EXPECT_EQ(stats.total("traffic", "tx_packets"), frames.size());

    auto out = read_pcap(out_path);
    ASSERT_EQ(out.size(), frames.size());
    std::map<std::string, std::set<Endpoint>> backends_of_call;
    std::set<Endpoint> used;
    size_t replies = 0;
    for (size_t i = 0; i < out.size(); ++i) {
        net::PacketView v, vin;
        ASSERT_EQ(net::parse_frame(out[i].data(), out[i].size(), v), net::ParseStatus::udp) << i;
        ASSERT_EQ(net::parse_frame(frames[i].data(), frames[i].size(), vin), net::ParseStatus::udp);
        EXPECT_EQ(get16(out[i], v.l3_offset + 10), naive_ipv4_checksum(out[i], v.l3_offset)) << i;
        EXPECT_EQ(get16(out[i], v.l4_offset + 6), naive_udp_checksum(out[i], v.l3_offset, v.l4_offset, false)) << i;
        EXPECT_EQ(out[i][v.l3_offset + 8], 63) << i;
        ASSERT_TRUE(std::equal(out[i].begin() + v.payload_offset(), out[i].end(),
                               frames[i].begin() + vin.payload_offset(), frames[i].end()))
            << "payload changed in frame " << i;
        sip::SipMessage m;
        sip::SipParser::parse(out[i].data() + v.payload_offset(), v.payload_len(), m);
        ASSERT_TRUE(m.ok());
        std::string call_id(m.call_id.view(out[i].data() + v.payload_offset()));
        const Endpoint src = net::source_endpoint(out[i].data(), v), dst = net::destination_endpoint(out[i].data(), v);
        if (is_request[i]) {
            EXPECT_EQ(src, client_of_call[call_id]) << "client address must be kept";
            backends_of_call[call_id].insert(dst);
            used.insert(dst);
            EXPECT_TRUE(std::equal(out[i].begin() + 6, out[i].begin() + 12, kWireMac.bytes.begin()));
        } else {
            ++replies;
            EXPECT_EQ(src, kVip) << "replies must come from the VIP";
            EXPECT_EQ(dst, client_of_call[call_id]);
            EXPECT_TRUE(std::equal(out[i].begin(), out[i].begin() + 6, kGatewayMac.bytes.begin()));
        }
    }
    EXPECT_GT(replies, 100u);
    EXPECT_GT(backends_of_call.size(), 100u);
    for (const auto& [call_id, b] : backends_of_call) EXPECT_EQ(b.size(), 1u) << call_id;
    EXPECT_EQ(used.size(), kBackends.size());
}

}  // namespace
