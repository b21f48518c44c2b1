// IP fragments of datagrams to a VIP (large INVITEs): reassembled per worker
// with rte_ip_frag, balanced whole, and fragmented again when the result
// exceeds the egress port's MTU (fragmenter.cpp).
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
#include "reassembler.h"

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstring>
#include <string>

#include "forward_context.h"
#include "siplb/balance/hash.h"
#include "siplb/net/checksum.h"

namespace siplb::dataplane {

namespace {
constexpr uint32_t kScratchHeadroom = 128;
constexpr uint32_t kScratchSize = kScratchHeadroom + 65535 + 64;
}  // namespace

Result<std::unique_ptr<Reassembler>> Reassembler::create(unsigned worker_index, uint32_t max_flows, uint32_t timeout_ms,
                                                         rte_mempool* pool, WorkerCounters& counters) {
    std::unique_ptr<Reassembler> r(new Reassembler(pool, counters));
    const uint64_t cycles = (rte_get_tsc_hz() + 999) / 1000 * timeout_ms;
    // Buckets of 4 entries (hash collisions), max_flows entries in all.
    const uint32_t buckets = max_flows / 4 ? max_flows / 4 : 1;
    r->table_ = rte_ip_frag_table_create(buckets, 4, buckets * 4, cycles, static_cast<int>(rte_socket_id()));
    if (!r->table_)
        return Result<std::unique_ptr<Reassembler>>::fail(
            "worker " + std::to_string(worker_index) + ": cannot create the IP reassembly table for " +
            std::to_string(max_flows) + " flows (dataplane.frag_max_flows)");
    r->scratch_.resize(kScratchSize);
    uint64_t slots = 1024;
    while (slots < uint64_t{max_flows} * 16 && slots < (1u << 20)) slots <<= 1;
    r->seen_key_.assign(slots, 0);
    r->seen_ms_.assign(slots, 0);
    r->seen_mask_ = slots - 1;
    r->timeout_ms_ = timeout_ms;
    return r;
}

Reassembler::~Reassembler() {
    rte_ip_frag_free_death_row(&death_row_, 0);
    if (table_) rte_ip_frag_table_destroy(table_);
}

bool Reassembler::duplicate(const uint8_t* frame, const net::PacketView& v, uint64_t now_ms) noexcept {
    uint8_t key[48];
    size_t n = 0;
    const uint8_t* ip = frame + v.l3_offset;
    std::memcpy(key, frame + v.src_addr_offset(), v.addr_len() * 2u);  // source and destination
    n = v.addr_len() * 2u;
    if (v.ip_version == 4) {
        std::memcpy(key + n, ip + 2, 6);  // total length, identification, flags/offset
        n += 6;
    } else {
        std::memcpy(key + n, ip + 4, 2);       // payload length
        std::memcpy(key + n + 2, ip + 40, 8);  // fragment header
        n += 10;
    }
    uint64_t h = balance::hash_call_id(key, n, 0x66726167) | 1;  // 0 = free slot
    uint64_t victim = h & seen_mask_;
    for (uint64_t i = 0; i < 4; ++i) {
        uint64_t s = (h + i) & seen_mask_;
        const bool live = seen_key_[s] && now_ms - seen_ms_[s] < timeout_ms_;
        if (live && seen_key_[s] == h) return true;
        if (!live) victim = s;
    }
    seen_key_[victim] = h;
    seen_ms_[victim] = now_ms;
    return false;
}

void Reassembler::free_death_row() noexcept {
    if (death_row_.cnt) {
        bump(c_.frag_dropped, death_row_.cnt);
        rte_ip_frag_free_death_row(&death_row_, 0);
    }
}

void Reassembler::expire() noexcept {
    rte_ip_frag_table_del_expired_entries(table_, &death_row_, rte_rdtsc());
    free_death_row();
}

Reassembler::Taken Reassembler::take(rte_mbuf* m, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept {
    const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
    const uint16_t len = rte_pktmbuf_data_len(m);
    // Cheap test first: this runs for every frame.
    if (len < 18) return {};
    size_t l3 = net::kEthernetHeaderLen;
    uint16_t type = net::load_be16(f + 12);
    if (type == net::kEtherTypeVlan) {
        type = net::load_be16(f + 16);
        l3 += net::kVlanTagLen;
    }
    if (type == net::kEtherTypeIpv4) {
        if (len < l3 + 20 || (net::load_be16(f + l3 + 6) & 0x3FFF) == 0) return {};
    } else if (type == net::kEtherTypeIpv6) {
        if (len < l3 + 48 || f[l3 + 6] != 44) return {};
    } else {
        return {};
    }
    net::PacketView v;
    if (net::parse_frame(f, len, v) != net::ParseStatus::ip_fragment) return {};  // process() counts it
    IpAddress dst;
    if (v.ip_version == 6) dst.family = IpAddress::Family::v6;
    std::memcpy(dst.bytes.data(), f + v.dst_addr_offset(), v.addr_len());
    if (!is_vip_address(dst, snap)) {
        bump(c_.frag_not_for_vip);
        return {Verdict::not_for_vip, nullptr};
    }
    if (v.ip_version == 6 && f[v.l3_offset + 6] != 44) {
        // Fragment header behind other extension headers: not reassembled.
        bump(c_.frag_dropped);
        c_.drop(DropReason::ip_fragment);
        rte_pktmbuf_free(m);
        return {Verdict::taken, nullptr};
    }
    if (duplicate(f, v, now_ms)) {
        bump(c_.frag_duplicates);
        rte_pktmbuf_free(m);
        return {Verdict::taken, nullptr};
    }
    bump(c_.frag_received);
    m->l2_len = v.l3_offset;
    rte_mbuf* whole;
    auto* ip = rte_pktmbuf_mtod_offset(m, uint8_t*, v.l3_offset);
    if (v.ip_version == 4) {
        m->l3_len = static_cast<uint16_t>(v.l4_offset - v.l3_offset);
        whole =
            rte_ipv4_frag_reassemble_packet(table_, &death_row_, m, rte_rdtsc(), reinterpret_cast<rte_ipv4_hdr*>(ip));
    } else {
        auto* ip6 = reinterpret_cast<rte_ipv6_hdr*>(ip);
        m->l3_len = sizeof(rte_ipv6_hdr) + sizeof(rte_ipv6_fragment_ext);
        whole = rte_ipv6_frag_reassemble_packet(table_, &death_row_, m, rte_rdtsc(), ip6,
                                                rte_ipv6_frag_get_ipv6_fragment_header(ip6));
    }
    free_death_row();
    if (!whole) return {Verdict::taken, nullptr};  // held until complete (or freed above)
    bump(c_.frag_reassembled);
    return {Verdict::complete, whole};
}

std::optional<Reassembler::Linear> Reassembler::linearize(rte_mbuf* whole) noexcept {
    const uint32_t total = rte_pktmbuf_pkt_len(whole);
    uint8_t* buf = scratch_.data() + kScratchHeadroom;
    // The forwarder takes frame lengths as 16 bits: a datagram near the IP
    // maximum plus its L2 header does not fit and is dropped as too big.
    if (total > UINT16_MAX) {
        bump(c_.frag_too_big);
        c_.drop(DropReason::bad_length);
        rte_pktmbuf_free(whole);
        return std::nullopt;
    }
    const void* p = rte_pktmbuf_read(whole, 0, total, buf);
    if (p != buf) std::memcpy(buf, p, total);
    const uint16_t l2 = whole->l2_len;
    rte_pktmbuf_free(whole);
    // rte_ip_frag leaves the IPv4 header checksum of the reassembled header 0.
    if (total >= l2 + 20u && (buf[l2] >> 4) == 4)
        net::store_be16(buf + l2 + 10, net::ipv4_header_checksum(buf + l2, (buf[l2] & 0x0F) * 4u));
    return Linear{buf, static_cast<uint16_t>(total), static_cast<uint16_t>(kScratchHeadroom),
                  static_cast<uint16_t>(kScratchSize - kScratchHeadroom - total)};
}

rte_mbuf* Reassembler::copy_to_chain(const uint8_t* data, uint32_t len) noexcept {
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
        bump(c_.frag_failed);
        c_.drop(DropReason::no_mbuf);  // the reassembled datagram is lost: a drop like any other
        return nullptr;
    }
    return head;
}

}  // namespace siplb::dataplane
