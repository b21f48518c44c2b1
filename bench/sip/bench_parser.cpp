// SipParser against a naive parser over the same generated mix, in the same
// run: the figure that matters is the ratio of items_per_second.
//
//   build-*/bench/sip/bench_sip_parser --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <cctype>
#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/sip/parser.h"
#include "support/message_mix.h"

namespace {

using siplb::sip::ParseDepth;
using siplb::sip::SipMessage;
using siplb::sip::SipParser;

// Working sets: 512 messages (~290 KB) stay in L2, as datagrams just
// received by a worker do; 8192 (~4.6 MB) spill to L3/memory, so memory
// stalls weigh on both parsers alike.
const std::vector<std::string>& mix(size_t count) {
    static const std::vector<std::string> small = siplb::test::generate_message_mix(512, 20261125);
    static const std::vector<std::string> large = siplb::test::generate_message_mix(8192, 20261125);
    return count <= small.size() ? small : large;
}

size_t total_bytes(const std::vector<std::string>& msgs) {
    size_t b = 0;
    for (const auto& s : msgs) b += s.size();
    return b;
}

// The baseline: what a straightforward implementation does. Split into
// lines, trim, split at the colon, compare names case-insensitively against
// the long and compact forms, extract the same fields SipParser does (with
// less care: no folding, no quoted strings, no duplicate Call-ID check).
struct NaiveResult {
    std::string_view call_id, via, cseq, from, from_tag, to, to_tag, user_agent, max_forwards;
    std::string_view method, cseq_method;
    uint32_t cseq_number = 0, content_length = 0;
    int status = 0;
};

std::string_view tag_of(std::string_view value) {
    size_t t = value.find(";tag=");
    if (t == std::string_view::npos) return {};
    value.remove_prefix(t + 5);
    return value.substr(0, value.find_first_of(";, \t"));
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool naive_parse(std::string_view msg, NaiveResult& r) {
    r = NaiveResult{};
    size_t pos = msg.find('\n');
    if (pos == std::string_view::npos) return false;
    std::string_view start = trim(msg.substr(0, pos));
    if (start.substr(0, 8) == "SIP/2.0 ")
        r.status = std::atoi(std::string(start.substr(8, 3)).c_str());
    else
        r.method = start.substr(0, start.find(' '));
    ++pos;
    while (pos < msg.size()) {
        size_t end = msg.find('\n', pos);
        if (end == std::string_view::npos) return false;
        std::string_view line = trim(msg.substr(pos, end - pos));
        pos = end + 1;
        if (line.empty()) return !r.call_id.empty();
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view name = trim(line.substr(0, colon));
        std::string_view value = trim(line.substr(colon + 1));
        if (iequals(name, "call-id") || iequals(name, "i"))
            r.call_id = value;
        else if ((iequals(name, "via") || iequals(name, "v")) && r.via.empty())
            r.via = value.substr(0, value.find(','));
        else if (iequals(name, "cseq")) {
            r.cseq = value;
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), r.cseq_number);
            r.cseq_method = trim(value.substr(size_t(end - value.data())));
        } else if (iequals(name, "from") || iequals(name, "f")) {
            r.from = value;
            r.from_tag = tag_of(value);
        } else if (iequals(name, "to") || iequals(name, "t")) {
            r.to = value;
            r.to_tag = tag_of(value);
        } else if (iequals(name, "user-agent"))
            r.user_agent = value;
        else if (iequals(name, "max-forwards"))
            r.max_forwards = value;
        else if (iequals(name, "content-length") || iequals(name, "l"))
            std::from_chars(value.data(), value.data() + value.size(), r.content_length);
    }
    return false;
}

template <ParseDepth kDepth>
void BM_SipParser(benchmark::State& state) {
    const auto& msgs = mix(size_t(state.range(0)));
    SipMessage m;
    size_t i = 0, ok = 0;
    for (auto _ : state) {
        const std::string& s = msgs[i];
        SipParser::parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), m, kDepth);
        ok += m.ok();
        benchmark::DoNotOptimize(m);
        if (++i == msgs.size()) i = 0;
    }
    if (ok != size_t(state.iterations())) state.SkipWithError("a generated message did not parse");
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(int64_t(double(state.iterations()) * double(total_bytes(msgs)) / double(msgs.size())));
}
// Full: every SipMessage field. Balancer: what the dataplane asks for (no
// From/To tags, no top via-parm; same verdicts).
BENCHMARK_TEMPLATE(BM_SipParser, ParseDepth::full)->Name("BM_SipParser")->Arg(512)->Arg(8192);
BENCHMARK_TEMPLATE(BM_SipParser, ParseDepth::balancer)->Name("BM_SipParserBalancer")->Arg(512)->Arg(8192);

void BM_NaiveBaseline(benchmark::State& state) {
    const auto& msgs = mix(size_t(state.range(0)));
    NaiveResult r;
    size_t i = 0, ok = 0;
    for (auto _ : state) {
        ok += naive_parse(msgs[i], r);
        benchmark::DoNotOptimize(r);
        if (++i == msgs.size()) i = 0;
    }
    if (ok != size_t(state.iterations())) state.SkipWithError("a generated message did not parse");
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(int64_t(double(state.iterations()) * double(total_bytes(msgs)) / double(msgs.size())));
}
BENCHMARK(BM_NaiveBaseline)->Arg(512)->Arg(8192);

}  // namespace

BENCHMARK_MAIN();
