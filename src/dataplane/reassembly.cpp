// IP fragments of datagrams to a VIP (large INVITEs): reassembled per worker
// with rte_ip_frag, balanced whole, and fragmented again when the result
// exceeds the egress port's MTU (fragment.cpp).
//
// The SIP parser and the rewriters need contiguous bytes, and a reassembled
// datagram is an mbuf chain. It is copied into a per-worker scratch buffer
// (64 KiB, the largest IP datagram, plus headroom for the L2 header), the
// Forwarder works on the copy exactly as on a single-segment frame, and the
// result is copied into a fresh chain of pool mbufs (or fragmented from
// it). Copies cost two passes over a few KB on a rare path; in exchange the
// hot path stays single-segment and untouched.
// rte_ip_frag_table_del_expired_entries() is experimental in DPDK 22.11;
// without it a flow whose last fragment never comes is only reclaimed when
// its bucket is reused.
#define ALLOW_EXPERIMENTAL_API 1
#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>

#include <cstring>
#include <vector>

#include "siplb/balance/hash.h"
#include "siplb/net/checksum.h"
#include "siplb/net/packet.h"
#include "worker.h"

namespace siplb::dataplane {

namespace {
constexpr uint32_t kScratchHeadroom = 128;
constexpr uint32_t kScratchSize = kScratchHeadroom + 65535 + 64;
}  // namespace

struct FragState {
    rte_ip_frag_tbl* table = nullptr;
    rte_ip_frag_death_row death_row{};
    std::vector<uint8_t> scratch;
    // rte_ip_frag gives up a whole datagram when a fragment arrives twice
    // (networks do duplicate packets): exact duplicates seen within the
    // reassembly timeout are dropped here first. 64-bit hashes of (addresses,
    // identification, offset/flags, length); open addressing, 4 probes.
    std::vector<uint64_t> seen_key, seen_ms;
    uint64_t seen_mask = 0;
    uint64_t timeout_ms = 0;
    bool duplicate(const uint8_t* frame, const net::PacketView& v, uint64_t now_ms) noexcept {
        uint8_t key[48];
        size_t n = 0;
        const uint8_t* ip = frame + v.l3_offset;
        std::memcpy(key, frame + v.src_addr_offset(), v.addr_len() * 2u);  // source and destination
        n = v.addr_len() * 2u;
        if (v.ip_version == 4) {
            std::memcpy(key + n, ip + 2, 6);  // total length, identification, flags/offset
            n += 6;
        } else {
            std::memcpy(key + n, ip + 4, 2);   // payload length
            std::memcpy(key + n + 2, ip + 40, 8);  // fragment header
            n += 10;
        }
        uint64_t h = balance::hash_call_id(key, n, 0x66726167) | 1;  // 0 = free slot
        uint64_t victim = h & seen_mask;
        for (uint64_t i = 0; i < 4; ++i) {
            uint64_t s = (h + i) & seen_mask;
            const bool live = seen_key[s] && now_ms - seen_ms[s] < timeout_ms;
            if (live && seen_key[s] == h) return true;
            if (!live) victim = s;
        }
        seen_key[victim] = h;
        seen_ms[victim] = now_ms;
        return false;
    }
    ~FragState() {
        rte_ip_frag_free_death_row(&death_row, 0);
        if (table) rte_ip_frag_table_destroy(table);
    }
};

void FragStateDeleter::operator()(FragState* s) const noexcept { delete s; }

Status Worker::enable_fragments(uint32_t max_flows, uint32_t timeout_ms) {
    auto s = std::unique_ptr<FragState, FragStateDeleter>(new FragState);
    const uint64_t cycles = (rte_get_tsc_hz() + 999) / 1000 * timeout_ms;
    // Buckets of 4 entries (hash collisions), max_flows entries in all.
    const uint32_t buckets = max_flows / 4 ? max_flows / 4 : 1;
    s->table = rte_ip_frag_table_create(buckets, 4, buckets * 4, cycles, static_cast<int>(rte_socket_id()));
    if (!s->table)
        return Status::fail("worker " + std::to_string(index_) + ": cannot create the IP reassembly table for " +
                            std::to_string(max_flows) + " flows (dataplane.frag_max_flows)");
    s->scratch.resize(kScratchSize);
    uint64_t slots = 1024;
    while (slots < uint64_t{max_flows} * 16 && slots < (1u << 20)) slots <<= 1;
    s->seen_key.assign(slots, 0);
    s->seen_ms.assign(slots, 0);
    s->seen_mask = slots - 1;
    s->timeout_ms = timeout_ms;
    frag_ = std::move(s);
    return ok_status();
}

void Worker::expire_fragments() noexcept {
    rte_ip_frag_table_del_expired_entries(frag_->table, &frag_->death_row, rte_rdtsc());
    if (frag_->death_row.cnt) {
        bump(c_.edge.frag_dropped, frag_->death_row.cnt);
        rte_ip_frag_free_death_row(&frag_->death_row, 0);
    }
}

bool Worker::handle_fragment(rte_mbuf* m, uint16_t port_index, const balance::DataplaneSnapshot* snap,
                             uint32_t now_s, uint64_t now_ms) noexcept {
    const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
    const uint16_t len = rte_pktmbuf_data_len(m);
    // Cheap test first: this runs for every frame.
    if (len < 18) return false;
    size_t l3 = net::kEthernetHeaderLen;
    uint16_t type = net::load_be16(f + 12);
    if (type == net::kEtherTypeVlan) {
        type = net::load_be16(f + 16);
        l3 += net::kVlanTagLen;
    }
    if (type == net::kEtherTypeIpv4) {
        if (len < l3 + 20 || (net::load_be16(f + l3 + 6) & 0x3FFF) == 0) return false;
    } else if (type == net::kEtherTypeIpv6) {
        if (len < l3 + 48 || f[l3 + 6] != 44) return false;
    } else {
        return false;
    }
    net::PacketView v;
    if (net::parse_frame(f, len, v) != net::ParseStatus::ip_fragment) return false;  // process() counts it
    IpAddress dst;
    if (v.ip_version == 6) dst.family = IpAddress::Family::v6;
    std::memcpy(dst.bytes.data(), f + v.dst_addr_offset(), v.addr_len());
    if (!is_vip_address(dst, snap)) {
        bump(c_.edge.frag_not_for_vip);
        if (has_tap_ && to_kernel(m, port_index)) return true;
        c_.drop(DropReason::ip_fragment);
        rte_pktmbuf_free(m);
        return true;
    }
    if (v.ip_version == 6 && f[v.l3_offset + 6] != 44) {
        // Fragment header behind other extension headers: not reassembled.
        bump(c_.edge.frag_dropped);
        c_.drop(DropReason::ip_fragment);
        rte_pktmbuf_free(m);
        return true;
    }
    if (frag_->duplicate(f, v, now_ms)) {
        bump(c_.edge.frag_duplicates);
        rte_pktmbuf_free(m);
        return true;
    }
    bump(c_.edge.frag_received);
    m->l2_len = v.l3_offset;
    rte_mbuf* whole;
    auto* ip = rte_pktmbuf_mtod_offset(m, uint8_t*, v.l3_offset);
    if (v.ip_version == 4) {
        m->l3_len = static_cast<uint16_t>(v.l4_offset - v.l3_offset);
        whole = rte_ipv4_frag_reassemble_packet(frag_->table, &frag_->death_row, m, rte_rdtsc(),
                                                reinterpret_cast<rte_ipv4_hdr*>(ip));
    } else {
        auto* ip6 = reinterpret_cast<rte_ipv6_hdr*>(ip);
        m->l3_len = sizeof(rte_ipv6_hdr) + sizeof(rte_ipv6_fragment_ext);
        whole = rte_ipv6_frag_reassemble_packet(frag_->table, &frag_->death_row, m, rte_rdtsc(), ip6,
                                                rte_ipv6_frag_get_ipv6_fragment_header(ip6));
    }
    if (frag_->death_row.cnt) {
        bump(c_.edge.frag_dropped, frag_->death_row.cnt);
        rte_ip_frag_free_death_row(&frag_->death_row, 0);
    }
    if (!whole) return true;  // held until complete (or freed above)
    bump(c_.edge.frag_reassembled);
    forward_reassembled(whole, port_index, snap, now_s, now_ms);
    return true;
}

rte_mbuf* Worker::copy_to_chain(const uint8_t* data, uint32_t len) noexcept {
    rte_mbuf* head = nullptr;
    uint32_t done = 0;
    while (done < len) {
        rte_mbuf* seg = rte_pktmbuf_alloc(pool_);
        if (!seg) break;
        uint16_t room = rte_pktmbuf_tailroom(seg);
        uint16_t n = static_cast<uint16_t>(len - done < room ? len - done : room);
        std::memcpy(rte_pktmbuf_append(seg, n), data + done, n);
        done += n;
        if (!head) {
            head = seg;
        } else if (rte_pktmbuf_chain(head, seg) != 0) {
            rte_pktmbuf_free(seg);
            break;
        }
    }
    if (done < len) {
        if (head) rte_pktmbuf_free(head);
        return nullptr;
    }
    return head;
}

void Worker::forward_reassembled(rte_mbuf* whole, uint16_t port_index, const balance::DataplaneSnapshot* snap,
                                 uint32_t now_s, uint64_t now_ms) noexcept {
    const uint32_t total = rte_pktmbuf_pkt_len(whole);
    uint8_t* buf = frag_->scratch.data() + kScratchHeadroom;
    if (total > 65535 + 18) {
        bump(c_.edge.frag_too_big);
        c_.drop(DropReason::bad_length);
        rte_pktmbuf_free(whole);
        return;
    }
    const void* p = rte_pktmbuf_read(whole, 0, total, buf);
    if (p != buf) std::memcpy(buf, p, total);
    const uint16_t l2 = whole->l2_len;
    rte_pktmbuf_free(whole);
    // rte_ip_frag leaves the IPv4 header checksum of the reassembled header 0.
    if (total >= l2 + 20u && (buf[l2] >> 4) == 4)
        net::store_be16(buf + l2 + 10, net::ipv4_header_checksum(buf + l2, (buf[l2] & 0x0F) * 4u));
    Action a = forwarder_.process(buf, static_cast<uint16_t>(total), static_cast<uint16_t>(kScratchHeadroom),
                                  static_cast<uint16_t>(kScratchSize - kScratchHeadroom - total), port_index, snap,
                                  now_s, now_ms, {});
    if (a.kind == Action::Kind::drop) {
        if (a.resolve()) send_resolution_request(a.port, forwarder_.resolve_target());
        return;
    }
    if (a.resolve()) send_resolution_request(a.port, forwarder_.resolve_target());  // stale neighbor: refresh
    rte_mbuf* m = copy_to_chain(buf + a.shift, a.len);
    if (!m) {
        bump(c_.edge.frag_failed);
        return;
    }
    if (a.fragment()) {
        transmit_fragmented(m, a.port);
    } else {
        enqueue_tx(a.port, m);
    }
}

}  // namespace siplb::dataplane
