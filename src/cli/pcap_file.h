// The pcap file format siplbctl capture writes (tcpdump's, nanosecond
// timestamps, Ethernet link type), which tshark, Wireshark and sngrep -I read,
// also from a pipe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace siplb::cli {

inline constexpr uint32_t kPcapMagicNs = 0xa1b23c4d;  // nanosecond resolution
inline constexpr uint32_t kLinkTypeEthernet = 1;

// The 24-byte file header.
std::string pcap_global_header(uint32_t snaplen);
// One record: 16-byte header (seconds, nanoseconds, captured and original
// length) and the bytes.
std::string pcap_record(uint64_t ts_ns, uint32_t orig_len, std::string_view data);

}  // namespace siplb::cli
