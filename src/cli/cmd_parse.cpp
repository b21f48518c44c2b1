// siplbctl parse FILE...: shows what the balancer's parser sees in raw
// datagram files (one file = one UDP payload) and in packet captures (every
// UDP payload is one datagram), one JSON object per datagram per line.
#include <pcap/pcap.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "siplb/balance/key.h"
#include "siplb/common/endpoint.h"
#include "siplb/config/config.h"
#include "siplb/sip/parser.h"

namespace siplb::cli {
namespace {

// ordered_json keeps "source" first, as an operator reads it.
using json = nlohmann::ordered_json;
using sip::SipMessage;

constexpr const char* kUsage = "parse [--config FILE] FILE...";

// --config: each pool's balancing key, whose value every datagram reports.
struct PoolKey {
    std::string pool;
    balance::KeySpec key, fallback;
};

void print_help() {
    std::printf(
        "usage: siplbctl %s\n\n"
        "Parses SIP datagrams the way the balancer does and prints one JSON object\n"
        "per datagram per line: source, verdict (ok|keepalive|reject), reason (on\n"
        "reject), kind, method, status, call_id, and cseq, from_tag, to_tag,\n"
        "user_agent when present; dialog_ref for a Replaces or Join header (the\n"
        "Call-ID it names, %%-escapes decoded, or malformed: true).\n\n"
        "--config FILE  also print \"keys\": for each pool of FILE, the value its\n"
        "               balancing key takes from the datagram (key, value, and\n"
        "               fallback: true when key_fallback supplied it); source_ip\n"
        "               is known for captured packets only.\n\n"
        "FILE is either one raw datagram (the UDP payload) or a capture (.pcap or\n"
        "pcapng, recognised by content): Ethernet, 802.1Q, Linux cooked (v1/v2) or\n"
        "raw IP; IPv4 and IPv6; non-UDP packets are skipped, IP fragments are\n"
        "reported as reject/fragment. Captured packets are named FILE#N (N counts\n"
        "all packets from 1).\n\n"
        "Exit status: 0 when every file was read (rejected datagrams are not\n"
        "errors), 1 when a file could not be read, 2 on a usage error.\n",
        kUsage);
}

std::string view_of(const uint8_t* d, sip::Span s) { return std::string(s.view(d)); }

json dialog_ref(const uint8_t* d, const SipMessage& m) {
    json j;
    j["header"] = m.dialog_ref_kind == sip::DialogRefKind::join ? "join" : "replaces";
    sip::DialogRef ref;
    uint8_t scratch[1024];
    std::string_view call_id;
    if (sip::parse_dialog_ref(d, m, ref)) call_id = sip::dialog_ref_call_id(d, ref, scratch, sizeof scratch);
    if (call_id.empty()) {
        j["malformed"] = true;
        return j;
    }
    j["call_id"] = std::string(call_id);
    j["to_tag"] = view_of(d, ref.to_tag);
    j["from_tag"] = view_of(d, ref.from_tag);
    if (ref.early_only) j["early_only"] = true;
    return j;
}

// src: "ip:port" of a captured packet, "" for a raw datagram.
json pool_keys(const std::vector<PoolKey>& pools, const uint8_t* d, size_t n, const SipMessage& m,
               const std::string& src) {
    std::string src_addr;
    if (auto ep = Endpoint::parse(src))
        src_addr.assign(reinterpret_cast<const char*>(ep->ip.bytes.data()), ep->ip.is_v6() ? 16 : 4);
    json keys = json::object();
    for (const auto& p : pools) {
        json k;
        std::string_view value = balance::key_value(p.key, d, n, m, src_addr);
        const bool fallback = value.empty();
        if (fallback) value = balance::key_value(p.fallback, d, n, m, src_addr);
        if (fallback && value.empty()) value = m.call_id.view(d);  // as the dataplane does
        k["key"] = balance::to_string(fallback ? p.fallback : p.key);
        if (fallback) k["fallback"] = true;
        // source_ip is bytes on the wire: shown as the address.
        const balance::KeyKind kind = fallback ? p.fallback.kind : p.key.kind;
        k["value"] = kind == balance::KeyKind::source_ip && !src.empty() ? Endpoint::parse(src)->ip.to_string()
                                                                         : std::string(value);
        keys[p.pool] = k;
    }
    return keys;
}

json describe(const std::string& source, const uint8_t* d, size_t n, const std::vector<PoolKey>& pools,
              const std::string& src = {}) {
    SipMessage m;
    sip::SipParser::parse(d, n, m);
    json j;
    j["source"] = source;
    j["verdict"] = sip::to_string(m.verdict);
    if (m.verdict == sip::Verdict::reject) j["reason"] = sip::to_string(m.reason);
    j["kind"] = sip::to_string(m.kind);
    if (m.verdict == sip::Verdict::keepalive) j["keepalive"] = sip::to_string(m.keepalive);
    if (m.kind == sip::Kind::request) j["method"] = view_of(d, m.method_token);
    if (m.kind == sip::Kind::response) j["status"] = m.status;
    if (!m.call_id.empty()) j["call_id"] = view_of(d, m.call_id);
    if (!m.cseq.empty()) j["cseq"] = view_of(d, m.cseq);
    if (!m.from_tag.empty()) j["from_tag"] = view_of(d, m.from_tag);
    if (!m.to_tag.empty()) j["to_tag"] = view_of(d, m.to_tag);
    if (!m.user_agent.empty()) j["user_agent"] = view_of(d, m.user_agent);
    if (m.ok() && m.dialog_ref_count != 0) j["dialog_ref"] = dialog_ref(d, m);
    if (m.ok() && !pools.empty()) j["keys"] = pool_keys(pools, d, n, m, src);
    j["length"] = n;
    return j;
}

json fragment(const std::string& source) {
    json j;
    j["source"] = source;
    j["verdict"] = sip::to_string(sip::Verdict::reject);
    j["reason"] = sip::to_string(sip::RejectReason::fragment);
    j["kind"] = sip::to_string(sip::Kind::unknown);
    return j;
}

void emit(const json& j) {
    // Datagrams may hold invalid UTF-8: replace it rather than fail.
    std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
}

uint16_t be16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }

std::string ip4_text(const uint8_t* a) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
    return buf;
}

std::string ip6_text(const uint8_t* a) {
    char buf[48];
    int off = 0;
    for (int i = 0; i < 16; i += 2)
        off += std::snprintf(buf + off, sizeof buf - size_t(off), i ? ":%x" : "%x", be16(a + i));
    return buf;
}

// Appending rather than "[" + s + "]", which trips a GCC 12 -Wrestrict
// false positive.
std::string bracketed(const std::string& s) {
    std::string out;
    out.reserve(s.size() + 2);
    out += '[';
    out += s;
    out += ']';
    return out;
}

// Outcome of walking one captured packet down to its UDP payload.
struct UdpPayload {
    const uint8_t* data = nullptr;
    size_t len = 0;
    bool fragment = false;
    std::string src, dst;
};

// IP layer (version from the first nibble); nullopt if not UDP.
std::optional<UdpPayload> walk_ip(const uint8_t* p, size_t caplen) {
    if (caplen < 1) return std::nullopt;
    UdpPayload out;
    const uint8_t* l4 = nullptr;
    size_t l4len = 0;
    std::string src_ip, dst_ip;
    if ((p[0] >> 4) == 4) {
        if (caplen < 20) return std::nullopt;
        const size_t ihl = size_t(p[0] & 0x0F) * 4;
        size_t total = be16(p + 2);
        if (ihl < 20 || caplen < ihl || total < ihl) return std::nullopt;
        if (p[9] != 17) return std::nullopt;
        const uint16_t frag = be16(p + 6);
        src_ip = ip4_text(p + 12);
        dst_ip = ip4_text(p + 16);
        if ((frag & 0x2000) || (frag & 0x1FFF)) {
            out.fragment = true;
            out.src = src_ip;
            out.dst = dst_ip;
            return out;
        }
        if (total > caplen) total = caplen;
        l4 = p + ihl;
        l4len = total - ihl;
    } else if ((p[0] >> 4) == 6) {
        if (caplen < 40) return std::nullopt;
        size_t payload = be16(p + 4);
        uint8_t next = p[6];
        src_ip = bracketed(ip6_text(p + 8));
        dst_ip = bracketed(ip6_text(p + 24));
        size_t off = 40;
        size_t end = 40 + payload;
        if (end > caplen) end = caplen;
        // Extension headers in front of UDP.
        for (;;) {
            if (next == 17) break;
            if (next == 44) {
                out.fragment = true;
                out.src = src_ip;
                out.dst = dst_ip;
                return out;
            }
            if (next != 0 && next != 43 && next != 60) return std::nullopt;
            if (off + 8 > end) return std::nullopt;
            const size_t hlen = (size_t(p[off + 1]) + 1) * 8;
            next = p[off];
            off += hlen;
            if (off > end) return std::nullopt;
        }
        l4 = p + off;
        l4len = end - off;
    } else {
        return std::nullopt;
    }
    if (l4len < 8) return std::nullopt;
    size_t ulen = be16(l4 + 4);
    if (ulen < 8) return std::nullopt;
    if (ulen > l4len) ulen = l4len;  // snapped capture: keep what was captured
    out.data = l4 + 8;
    out.len = ulen - 8;
    out.src = src_ip + ":" + std::to_string(be16(l4));
    out.dst = dst_ip + ":" + std::to_string(be16(l4 + 2));
    return out;
}

// Link layer to IP; nullopt if the packet does not carry IP.
std::optional<UdpPayload> walk_link(int dlt, const uint8_t* p, size_t caplen) {
    size_t off = 0;
    uint16_t ethertype = 0;
    switch (dlt) {
        case DLT_EN10MB:
            if (caplen < 14) return std::nullopt;
            ethertype = be16(p + 12);
            off = 14;
            while (ethertype == 0x8100 || ethertype == 0x88A8) {  // 802.1Q / 802.1ad tags
                if (caplen < off + 4) return std::nullopt;
                ethertype = be16(p + off + 2);
                off += 4;
            }
            break;
        case DLT_LINUX_SLL:
            if (caplen < 16) return std::nullopt;
            ethertype = be16(p + 14);
            off = 16;
            break;
#ifdef DLT_LINUX_SLL2
        case DLT_LINUX_SLL2:
            if (caplen < 20) return std::nullopt;
            ethertype = be16(p);
            off = 20;
            break;
#endif
        case DLT_RAW:
#ifdef DLT_IPV4
        case DLT_IPV4:
        case DLT_IPV6:
#endif
            return walk_ip(p, caplen);
        default: return std::nullopt;
    }
    if (ethertype != 0x0800 && ethertype != 0x86DD) return std::nullopt;
    return walk_ip(p + off, caplen - off);
}

bool is_supported_dlt(int dlt) {
    switch (dlt) {
        case DLT_EN10MB:
        case DLT_LINUX_SLL:
#ifdef DLT_LINUX_SLL2
        case DLT_LINUX_SLL2:
#endif
        case DLT_RAW:
#ifdef DLT_IPV4
        case DLT_IPV4:
        case DLT_IPV6:
#endif
            return true;
        default: return false;
    }
}

bool looks_like_capture(const std::string& head) {
    if (head.size() < 4) return false;
    uint32_t magic;
    std::memcpy(&magic, head.data(), 4);
    return magic == 0xA1B2C3D4 || magic == 0xD4C3B2A1 || magic == 0xA1B23C4D || magic == 0x4D3CB2A1 ||
           magic == 0x0A0D0D0A;  // pcapng section header block
}

bool parse_capture(const std::string& path, const std::vector<PoolKey>& pools) {
    char err[PCAP_ERRBUF_SIZE] = {};
    pcap_t* pc = pcap_open_offline(path.c_str(), err);
    if (!pc) {
        std::fprintf(stderr, "siplbctl parse: %s: %s\n", path.c_str(), err);
        return false;
    }
    const int dlt = pcap_datalink(pc);
    if (!is_supported_dlt(dlt)) {
        std::fprintf(stderr, "siplbctl parse: %s: unsupported link type %s\n", path.c_str(),
                     pcap_datalink_val_to_name(dlt) ? pcap_datalink_val_to_name(dlt) : std::to_string(dlt).c_str());
        pcap_close(pc);
        return false;
    }
    pcap_pkthdr* hdr = nullptr;
    const u_char* pkt = nullptr;
    uint64_t number = 0;
    int rc;
    while ((rc = pcap_next_ex(pc, &hdr, &pkt)) == 1) {
        ++number;
        const auto udp = walk_link(dlt, pkt, hdr->caplen);
        if (!udp) continue;
        const std::string source = path + "#" + std::to_string(number);
        json j = udp->fragment ? fragment(source) : describe(source, udp->data, udp->len, pools, udp->src);
        j["src"] = udp->src;
        j["dst"] = udp->dst;
        emit(j);
    }
    bool ok = true;
    if (rc == PCAP_ERROR) {
        std::fprintf(stderr, "siplbctl parse: %s: %s\n", path.c_str(), pcap_geterr(pc));
        ok = false;
    }
    pcap_close(pc);
    return ok;
}

bool parse_file(const std::string& path, const std::vector<PoolKey>& pools) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "siplbctl parse: %s: %s\n", path.c_str(), std::strerror(errno));
        return false;
    }
    std::string data(std::istreambuf_iterator<char>(in), {});
    if (in.bad()) {
        std::fprintf(stderr, "siplbctl parse: %s: read error\n", path.c_str());
        return false;
    }
    if (looks_like_capture(data)) return parse_capture(path, pools);
    emit(describe(path, reinterpret_cast<const uint8_t*>(data.data()), data.size(), pools));
    return true;
}

int run_parse(int argc, char** argv) {
    std::vector<std::string> files;
    std::string config_path;
    bool options_done = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (!options_done && (a == "--help" || a == "-h")) {
            print_help();
            return 0;
        }
        if (!options_done && (a == "--config" || a == "-c")) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "siplbctl parse: %s needs a value\n", a.c_str());
                return 2;
            }
            config_path = argv[++i];
            continue;
        }
        if (!options_done && a == "--") {
            options_done = true;
            continue;
        }
        if (!options_done && a.size() > 1 && a[0] == '-') {
            std::fprintf(stderr, "siplbctl parse: unknown option '%s'\nusage: siplbctl %s\n", a.c_str(), kUsage);
            return 2;
        }
        files.push_back(a);
    }
    if (files.empty()) {
        std::fprintf(stderr, "usage: siplbctl %s\n", kUsage);
        return 2;
    }
    std::vector<PoolKey> pools;
    if (!config_path.empty()) {
        auto cfg = config::load_config(config_path);
        if (!cfg) {
            std::fprintf(stderr, "siplbctl parse: %s\n", cfg.message().c_str());
            return 1;
        }
        for (const auto& p : cfg->pools) pools.push_back({p.name, p.key, p.key_fallback});
    }
    bool all_read = true;
    for (const auto& f : files) all_read = parse_file(f, pools) && all_read;
    std::cout.flush();
    return all_read ? 0 : 1;
}

const CommandRegistrar registrar(Command{"parse", kUsage, "parse SIP datagrams or pcap files, print JSON lines",
                                         run_parse});

}  // namespace
}  // namespace siplb::cli
