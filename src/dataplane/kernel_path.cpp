#include "kernel_path.h"

#include <rte_bus_vdev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <cstring>

extern char** environ;

namespace siplb::dataplane {

namespace {
std::atomic<unsigned> g_tap_instance{0};

std::string errstr(int err) { return rte_strerror(err < 0 ? -err : err); }

// Runs `ip` with the arguments; no shell.
Status run_ip(const std::vector<std::string>& args) {
    std::vector<std::string> storage = {"ip"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    std::string joined;
    for (const auto& s : storage) joined += (joined.empty() ? "" : " ") + s;
    if (int rc = posix_spawnp(&pid, "ip", nullptr, nullptr, argv.data(), environ); rc != 0)
        return Status::fail("kernel path: cannot run '" + joined + "': " + std::strerror(rc));
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return Status::fail("kernel path: '" + joined + "' failed");
    return ok_status();
}
}  // namespace

Result<KernelTap> create_kernel_tap(const std::string& port_name, const MacAddress& mac, uint16_t tx_queues,
                                    rte_mempool* pool, uint16_t ring_size) {
    KernelTap tap;
    tap.device = "net_tap_siplb" + std::to_string(g_tap_instance++);
    tap.iface = (port_name + "-k").substr(0, 15);
    char mac_text[18];
    std::snprintf(mac_text, sizeof mac_text, "%02x:%02x:%02x:%02x:%02x:%02x", mac.bytes[0], mac.bytes[1], mac.bytes[2],
                  mac.bytes[3], mac.bytes[4], mac.bytes[5]);
    const std::string args = "iface=" + tap.iface + ",mac=" + mac_text;
    const std::string label = "port '" + port_name + "' kernel path (net_tap " + args + ")";
    if (int rc = rte_vdev_init(tap.device.c_str(), args.c_str()); rc < 0)
        return Result<KernelTap>::fail(label + ": cannot create the tap: " + errstr(rc) +
                                       " (needs /dev/net/tun and CAP_NET_ADMIN)");
    if (rte_eth_dev_get_port_by_name(tap.device.c_str(), &tap.dpdk_port) != 0) {
        rte_vdev_uninit(tap.device.c_str());
        return Result<KernelTap>::fail(label + ": no ethdev port appeared");
    }
    rte_eth_conf conf{};
    int rc = rte_eth_dev_configure(tap.dpdk_port, 1, tx_queues, &conf);
    uint16_t rxd = ring_size, txd = ring_size;
    if (rc == 0) rc = rte_eth_dev_adjust_nb_rx_tx_desc(tap.dpdk_port, &rxd, &txd);
    const int socket = rte_eth_dev_socket_id(tap.dpdk_port) < 0 ? 0 : rte_eth_dev_socket_id(tap.dpdk_port);
    if (rc == 0) rc = rte_eth_rx_queue_setup(tap.dpdk_port, 0, rxd, static_cast<unsigned>(socket), nullptr, pool);
    for (uint16_t q = 0; rc == 0 && q < tx_queues; ++q)
        rc = rte_eth_tx_queue_setup(tap.dpdk_port, q, txd, static_cast<unsigned>(socket), nullptr);
    if (rc != 0) {
        destroy_kernel_tap(tap);
        return Result<KernelTap>::fail(label + ": queue setup: " + errstr(rc));
    }
    return tap;
}

Status mirror_addresses(const KernelTap& tap, const std::vector<Prefix>& addresses) {
    if (auto st = run_ip({"link", "set", "dev", tap.iface, "up"}); !st) return st;
    for (const auto& p : addresses)
        if (auto st = run_ip({"addr", "replace", p.to_string(), "dev", tap.iface}); !st) return st;
    return ok_status();
}

void destroy_kernel_tap(const KernelTap& tap) {
    rte_eth_dev_stop(tap.dpdk_port);
    rte_eth_dev_close(tap.dpdk_port);
    rte_vdev_uninit(tap.device.c_str());
}

void KernelPath::add_tap(uint16_t port_index, uint16_t tap_port, bool poll) {
    if (tap_of_port_.size() < ctx_.ports.size()) tap_of_port_.assign(ctx_.ports.size(), -1);
    tap_of_port_[port_index] = tap_port;
    if (poll) polled_.emplace_back(tap_port, port_index);
}

bool KernelPath::send(rte_mbuf* m, uint16_t port_index) noexcept {
    if (tap_of_port_.empty()) return false;
    const int32_t tap = tap_of_port_[port_index];
    if (tap < 0) return false;
    // The kernel sees the port untagged: the port's VLAN tag comes off.
    auto* p = rte_pktmbuf_mtod(m, uint8_t*);
    if (rte_pktmbuf_data_len(m) >= 18 && p[12] == 0x81 && p[13] == 0x00) {
        std::memmove(p + 4, p, 12);
        rte_pktmbuf_adj(m, 4);
    }
    // Rare path (control traffic): one frame per call, no buffering.
    if (rte_eth_tx_burst(static_cast<uint16_t>(tap), tx_queue_, &m, 1) == 1) {
        bump(c_.kernel_to_tap);
    } else {
        bump(c_.kernel_tap_dropped);
        rte_pktmbuf_free(m);
    }
    return true;
}

void KernelPath::poll_taps() noexcept {
    rte_mbuf* pkts[32];
    for (const auto& [tap, port_index] : polled_) {
        const uint16_t n = rte_eth_rx_burst(tap, 0, pkts, 32);
        if (n == 0) continue;
        bump(c_.kernel_from_tap, n);
        const uint16_t vlan = ctx_.ports[port_index].vlan;
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = pkts[i];
            if (vlan) {
                // The kernel's frames are untagged; the port's VLAN goes on the wire.
                auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, 4));
                if (!p || rte_pktmbuf_data_len(m) < 18) {
                    bump(c_.kernel_tap_dropped);
                    rte_pktmbuf_free(m);
                    continue;
                }
                std::memmove(p, p + 4, 12);
                p[12] = 0x81;
                p[13] = 0x00;
                p[14] = static_cast<uint8_t>((vlan >> 8) & 0x0F);
                p[15] = static_cast<uint8_t>(vlan);
            }
            tx_.enqueue(port_index, m);
        }
    }
}

}  // namespace siplb::dataplane
