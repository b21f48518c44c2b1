// CaptureService over a fake dataplane: one capture at a time, frames
// handed out base64 in order, lost frames reported at the stop, and a
// capture whose client vanished stopped after kCaptureIdleS.
#include <gtest/gtest.h>

#include <deque>

#include "siplb/control/capture_service.h"

using namespace siplb;
using namespace siplb::control;
using json = nlohmann::json;

namespace {

struct FakeDataplane {
    bool running = false;
    dataplane::CaptureFilter filter;
    std::deque<dataplane::CaptureSlot> slots;
    uint64_t lost = 0;

    CaptureSource source() {
        return {[this](const dataplane::CaptureFilter& f, uint32_t) -> Status {
                    if (running) return Status::fail("a capture is already running");
                    running = true;
                    filter = f;
                    return ok_status();
                },
                [this](const std::function<void(const dataplane::CaptureSlot&)>& fn, size_t max) {
                    size_t n = 0;
                    while (!slots.empty() && n < max) {
                        fn(slots.front());
                        slots.pop_front();
                        ++n;
                    }
                    return n;
                },
                [this]() -> uint64_t {
                    running = false;
                    return lost;
                }};
    }
};

Request req(CommandKind k, uint64_t id = 0) {
    Request r;
    r.cmd = k;
    r.capture_id = id;
    return r;
}

TEST(CaptureService, StartReadStop) {
    FakeDataplane dp;
    CaptureService svc(dp.source(), 64);
    const auto t0 = CaptureService::Clock::now();
    Request start = req(CommandKind::capture_start);
    start.call_id = "c@pbx";
    start.client = IpAddress::parse("192.0.2.11");
    auto s = svc.execute(start, Actor{"uid=0 pid=1"}, t0);
    ASSERT_TRUE(s.ok()) << s.message();
    const uint64_t id = (*s)["id"];
    EXPECT_EQ(dp.filter.call_id, "c@pbx");
    EXPECT_EQ(dp.filter.client, IpAddress::parse("192.0.2.11"));
    EXPECT_FALSE(svc.execute(req(CommandKind::capture_start), Actor{"other"}, t0).ok()) << "one at a time";

    dp.slots.resize(2);
    dp.slots[0].ts_ns = 5;
    dp.slots[0].orig_len = dp.slots[0].cap_len = 3;
    std::memcpy(dp.slots[0].data, "abc", 3);
    dp.slots[1].sent = 1;
    dp.slots[1].orig_len = dp.slots[1].cap_len = 1;
    dp.slots[1].data[0] = 'z';
    auto r = svc.execute(req(CommandKind::capture_read, id), Actor{"x"}, t0);
    ASSERT_TRUE(r.ok()) << r.message();
    const json& frames = (*r)["frames"];
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0]["data"], "YWJj");
    EXPECT_EQ(frames[0]["ts_ns"], 5);
    EXPECT_EQ(frames[0]["sent"], false);
    EXPECT_EQ(frames[1]["data"], "eg==");
    EXPECT_EQ(frames[1]["sent"], true);
    EXPECT_FALSE(svc.execute(req(CommandKind::capture_read, id + 1), Actor{"x"}, t0).ok()) << "wrong id";

    dp.lost = 3;
    auto st = svc.execute(req(CommandKind::capture_stop, id), Actor{"x"}, t0);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ((*st)["lost"], 3);
    EXPECT_FALSE(dp.running);
    EXPECT_FALSE(svc.running());
    EXPECT_FALSE(svc.execute(req(CommandKind::capture_read, id), Actor{"x"}, t0).ok());
}

TEST(CaptureService, AbandonedCaptureIsStopped) {
    FakeDataplane dp;
    CaptureService svc(dp.source(), 64);
    const auto t0 = CaptureService::Clock::now();
    auto s = svc.execute(req(CommandKind::capture_start), Actor{"x"}, t0);
    ASSERT_TRUE(s.ok());
    svc.expire(t0 + std::chrono::seconds(kCaptureIdleS - 1));
    EXPECT_TRUE(dp.running);
    svc.expire(t0 + std::chrono::seconds(kCaptureIdleS + 1));
    EXPECT_FALSE(dp.running);
    EXPECT_FALSE(svc.running());
}

TEST(CaptureService, DaemonWithoutDataplaneSaysSo) {
    CaptureService svc(CaptureSource{}, 64);
    auto s = svc.execute(req(CommandKind::capture_start), Actor{"x"}, CaptureService::Clock::now());
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("no dataplane"), std::string::npos);
}

}  // namespace
