// fuzz-sources: src/control/protocol.cpp src/common/endpoint.cpp
// fuzz-pkg: nlohmann_json
//
// The control socket's request parser on arbitrary lines: never crashes,
// accepts nothing over the line limit, and every accepted request survives
// an encode -> parse round trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "siplb/control/protocol.h"

using namespace siplb;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view line(reinterpret_cast<const char*>(data), size);
    auto r = control::parse_request(line);
    if (!r) {
        if (r.message().empty()) abort();
        return 0;
    }
    std::string enc = control::encode_request(r.value());
    if (enc.empty() || enc.back() != '\n') abort();
    enc.pop_back();
    auto again = control::parse_request(enc);
    if (!again) abort();
    const auto& a = r.value();
    const auto& b = again.value();
    if (a.cmd != b.cmd || a.pool != b.pool || a.backend != b.backend || a.call_id != b.call_id) abort();
    return 0;
}
