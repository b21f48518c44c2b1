#include "siplb/net/arp.h"

#include <cstring>

#include "siplb/net/checksum.h"
#include "siplb/net/packet.h"

namespace siplb::net {

std::optional<ArpMessage> parse_arp(const uint8_t* arp, size_t len) noexcept {
    if (len < kArpLen) return std::nullopt;
    if (load_be16(arp) != 1 || load_be16(arp + 2) != kEtherTypeIpv4 || arp[4] != 6 || arp[5] != 4) return std::nullopt;
    ArpMessage m;
    m.op = load_be16(arp + 6);
    if (m.op != kArpRequest && m.op != kArpReply) return std::nullopt;
    std::memcpy(m.sender_mac.bytes.data(), arp + 8, 6);
    std::memcpy(&m.sender_ip_be, arp + 14, 4);
    std::memcpy(m.target_mac.bytes.data(), arp + 18, 6);
    std::memcpy(&m.target_ip_be, arp + 24, 4);
    return m;
}

void write_arp(uint8_t* arp, const ArpMessage& m) noexcept {
    store_be16(arp, 1);
    store_be16(arp + 2, kEtherTypeIpv4);
    arp[4] = 6;
    arp[5] = 4;
    store_be16(arp + 6, m.op);
    std::memcpy(arp + 8, m.sender_mac.bytes.data(), 6);
    std::memcpy(arp + 14, &m.sender_ip_be, 4);
    std::memcpy(arp + 18, m.target_mac.bytes.data(), 6);
    std::memcpy(arp + 24, &m.target_ip_be, 4);
}

}  // namespace siplb::net
