// Egress fragmentation: an IP datagram larger than the egress port's MTU
// leaves as fragments. Two sources: datagrams siplb reassembled itself
// (reassembler.cpp), and whole datagrams that arrive in one frame above the
// egress MTU: jumbo ingress links, or net_af_packet ports, whose kernel
// socket joins a fanout group with PACKET_FANOUT_FLAG_DEFRAG and so hands
// siplb IPv4 fragments already reassembled. The Forwarder decides (IPv4
// with DF is answered "fragmentation needed" instead, see Egress); this
// stage only cuts.
//
// rte_ipv{4,6}_fragment_packet build each piece from a header mbuf of the
// worker's pool and indirect mbufs referencing the original data, so the
// payload is not copied again. IPv4 pieces of a forwarded datagram keep its
// identification (as a router's do). Identifications siplb owns are set
// here, random per datagram (unpredictable off-path, RFC 7739; unique in
// the receiver's reassembly window, RFC 6864 / RFC 8200 4.5): the outer
// IPv4 header of an ipip tunnel (written with 0), and every IPv6 fragment
// header, which the IPv6 fragmenter also fills with 0. With 0 everywhere a
// backend could merge pieces of two datagrams.
#include "fragmenter.h"

#include <rte_ip_frag.h>
#include <rte_mbuf.h>
#include <rte_random.h>

#include <cstring>

#include "siplb/net/checksum.h"
#include "siplb/net/packet.h"

namespace siplb::dataplane {

namespace {
// 64 KiB datagram at a 1280-byte IPv6 MTU is 52 pieces.
constexpr uint16_t kMaxFragmentsOut = 64;
}  // namespace

void Fragmenter::send(rte_mbuf* frame, uint16_t port_index) noexcept {
    const uint16_t mtu = ctx_.ports[port_index].mtu;
    const uint8_t* f = rte_pktmbuf_mtod(frame, const uint8_t*);
    const uint16_t l2_len = net::load_be16(f + 12) == net::kEtherTypeVlan ? 18 : 14;
    uint8_t l2[18];
    std::memcpy(l2, f, l2_len);
    const bool v4 = (f[l2_len] >> 4) == 4;
    if (v4) {
        uint8_t* ip = rte_pktmbuf_mtod_offset(frame, uint8_t*, l2_len);
        if (ip[9] == 4 || ip[9] == 41) {  // our tunnel header: the only IP-in-IP siplb sends
            uint16_t id = 0;
            while (id == 0) id = static_cast<uint16_t>(rte_rand());
            net::store_be16(ip + 4, id);  // its header checksum is recomputed per piece below
        }
    }
    rte_pktmbuf_adj(frame, l2_len);  // the fragmenters want the datagram at the data start
    rte_mbuf* pieces[kMaxFragmentsOut];
    int32_t n = -1;
    if (indirect_pool_) {
        n = v4 ? rte_ipv4_fragment_packet(frame, pieces, kMaxFragmentsOut, mtu, pool_, indirect_pool_)
               : rte_ipv6_fragment_packet(frame, pieces, kMaxFragmentsOut, mtu, pool_, indirect_pool_);
    }
    rte_pktmbuf_free(frame);  // the pieces hold references to its data
    if (n <= 0) {
        bump(c_.frag_failed);
        return;
    }
    uint32_t v6_id = 0;
    while (!v4 && v6_id == 0) v6_id = static_cast<uint32_t>(rte_rand());
    for (int32_t i = 0; i < n; ++i) {
        rte_mbuf* piece = pieces[i];
        auto* hdr = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(piece, l2_len));
        if (!hdr) {
            bump(c_.frag_failed);
            rte_pktmbuf_free_bulk(pieces + i, static_cast<unsigned>(n - i));
            return;
        }
        std::memcpy(hdr, l2, l2_len);
        uint8_t* ip = hdr + l2_len;
        // The fragmenter leaves the IPv4 header checksum to the caller (or an offload).
        if (v4) {
            net::store_be16(ip + 10, net::ipv4_header_checksum(ip, (ip[0] & 0x0F) * 4u));
        } else {
            uint8_t* id = ip + net::kIpv6HeaderLen + 4;  // fragment header: next, reserved, offset, id
            net::store_be16(id, static_cast<uint16_t>(v6_id >> 16));
            net::store_be16(id + 2, static_cast<uint16_t>(v6_id));
        }
        tx_.enqueue(port_index, piece);
        bump(c_.frag_sent);
    }
}

}  // namespace siplb::dataplane
