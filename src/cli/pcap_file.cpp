#include "pcap_file.h"

namespace siplb::cli {

namespace {

// pcap is written in the writer's byte order; readers detect it from the magic.
void put32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void put16(std::string& out, uint16_t v) { out.append(reinterpret_cast<const char*>(&v), 2); }

}  // namespace

std::string pcap_global_header(uint32_t snaplen) {
    std::string h;
    put32(h, kPcapMagicNs);
    put16(h, 2);  // version 2.4
    put16(h, 4);
    put32(h, 0);  // thiszone
    put32(h, 0);  // sigfigs
    put32(h, snaplen);
    put32(h, kLinkTypeEthernet);
    return h;
}

std::string pcap_record(uint64_t ts_ns, uint32_t orig_len, std::string_view data) {
    std::string r;
    r.reserve(16 + data.size());
    put32(r, static_cast<uint32_t>(ts_ns / 1000000000ull));
    put32(r, static_cast<uint32_t>(ts_ns % 1000000000ull));
    put32(r, static_cast<uint32_t>(data.size()));
    put32(r, orig_len);
    r.append(data);
    return r;
}

}  // namespace siplb::cli
