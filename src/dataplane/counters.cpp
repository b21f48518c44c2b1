#include "counters.h"

#include <algorithm>

namespace siplb::dataplane {

const char* drop_reason_name(DropReason r) noexcept {
    switch (r) {
#define SIPLB_DROP_NAME(reason, name, help) \
    case DropReason::reason: return name;
        SIPLB_DROP_REASONS(SIPLB_DROP_NAME)
#undef SIPLB_DROP_NAME
        case DropReason::count_: break;
    }
    return "unknown";
}

namespace {

template <CounterKind kind>
void fold(uint64_t& into, const std::atomic<uint64_t>& c) noexcept {
    if constexpr (kind != CounterKind::gauge)
        into += read(c);
    else
        into = std::max(into, read(c));
}

}  // namespace

#define SIPLB_COUNTER_FOLD(member, group, name, kind, help) fold<CounterKind::kind>(out[i++], c.member);

void add_worker_counters(const WorkerCounters& c, std::span<uint64_t> out) noexcept {
    size_t i = 0;
    SIPLB_WORKER_COUNTERS(SIPLB_COUNTER_FOLD)
    for (const auto& d : c.drops) out[i++] += read(d);
}

void add_port_counters(const PortCounters& c, std::span<uint64_t> out) noexcept {
    size_t i = 0;
    SIPLB_PORT_COUNTERS(SIPLB_COUNTER_FOLD)
}

void add_pool_counters(const PoolCounters& c, std::span<uint64_t> out) noexcept {
    size_t i = 0;
    SIPLB_POOL_COUNTERS(SIPLB_COUNTER_FOLD)
}

void add_backend_counters(const BackendCounters& c, std::span<uint64_t> out) noexcept {
    size_t i = 0;
    SIPLB_BACKEND_COUNTERS(SIPLB_COUNTER_FOLD)
}

void add_rule_counters(const RuleCounters& c, std::span<uint64_t> out) noexcept {
    size_t i = 0;
    SIPLB_RULE_COUNTERS(SIPLB_COUNTER_FOLD)
}

#undef SIPLB_COUNTER_FOLD

}  // namespace siplb::dataplane
