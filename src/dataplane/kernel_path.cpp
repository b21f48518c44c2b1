#include "kernel_path.h"

#include <rte_bus_vdev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>

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
    std::snprintf(mac_text, sizeof mac_text, "%02x:%02x:%02x:%02x:%02x:%02x", mac.bytes[0], mac.bytes[1],
                  mac.bytes[2], mac.bytes[3], mac.bytes[4], mac.bytes[5]);
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

}  // namespace siplb::dataplane
