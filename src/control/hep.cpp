#include "siplb/control/hep.h"

namespace siplb::control {

namespace {

void put16(std::vector<uint8_t>& out, uint16_t v) {
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v));
}

void chunk(std::vector<uint8_t>& out, HepChunk type, const uint8_t* data, size_t len) {
    put16(out, 0);  // generic vendor
    put16(out, static_cast<uint16_t>(type));
    put16(out, static_cast<uint16_t>(6 + len));
    out.insert(out.end(), data, data + len);
}

void chunk8(std::vector<uint8_t>& out, HepChunk type, uint8_t v) { chunk(out, type, &v, 1); }

void chunk16(std::vector<uint8_t>& out, HepChunk type, uint16_t v) {
    const uint8_t b[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    chunk(out, type, b, 2);
}

void chunk32(std::vector<uint8_t>& out, HepChunk type, uint32_t v) {
    const uint8_t b[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8),
                          static_cast<uint8_t>(v)};
    chunk(out, type, b, 4);
}

}  // namespace

void encode_hep3(const HepMessage& m, std::vector<uint8_t>& out) {
    out.assign(6, 0);  // "HEP3" and the total length, patched below
    out[0] = 'H';
    out[1] = 'E';
    out[2] = 'P';
    out[3] = '3';
    const bool v6 = m.src.ip.is_v6();
    chunk8(out, HepChunk::ip_family, v6 ? 10 : 2);
    chunk8(out, HepChunk::ip_protocol, 17);
    chunk(out, v6 ? HepChunk::ipv6_src : HepChunk::ipv4_src, m.src.ip.bytes.data(), v6 ? 16 : 4);
    chunk(out, v6 ? HepChunk::ipv6_dst : HepChunk::ipv4_dst, m.dst.ip.bytes.data(), v6 ? 16 : 4);
    chunk16(out, HepChunk::src_port, m.src.port);
    chunk16(out, HepChunk::dst_port, m.dst.port);
    chunk32(out, HepChunk::time_sec, static_cast<uint32_t>(m.ts_ns / 1000000000ull));
    chunk32(out, HepChunk::time_usec, static_cast<uint32_t>(m.ts_ns % 1000000000ull / 1000));
    chunk8(out, HepChunk::protocol_type, 1);
    chunk32(out, HepChunk::capture_agent, m.agent_id);
    chunk(out, HepChunk::payload, reinterpret_cast<const uint8_t*>(m.payload.data()), m.payload.size());
    if (!m.call_id.empty())
        chunk(out, HepChunk::correlation_id, reinterpret_cast<const uint8_t*>(m.call_id.data()), m.call_id.size());
    out[4] = static_cast<uint8_t>(out.size() >> 8);
    out[5] = static_cast<uint8_t>(out.size());
}

}  // namespace siplb::control
