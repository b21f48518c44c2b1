// The tap (src/dataplane/tap.h) without EAL: the slot ring, the capture and
// mirror selections, and the Forwarder's stages asking the tap about real
// frames (byte buffers), with the copies as received and as sent checked
// byte for byte.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "../../src/dataplane/forwarder.h"
#include "../../src/dataplane/slot_ring.h"
#include "../../src/dataplane/tap.h"
#include "dataplane_test_util.h"
#include "two_port_context.h"
#include "support/frame_builder.h"

using namespace siplb;
using namespace siplb::test;
using dataplane::Action;
using dataplane::CaptureSlot;
using dataplane::MirrorSlot;

namespace {

const MacAddress kExtMac{{0x02, 0, 0, 0, 0x01, 0x01}};
const MacAddress kIntMac{{0x02, 0, 0, 0, 0x02, 0x02}};
const MacAddress kGatewayMac{{0x02, 0, 0, 0, 0x00, 0xfe}};
const MacAddress kBackendMac{{0x02, 0, 0, 0, 0x0b, 0x0a}};
const Endpoint kClient = *Endpoint::parse("192.0.2.10:5062");
const Endpoint kVip = *Endpoint::parse("198.51.100.10:5060");
const Endpoint kBackend = *Endpoint::parse("203.0.113.11:5060");

std::string invite(const std::string& call_id) {
    return "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" + call_id +
           "\r\nFrom: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>\r\nCall-ID: " + call_id +
           "\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
}

std::string ringing(const std::string& call_id) {
    return "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" + call_id +
           "\r\nFrom: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>;tag=2\r\nCall-ID: " + call_id +
           "\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
}

class TapTest : public ::testing::Test {
protected:
    void SetUp() override {
        snap_ = make_snapshot({{"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060"}}});
        affinity_ = std::move(balance::AffinityTable::create(1024).value());
        set_two_ports(ctx_, kExtMac, kIntMac);
        ctx_.neighbors = &neighbors_;
        ctx_.affinity = affinity_.get();
        ASSERT_EQ(neighbors_.learn(*IpAddress::parse("198.51.100.254"), kGatewayMac, 0, true),
                  net::NeighborTable::Learn::inserted);
        ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMac, 1, true), net::NeighborTable::Learn::inserted);
        forwarder_ = std::make_unique<dataplane::Forwarder>(ctx_, *counters_);
        tap_.attach_capture(&published_);
    }

    void start_capture(const dataplane::CaptureFilter& f, uint32_t slots = 16) {
        session_ = std::make_unique<dataplane::CaptureSession>();
        session_->filter = f;
        session_->rings.push_back(std::make_unique<dataplane::SlotRing<CaptureSlot>>(slots));
        published_.store(session_.get());
    }

    // What the worker does with one frame: before(), process(), after() when tapped.
    Action run(const FrameSpec& spec, uint16_t in_port, uint64_t now_ms = 5000) {
        received_ = build_frame(spec).bytes;
        buf_.assign(64, 0);
        buf_.insert(buf_.end(), received_.begin(), received_.end());
        buf_.resize(buf_.size() + 64, 0);
        dataplane::Tap* tap = tap_.begin_burst();
        forwarder_->set_tap(tap);
        if (tap) tap->before(buf_.data() + 64, static_cast<uint16_t>(received_.size()));
        const Action a = forwarder_->process(buf_.data() + 64, static_cast<uint16_t>(received_.size()), 64, 64, in_port,
                                             snap_.get(), static_cast<uint32_t>(now_ms / 1000), now_ms);
        sent_.clear();
        if (a.kind == Action::Kind::transmit) {
            sent_.assign(buf_.begin() + 64 + a.shift, buf_.begin() + 64 + a.shift + a.len);
            if (a.tapped()) tap_.after(a, buf_.data() + 64 + a.shift);
        }
        return a;
    }
    Action client_invite(const std::string& call_id, uint64_t now_ms = 5000) {
        payload_ = invite(call_id);
        return run({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip, .payload = payload_}, 0,
                   now_ms);
    }
    Action backend_ringing(const std::string& call_id) {
        payload_ = ringing(call_id);
        return run({.src_mac = kBackendMac, .dst_mac = kIntMac, .src = kBackend, .dst = kClient, .payload = payload_},
                   1);
    }
    std::vector<std::vector<uint8_t>> drain_capture(std::vector<bool>* sent = nullptr) {
        std::vector<std::vector<uint8_t>> frames;
        auto& ring = *session_->rings[0];
        while (const CaptureSlot* s = ring.front()) {
            frames.emplace_back(s->data, s->data + s->cap_len);
            EXPECT_EQ(s->orig_len, s->cap_len);
            if (sent) sent->push_back(s->sent != 0);
            ring.pop();
        }
        return frames;
    }

    std::unique_ptr<const balance::DataplaneSnapshot> snap_;
    std::unique_ptr<balance::AffinityTable> affinity_;
    net::NeighborTable neighbors_{64, 1000};
    dataplane::ForwardContext ctx_;
    std::unique_ptr<dataplane::WorkerCounters> counters_ = std::make_unique<dataplane::WorkerCounters>();
    std::unique_ptr<dataplane::Forwarder> forwarder_;
    dataplane::Tap tap_{0, *counters_};
    std::atomic<dataplane::CaptureSession*> published_{nullptr};
    std::unique_ptr<dataplane::CaptureSession> session_;
    std::string payload_;
    std::vector<uint8_t> buf_, received_, sent_;
};

TEST(SlotRing, BoundedFifoAcrossTheWrap) {
    dataplane::SlotRing<int> ring(3);  // rounded up to 4
    ASSERT_EQ(ring.capacity(), 4u);
    int next = 0, expect = 0;
    for (int round = 0; round < 5; ++round) {
        for (int i = 0; i < 3; ++i) {
            int* s = ring.reserve();
            ASSERT_NE(s, nullptr);
            *s = next++;
            ring.commit();
        }
        for (int i = 0; i < 3; ++i) {
            ASSERT_NE(ring.front(), nullptr);
            EXPECT_EQ(*ring.front(), expect++);
            ring.pop();
        }
        EXPECT_EQ(ring.front(), nullptr);
    }
    for (int i = 0; i < 4; ++i) {
        ASSERT_NE(ring.reserve(), nullptr);
        ring.commit();
    }
    EXPECT_EQ(ring.reserve(), nullptr) << "full: the producer gets no slot";
}

TEST_F(TapTest, NobodyLookingMeansNoTap) {
    EXPECT_EQ(tap_.begin_burst(), nullptr);
    const Action a = client_invite("quiet@pbx");
    ASSERT_EQ(a.kind, Action::Kind::transmit);
    EXPECT_FALSE(a.tapped());
}

TEST_F(TapTest, CallIdCaptureCopiesBothDirectionsAsReceivedAndAsSent) {
    start_capture({.call_id = "want@pbx"});
    Action a = client_invite("other@pbx");
    ASSERT_EQ(a.kind, Action::Kind::transmit);
    EXPECT_FALSE(a.tapped()) << "another call is not captured";
    EXPECT_TRUE(drain_capture().empty());

    a = client_invite("want@pbx");
    ASSERT_EQ(a.kind, Action::Kind::transmit);
    EXPECT_EQ(a.flags & Action::kTapped, Action::kCapture);
    std::vector<bool> sent;
    auto frames = drain_capture(&sent);
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0], received_) << "as received: client -> VIP, before the rewrite";
    EXPECT_EQ(frames[1], sent_) << "as sent: client -> backend";
    EXPECT_EQ(sent, (std::vector<bool>{false, true}));
    EXPECT_NE(frames[0], frames[1]);

    // The backend's answer is forwarded unparsed when nobody looks; the
    // capture's Call-ID has the stage parse it.
    a = backend_ringing("want@pbx");
    ASSERT_EQ(a.kind, Action::Kind::transmit);
    EXPECT_TRUE(a.flags & Action::kCapture);
    frames = drain_capture();
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0], received_);
    EXPECT_EQ(frames[1], sent_);
    a = backend_ringing("other@pbx");
    EXPECT_FALSE(a.tapped());
}

TEST_F(TapTest, FullRingLosesCopiesAndCountsThem) {
    start_capture({.pool = "lund"}, 2);
    ASSERT_TRUE(client_invite("a@pbx").tapped());
    ASSERT_TRUE(client_invite("b@pbx").tapped());  // no room: both copies lost
    EXPECT_EQ(dataplane::read(counters_->capture_ring_full), 2u);
    EXPECT_EQ(drain_capture().size(), 2u);
}

TEST_F(TapTest, FiltersOnPoolBackendAndClient) {
    dataplane::TapSubject s;
    const std::string lund = "lund";
    s.pool = &lund;
    s.client = kClient;
    s.backend = kBackend;
    EXPECT_TRUE(dataplane::capture_matches({}, s));
    EXPECT_TRUE(dataplane::capture_matches({.pool = "lund", .backend = kBackend, .client = kClient.ip}, s));
    EXPECT_FALSE(dataplane::capture_matches({.pool = "trunk"}, s));
    EXPECT_FALSE(dataplane::capture_matches({.backend = *Endpoint::parse("203.0.113.11:5080")}, s));
    EXPECT_FALSE(dataplane::capture_matches({.client = *IpAddress::parse("192.0.2.99")}, s));
    EXPECT_FALSE(dataplane::capture_matches({.call_id = "x"}, s)) << "no Call-ID (keepalive) never matches one";
}

TEST_F(TapTest, MirrorSendsClientAndBackendAddressesAndTheCallId) {
    dataplane::MirrorSpec spec;
    spec.hep = *Endpoint::parse("127.0.0.1:9060");
    spec.pools = {"lund"};
    spec.rate = 1;  // one per second: the second datagram at the same time is over it
    const auto sel = dataplane::MirrorSelect::from(spec, 1);
    dataplane::SlotRing<MirrorSlot> ring(8);
    tap_.attach_mirror(&sel, &ring);
    Action a = client_invite("m@pbx");
    ASSERT_EQ(a.kind, Action::Kind::transmit);
    EXPECT_EQ(a.flags & Action::kTapped, Action::kMirror);
    const MirrorSlot* s = ring.front();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->src, kClient);
    EXPECT_EQ(s->dst, kBackend);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(s->data), s->payload_len), payload_);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(s->data) + s->call_id_offset, s->call_id_len), "m@pbx");
    ring.pop();
    EXPECT_EQ(dataplane::read(counters_->mirror_queued), 1u);

    a = client_invite("m@pbx");
    EXPECT_FALSE(a.tapped());
    EXPECT_EQ(dataplane::read(counters_->mirror_rate_limited), 1u);
    a = client_invite("m@pbx", 7000);  // two seconds later: tokens again
    EXPECT_TRUE(a.flags & Action::kMirror);
}

TEST(MirrorSelect, PoolsAndWholeCallSampling) {
    dataplane::MirrorSpec spec;
    spec.pools = {"trunk"};
    auto sel = dataplane::MirrorSelect::from(spec, 1);
    dataplane::TapSubject s;
    const std::string lund = "lund", trunk = "trunk", cid = "call-1@pbx";
    s.call_id = reinterpret_cast<const uint8_t*>(cid.data());
    s.call_id_len = static_cast<uint16_t>(cid.size());
    s.pool = &lund;
    EXPECT_FALSE(dataplane::mirror_selects(sel, s));
    s.pool = &trunk;
    EXPECT_TRUE(dataplane::mirror_selects(sel, s));
    s.call_id = nullptr;
    s.call_id_len = 0;
    EXPECT_FALSE(dataplane::mirror_selects(sel, s)) << "keepalives are not mirrored";

    spec.pools.clear();
    spec.sample = 0.25;
    sel = dataplane::MirrorSelect::from(spec, 1);
    int selected = 0;
    std::vector<std::string> ids;
    for (int i = 0; i < 4000; ++i) {
        std::string id = "c";
        id += std::to_string(i);
        id += "@pbx";
        ids.push_back(std::move(id));
    }
    for (const auto& id : ids) {
        s.call_id = reinterpret_cast<const uint8_t*>(id.data());
        s.call_id_len = static_cast<uint16_t>(id.size());
        const bool first = dataplane::mirror_selects(sel, s);
        EXPECT_EQ(dataplane::mirror_selects(sel, s), first) << "a call is sampled whole";
        selected += first;
    }
    EXPECT_NEAR(selected / 4000.0, 0.25, 0.03);
}

}  // namespace
