// Config loader: defaults, every key, overrides, and one test per kind of
// mistake, each checking that the error names file:line:col and the key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

#include "siplb/config/config.h"

using namespace siplb;
using namespace siplb::config;
using ::testing::HasSubstr;

namespace {

const char* kMinimalPool = R"(
[[pool]]
name = "lund"
listen = ["203.0.113.10:5060"]
backends = ["198.51.100.11:5060", "198.51.100.12:5060"]
)";

Config parse_ok(const std::string& text) {
    auto r = parse_config(text, "t.toml");
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
    return r.ok() ? r.value() : Config{};
}

std::string parse_err(const std::string& text) {
    auto r = parse_config(text, "t.toml");
    EXPECT_FALSE(r.ok()) << "accepted:\n" << text;
    return r.ok() ? std::string() : r.message();
}

Endpoint ep(const char* s) { return *Endpoint::parse(s); }

}  // namespace

TEST(ConfigDefaults, MinimalFileTakesSchemaDefaults) {
    Config c = parse_ok(kMinimalPool);
    EXPECT_EQ(c.source_path, "t.toml");
    EXPECT_EQ(c.control.socket, "/run/siplb/siplb.sock");
    EXPECT_EQ(c.control.socket_mode, 0660u);
    EXPECT_FALSE(c.control.metrics_listen);
    EXPECT_EQ(c.log.level, "info");
    EXPECT_EQ(c.dataplane.workers, 1u);
    EXPECT_EQ(c.dataplane.burst, 32u);
    EXPECT_EQ(c.dataplane.affinity_capacity, 1u << 20);
    EXPECT_EQ(c.dataplane.client_vip_capacity, 1u << 18);
    EXPECT_TRUE(c.dataplane.announce);
    EXPECT_EQ(c.dataplane.neighbor_reachable_s, 300u);
    EXPECT_EQ(c.dataplane.icmp_error_rate, 100u);
    EXPECT_EQ(c.dataplane.icmp_error_burst, 50u);
    ASSERT_EQ(c.pools.size(), 1u);
    const PoolConfig& p = c.pools[0];
    EXPECT_EQ(p.name, "lund");
    EXPECT_EQ(p.listen, std::vector<Endpoint>{ep("203.0.113.10:5060")});
    ASSERT_EQ(p.backends.size(), 2u);
    EXPECT_EQ(p.backends[1].address, ep("198.51.100.12:5060"));
    EXPECT_EQ(p.backends[1].weight, 1u);
    EXPECT_TRUE(p.backends[1].enabled);
    EXPECT_EQ(p.table_size, balance::kAutoTableSize);  // derived from the backend count
    EXPECT_EQ(p.mode, ForwardMode::nat);
    EXPECT_EQ(p.key, balance::KeySpec{});  // call_id
    EXPECT_EQ(p.key_fallback, balance::KeySpec{});
    // A pool's transport checks follow its VIPs: UDP only here.
    HealthConfig udp_pool;
    udp_pool.udp = TransportCheck::options;
    udp_pool.tcp = TransportCheck::off;
    udp_pool.tls = TransportCheck::off;
    EXPECT_EQ(p.health, udp_pool);
    EXPECT_EQ(c.health, HealthConfig{});  // [health] leaves them to each pool
    EXPECT_EQ(p.rate_limit, RateLimitConfig{});
    EXPECT_EQ(c.find_pool("lund"), &c.pools[0]);
    EXPECT_EQ(c.find_pool("trunk"), nullptr);
}

TEST(ConfigDefaults, EmptyFileIsValid) {
    Config c = parse_ok("");
    EXPECT_TRUE(c.pools.empty());
}

TEST(ConfigParse, EveryKey) {
    Config c = parse_ok(R"(
[control]
socket = "/run/siplb/x.sock"
socket_mode = "0600"
socket_owner = "siplb"
socket_group = "sipops"
metrics = "127.0.0.1:9560"

[log]
level = "debug"

[dataplane]
eal = ["--no-huge", "-m", "512"]
workers = 4
burst = 64
mbufs = 16384
mbuf_cache = 128
mbuf_size = 2304
rx_ring = 2048
tx_ring = 512
affinity_capacity = 4096
client_vip_capacity = 2048
frag_max_flows = 100
frag_timeout_ms = 500
announce = false
neighbor_reachable_s = 60
icmp_error_rate = 0
icmp_error_burst = 7

[[dataplane.port]]
name = "ext"
device = "0000:01:00.0"
addresses = ["203.0.113.2/24", "2001:db8::2/64"]
mac = "02:00:00:00:00:01"
vlan = 100
mtu = 9000
rx_queues = 4
tx_queues = 4
kernel_path = true

[[dataplane.port]]
name = "int"
device = "net_af_packet0"
vdev_args = "iface=veth0"
addresses = ["198.51.100.1/24"]

[[dataplane.route]]
prefix = "0.0.0.0/0"
via = "203.0.113.1"

[[dataplane.route]]
prefix = "192.0.2.0/24"
via = "198.51.100.254"
port = "int"

[[dataplane.neighbor]]
ip = "203.0.113.1"
mac = "02:00:00:00:00:fe"
port = "ext"

[health]
enabled = true
interval_ms = 1000
jitter = 0.2
timeout_ms = 500
down_after = 4
up_after = 3
overload_codes = [503, 480]
honor_retry_after = false
panic_threshold = 0.25
from_uri = "sip:probe@lb.example.net"
passive = true
passive_503_threshold = 10

[dns]
resolvers = ["192.0.2.53", "[2001:db8::53]:5353"]
ttl_floor_s = 10
ttl_ceiling_s = 600
retry_initial_ms = 500
retry_max_ms = 30000
drain_grace_s = 120
timeout_ms = 1500

[[pool]]
name = "lund"
listen = ["203.0.113.10:5060", "[2001:db8::10]:5060"]
backends = ["198.51.100.11:5060", { address = "198.51.100.12:5080", weight = 3, enabled = false }]
dns = ["_sip._udp.sip.example.net", "sip.example.net"]
default_port = 5070
table_size = 251
seed = 42
mode = "ipip"
dialog_idle_s = 3600
transaction_idle_s = 32
key = "header:X-Trunk-Id"
key_fallback = "source_ip"

[pool.health]
interval_ms = 3000
passive = false

[[pool.rule]]
name = "no-scanners"
field = "user_agent"
pattern = "friendly-scanner|sipvicious"
action = "drop"

[[pool.rule]]
name = "to-trunk"
field = "header:X-Route"
pattern = "^trunk$"
caseless = false
action = "route"
route_pool = "trunk"

[pool.rate_limit]
enabled = true
requests_per_s = 20
burst = 40.5
prefix_requests_per_s = 200
prefix_burst = 400
table_size = 4096

[[pool]]
name = "trunk"
listen = ["203.0.113.20:5060"]
dns = ["siptrunk.example.net"]
)");
    EXPECT_EQ(c.control.socket, "/run/siplb/x.sock");
    EXPECT_EQ(c.control.socket_mode, 0600u);
    EXPECT_EQ(c.control.socket_owner, "siplb");
    EXPECT_EQ(c.control.socket_group, "sipops");
    ASSERT_TRUE(c.control.metrics_listen);
    EXPECT_EQ(*c.control.metrics_listen, ep("127.0.0.1:9560"));
    EXPECT_EQ(c.log.level, "debug");
    const auto& d = c.dataplane;
    EXPECT_EQ(d.eal, (std::vector<std::string>{"--no-huge", "-m", "512"}));
    EXPECT_EQ(d.workers, 4u);
    EXPECT_EQ(d.burst, 64u);
    EXPECT_EQ(d.mbufs, 16384u);
    EXPECT_EQ(d.mbuf_cache, 128u);
    EXPECT_EQ(d.mbuf_size, 2304u);
    EXPECT_EQ(d.rx_ring, 2048u);
    EXPECT_EQ(d.tx_ring, 512u);
    EXPECT_EQ(d.affinity_capacity, 4096u);
    EXPECT_EQ(d.client_vip_capacity, 2048u);
    EXPECT_EQ(d.frag_max_flows, 100u);
    EXPECT_EQ(d.frag_timeout_ms, 500u);
    EXPECT_FALSE(d.announce);
    EXPECT_EQ(d.neighbor_reachable_s, 60u);
    EXPECT_EQ(d.icmp_error_rate, 0u);
    EXPECT_EQ(d.icmp_error_burst, 7u);
    ASSERT_EQ(d.ports.size(), 2u);
    EXPECT_EQ(d.ports[0].name, "ext");
    EXPECT_EQ(d.ports[0].device, "0000:01:00.0");
    ASSERT_EQ(d.ports[0].addresses.size(), 2u);
    EXPECT_EQ(d.ports[0].addresses[1], *Prefix::parse("2001:db8::2/64", true));
    EXPECT_EQ(d.ports[0].mac->to_string(), "02:00:00:00:00:01");
    EXPECT_EQ(d.ports[0].vlan, 100);
    EXPECT_EQ(d.ports[0].mtu, 9000);
    EXPECT_EQ(d.ports[0].rx_queues, 4);
    EXPECT_EQ(d.ports[0].tx_queues, 4);
    EXPECT_TRUE(d.ports[0].kernel_path);
    EXPECT_EQ(d.ports[1].vdev_args, "iface=veth0");
    EXPECT_FALSE(d.ports[1].mac);
    ASSERT_EQ(d.routes.size(), 2u);
    EXPECT_EQ(d.routes[0].prefix.to_string(), "0.0.0.0/0");
    EXPECT_EQ(d.routes[0].via.to_string(), "203.0.113.1");
    EXPECT_EQ(d.routes[0].port, "");
    EXPECT_EQ(d.routes[1].port, "int");
    ASSERT_EQ(d.neighbors.size(), 1u);
    EXPECT_EQ(d.neighbors[0].mac.to_string(), "02:00:00:00:00:fe");
    EXPECT_EQ(d.neighbors[0].port, "ext");

    EXPECT_EQ(c.health.interval_ms, 1000u);
    EXPECT_DOUBLE_EQ(c.health.jitter, 0.2);
    EXPECT_EQ(c.health.timeout_ms, 500u);
    EXPECT_EQ(c.health.down_after, 4u);
    EXPECT_EQ(c.health.up_after, 3u);
    EXPECT_EQ(c.health.overload_codes, (std::vector<uint16_t>{503, 480}));
    EXPECT_FALSE(c.health.honor_retry_after);
    EXPECT_DOUBLE_EQ(c.health.panic_threshold, 0.25);
    EXPECT_EQ(c.health.from_uri, "sip:probe@lb.example.net");
    EXPECT_TRUE(c.health.passive);
    EXPECT_EQ(c.health.passive_503_threshold, 10u);

    ASSERT_EQ(c.dns.resolvers.size(), 2u);
    EXPECT_EQ(c.dns.resolvers[0], ep("192.0.2.53:53"));
    EXPECT_EQ(c.dns.resolvers[1], ep("[2001:db8::53]:5353"));
    EXPECT_EQ(c.dns.ttl_floor_s, 10u);
    EXPECT_EQ(c.dns.ttl_ceiling_s, 600u);
    EXPECT_EQ(c.dns.retry_initial_ms, 500u);
    EXPECT_EQ(c.dns.retry_max_ms, 30000u);
    EXPECT_EQ(c.dns.drain_grace_s, 120u);
    EXPECT_EQ(c.dns.timeout_ms, 1500u);

    ASSERT_EQ(c.pools.size(), 2u);
    const PoolConfig& p = c.pools[0];
    EXPECT_EQ(p.listen.size(), 2u);
    ASSERT_EQ(p.backends.size(), 2u);
    EXPECT_EQ(p.backends[1].address, ep("198.51.100.12:5080"));
    EXPECT_EQ(p.backends[1].weight, 3u);
    EXPECT_FALSE(p.backends[1].enabled);
    EXPECT_EQ(p.dns, (std::vector<std::string>{"_sip._udp.sip.example.net", "sip.example.net"}));
    EXPECT_EQ(p.default_port, 5070);
    EXPECT_EQ(p.table_size, 251u);
    EXPECT_EQ(p.seed, 42u);
    EXPECT_EQ(p.mode, ForwardMode::ipip);
    EXPECT_EQ(p.dialog_idle_s, 3600u);
    EXPECT_EQ(p.transaction_idle_s, 32u);
    EXPECT_EQ(p.key, (balance::KeySpec{balance::KeyKind::header, "X-Trunk-Id"}));
    EXPECT_EQ(p.key_fallback.kind, balance::KeyKind::source_ip);
    ASSERT_EQ(p.rules.size(), 2u);
    EXPECT_EQ(p.rules[0].name, "no-scanners");
    EXPECT_EQ(p.rules[0].field, "user_agent");
    EXPECT_TRUE(p.rules[0].caseless);
    EXPECT_EQ(p.rules[0].action, RuleAction::drop);
    EXPECT_EQ(p.rules[1].field, "header:X-Route");
    EXPECT_FALSE(p.rules[1].caseless);
    EXPECT_EQ(p.rules[1].action, RuleAction::route);
    EXPECT_EQ(p.rules[1].route_pool, "trunk");
    EXPECT_TRUE(p.rate_limit.enabled);
    EXPECT_DOUBLE_EQ(p.rate_limit.requests_per_s, 20);
    EXPECT_DOUBLE_EQ(p.rate_limit.burst, 40.5);
    EXPECT_DOUBLE_EQ(p.rate_limit.prefix_requests_per_s, 200);
    EXPECT_DOUBLE_EQ(p.rate_limit.prefix_burst, 400);
    EXPECT_EQ(p.rate_limit.table_size, 4096u);

    // [pool.health] overrides only the keys it names, on top of [health].
    EXPECT_EQ(p.health.interval_ms, 3000u);
    EXPECT_FALSE(p.health.passive);
    EXPECT_EQ(p.health.timeout_ms, 500u);
    EXPECT_EQ(p.health.overload_codes, (std::vector<uint16_t>{503, 480}));
    HealthConfig inherited = c.health;
    inherited.udp = TransportCheck::options;
    inherited.tcp = inherited.tls = TransportCheck::off;
    EXPECT_EQ(c.pools[1].health, inherited);

    // Round trip through the canonical TOML form.
    std::string text = format_config(c);
    auto again = parse_config(text, "t.toml");
    ASSERT_TRUE(again.ok()) << again.message() << "\n" << text;
    EXPECT_EQ(again.value(), c);
    EXPECT_TRUE(describe_changes(c, again.value()).empty());
}

TEST(ConfigParse, PoolHealthOverrideDoesNotLeakIntoOtherPools) {
    Config c = parse_ok(R"(
[health]
interval_ms = 5000
[[pool]]
name = "a"
listen = ["203.0.113.1:5060"]
backends = ["198.51.100.1:5060"]
[pool.health]
enabled = false
[[pool]]
name = "b"
listen = ["203.0.113.2:5060"]
backends = ["198.51.100.1:5060"]
)");
    ASSERT_EQ(c.pools.size(), 2u);
    EXPECT_FALSE(c.pools[0].health.enabled);
    EXPECT_EQ(c.pools[0].health.interval_ms, 5000u);
    EXPECT_TRUE(c.pools[1].health.enabled);
    EXPECT_EQ(c.pools[1].health.interval_ms, 5000u);
}

TEST(ConfigParse, RouteTargetPoolNeedsNoVip) {
    Config c = parse_ok(R"(
[[pool]]
name = "front"
listen = ["203.0.113.1:5060"]
backends = ["198.51.100.1:5060"]
[[pool.rule]]
name = "r"
field = "method"
pattern = "^REGISTER$"
action = "route"
route_pool = "registrar"
[[pool]]
name = "registrar"
backends = ["198.51.100.2:5060"]
)");
    EXPECT_TRUE(c.pools[1].listen.empty());
}

// --- each kind of mistake ---

TEST(ConfigErrors, SyntaxErrorNamesFileLineColumn) {
    std::string e = parse_err("[control]\nsocket = \"/run/x\n");
    EXPECT_THAT(e, HasSubstr("t.toml:2:"));
}

TEST(ConfigErrors, BadBackendAddressNamesLineColumnAndPath) {
    std::string e = parse_err(R"([[pool]]
name = "lund"
listen = ["203.0.113.10:5060"]
backends = ["198.51.100.11:5060", "198.51.100.300:5060"]
)");
    EXPECT_EQ(e, "t.toml:4:35: pool[0].backends[1]: '198.51.100.300:5060' is not an address:port");
}

TEST(ConfigErrors, UnknownKeySuggestsTheRightOne) {
    std::string e = parse_err(std::string("[health]\nintervall_ms = 100\n") + kMinimalPool);
    EXPECT_THAT(e, HasSubstr("t.toml:2:1: health: unknown key 'intervall_ms' (did you mean 'interval_ms'?)"));
}

TEST(ConfigErrors, UnknownKeysEverywhere) {
    EXPECT_THAT(parse_err("[contrl]\n"), HasSubstr("unknown key 'contrl' (did you mean 'control'?)"));
}

TEST(Config, AfPacketFrameSizeMustFitTheMbuf) {
    auto port = [](const std::string& mbuf_size, const std::string& args) {
        return "[dataplane]\n" + mbuf_size +
               "[[dataplane.port]]\nname = \"ext\"\ndevice = \"net_af_packet0\"\n"
               "vdev_args = \"" +
               args + "\"\naddresses = [\"192.0.2.1/24\"]\n" + kMinimalPool;
    };
    // The default frame (2048) fits the default data room (2176); 4096 needs 4192.
    EXPECT_TRUE(parse_config(port("", "iface=v0"), "t.toml"));
    EXPECT_TRUE(parse_config(port("mbuf_size = 4192\n", "iface=v0,framesz=4096"), "t.toml"));
    EXPECT_THAT(parse_err(port("mbuf_size = 4191\n", "iface=v0,framesz=4096")),
                HasSubstr("dataplane.port[0].vdev_args: net_af_packet frames of framesz=4096 need "
                          "dataplane.mbuf_size >= 4192 (it is 4191)"));
    EXPECT_THAT(parse_err(port("", "iface=v0,framesz=4096,qpairs=1")), HasSubstr("mbuf_size >= 4192 (it is 2176)"));
    EXPECT_THAT(parse_err(port("", "iface=v0,framesz=4k")), HasSubstr("'framesz=4k' is not a frame size in bytes"));
    EXPECT_THAT(parse_err(port("", "iface=v0,framesz=18446744073709551600")),
                HasSubstr("net_af_packet framesz=18446744073709551600 cannot fit an mbuf"));
    EXPECT_THAT(parse_err(std::string(kMinimalPool) + "backend = [\"198.51.100.1:5060\"]\n"),
                HasSubstr("pool[0]: unknown key 'backend' (did you mean 'backends'?)"));
    EXPECT_THAT(parse_err(std::string(kMinimalPool) + "[pool.health]\ntimeout = 3\n"),
                HasSubstr("pool[0].health: unknown key 'timeout'"));
    EXPECT_THAT(parse_err(R"([[pool]]
name = "x"
listen = ["203.0.113.1:5060"]
backends = [{ address = "198.51.100.1:5060", wieght = 2 }]
)"),
                HasSubstr("pool[0].backends[0]: unknown key 'wieght' (did you mean 'weight'?)"));
    EXPECT_THAT(parse_err("[[dataplane.port]]\nname = \"a\"\ndevice = \"net_null0\"\nqueues = 2\n"),
                HasSubstr("dataplane.port[0]: unknown key 'queues'"));
}

TEST(ConfigErrors, WrongTypes) {
    EXPECT_THAT(parse_err("[dataplane]\nworkers = \"2\"\n"),
                HasSubstr("t.toml:2:11: dataplane.workers: expected an integer, got a string"));
    EXPECT_THAT(parse_err("[health]\nenabled = 1\n"), HasSubstr("health.enabled: expected true or false"));
    EXPECT_THAT(parse_err("[dataplane]\nannounce = \"yes\"\n"),
                HasSubstr("dataplane.announce: expected true or false"));
    EXPECT_THAT(parse_err("[control]\nsocket = 5\n"), HasSubstr("control.socket: expected a string"));
    EXPECT_THAT(parse_err("control = 1\n"), HasSubstr("control: expected a table"));
    EXPECT_THAT(parse_err("[pool]\nname = \"x\"\n"), HasSubstr("pool: expected an array of tables ([[pool]])"));
    EXPECT_THAT(parse_err("[dataplane]\neal = \"--no-huge\"\n"), HasSubstr("dataplane.eal: expected an array"));
    EXPECT_THAT(parse_err("[dataplane]\neal = [1]\n"), HasSubstr("dataplane.eal[0]: expected a string"));
    EXPECT_THAT(parse_err("[health]\njitter = \"x\"\n"), HasSubstr("health.jitter: expected a number"));
    EXPECT_THAT(parse_err("[[pool]]\nname = \"x\"\nlisten = [\"203.0.113.1:5060\"]\nbackends = [5]\n"),
                HasSubstr("pool[0].backends[0]: expected \"address:port\" or {"));
}

TEST(ConfigErrors, OutOfRangeNumbers) {
    EXPECT_THAT(parse_err("[dataplane]\nworkers = 0\n"), HasSubstr("dataplane.workers: 0 is out of range 1..128"));
    EXPECT_THAT(parse_err("[dataplane]\nburst = 0\n"), HasSubstr("dataplane.burst: 0 is out of range 1..256"));
    EXPECT_THAT(parse_err("[dataplane]\nburst = 257\n"), HasSubstr("dataplane.burst: 257 is out of range"));
    EXPECT_THAT(parse_err("[dataplane]\nneighbor_reachable_s = 0\n"),
                HasSubstr("dataplane.neighbor_reachable_s: 0 is out of range 1..86400"));
    EXPECT_THAT(parse_err("[dataplane]\nicmp_error_burst = 0\n"),
                HasSubstr("dataplane.icmp_error_burst: 0 is out of range 1..1000000"));
    EXPECT_THAT(parse_err("[dataplane]\nworkers = -1\n"), HasSubstr("dataplane.workers: -1 is out of range"));
    EXPECT_THAT(parse_err("[health]\njitter = 0.6\n"), HasSubstr("health.jitter: 0.6 is out of range 0..0.5"));
    EXPECT_THAT(parse_err("[health]\njitter = nan\n"), HasSubstr("health.jitter"));
    EXPECT_THAT(parse_err("[health]\npanic_threshold = 1.5\n"),
                HasSubstr("health.panic_threshold: 1.5 is out of range 0..1"));
    EXPECT_THAT(parse_err("[health]\nup_after = 0\n"), HasSubstr("health.up_after: 0 is out of range 1.."));
    EXPECT_THAT(parse_err("[health]\ndown_after = 0\n"), HasSubstr("health.down_after: 0 is out of range 1.."));
    EXPECT_THAT(parse_err("[health]\noverload_codes = [200]\n"),
                HasSubstr("health.overload_codes[0]: 200 is out of range"));
    EXPECT_THAT(parse_err("[health]\ninterval_ms = 1000\ntimeout_ms = 2000\n"),
                HasSubstr("timeout_ms (2000) must not exceed interval_ms (1000)"));
    EXPECT_THAT(parse_err("[dns]\nttl_floor_s = 100\nttl_ceiling_s = 10\n"),
                HasSubstr("dns.ttl_floor_s: must not exceed"));
    EXPECT_THAT(parse_err("[dataplane]\nmbufs = 600\nmbuf_cache = 512\n"), HasSubstr("dataplane.mbuf_cache"));
    EXPECT_THAT(parse_err("[dataplane]\nrx_ring = 1000\n"), HasSubstr("dataplane.rx_ring: must be a power of two"));
}

TEST(ConfigErrors, AffinityCapacityPowerOfTwo) {
    EXPECT_THAT(parse_err("[dataplane]\naffinity_capacity = 1000000\n"),
                HasSubstr("t.toml:2:21: dataplane.affinity_capacity: 1000000 is not a power of two"));
    EXPECT_THAT(parse_err("[dataplane]\nclient_vip_capacity = 3000\n"),
                HasSubstr("t.toml:2:23: dataplane.client_vip_capacity: 3000 is not a power of two"));
    EXPECT_THAT(parse_err("[dataplane]\nclient_vip_capacity = 8\n"), HasSubstr("dataplane.client_vip_capacity"));
}

TEST(ConfigErrors, ControlKeys) {
    EXPECT_THAT(parse_err("[control]\nsocket_mode = \"0960\"\n"),
                HasSubstr("control.socket_mode: '0960' is not an octal"));
    EXPECT_THAT(parse_err("[control]\nsocket_mode = \"0066\"\n"), HasSubstr("must give the owner read and write"));
    EXPECT_THAT(parse_err("[control]\nmetrics = \"127.0.0.1\"\n"),
                HasSubstr("control.metrics: '127.0.0.1' is not an address:port"));
    EXPECT_THAT(parse_err("[control]\nsocket = \"\"\n"), HasSubstr("control.socket: socket path must be"));
    EXPECT_THAT(parse_err("[control]\nsocket_group = \"a b\"\n"),
                HasSubstr("control.socket_group: 'a b' is not a valid name"));
    EXPECT_THAT(parse_err("[log]\nlevel = \"verbose\"\n"), HasSubstr("log.level: 'verbose' is not a log level"));
}

TEST(ConfigErrors, TableSize) {
    std::string pool =
        "[[pool]]\nname = \"x\"\nlisten = [\"203.0.113.1:5060\"]\nbackends = [\"198.51.100.1:5060\", "
        "\"198.51.100.2:5060\", \"198.51.100.3:5060\"]\n";
    EXPECT_THAT(parse_err(pool + "table_size = 65536\n"),
                HasSubstr("t.toml:5:14: pool[0].table_size: 65536 is not prime (next prime: 65537)"));
    EXPECT_THAT(parse_err(pool + "table_size = 3\n"), HasSubstr("pool[0].table_size: 3 is out of range"));
    EXPECT_THAT(parse_err(pool.substr(0, pool.size() - 2) + ", " +
                          "\"198.51.100.4:5060\", \"198.51.100.5:5060\", \"198.51.100.6:5060\", "
                          "\"198.51.100.7:5060\"]\ntable_size = 7\n"),
                HasSubstr("pool[0].table_size: 7 must exceed the number of backends (7); leave it \"auto\" or use a "
                          "prime at least 4096x that, e.g. 28687"));
    EXPECT_THAT(parse_err(pool + "table_size = \"big\"\n"),
                HasSubstr("pool[0].table_size: 'big' is not a table size (a prime, or \"auto\")"));
    const Config automatic = parse_ok(pool + "table_size = \"auto\"\n");
    EXPECT_EQ(automatic.pools[0].table_size, balance::kAutoTableSize);
    Config fixed = automatic;
    fixed.pools[0].table_size = 65537;
    const auto changes = diff_configs(automatic, fixed);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_THAT(changes[0].description, HasSubstr("table_size: auto -> 65537 (remaps most new calls)"));
}

TEST(ConfigErrors, PoolNames) {
    EXPECT_THAT(parse_err(
                    "[[pool]]\nname = \"Lund\"\nlisten = [\"203.0.113.1:5060\"]\nbackends = [\"198.51.100.1:5060\"]\n"),
                HasSubstr("pool[0].name: 'Lund' is not a valid pool name"));
    EXPECT_THAT(parse_err("[[pool]]\nname = \"" + std::string(33, 'a') +
                          "\"\nlisten = [\"203.0.113.1:5060\"]\nbackends = [\"198.51.100.1:5060\"]\n"),
                HasSubstr("is not a valid pool name"));
    EXPECT_THAT(parse_err("[[pool]]\nlisten = [\"203.0.113.1:5060\"]\nbackends = [\"198.51.100.1:5060\"]\n"),
                HasSubstr("t.toml:1:1: pool[0]: missing key 'name'"));
    std::string e =
        parse_err(std::string(kMinimalPool) +
                  "[[pool]]\nname = \"lund\"\nlisten = [\"203.0.113.11:5060\"]\nbackends = [\"198.51.100.1:5060\"]\n");
    EXPECT_THAT(e, HasSubstr("pool[1].name: duplicate pool name 'lund' (first at pool[0])"));
}

TEST(ConfigErrors, VipUsedByTwoPools) {
    std::string e =
        parse_err(std::string(kMinimalPool) +
                  "[[pool]]\nname = \"trunk\"\nlisten = [\"203.0.113.10:5060\"]\nbackends = [\"198.51.100.1:5060\"]\n");
    EXPECT_THAT(e, HasSubstr("t.toml:8:11: pool[1].listen: VIP 203.0.113.10:5060 is already used by pool 'lund'"));
}

TEST(ConfigErrors, ListenMistakes) {
    EXPECT_THAT(parse_err("[[pool]]\nname = \"x\"\nlisten = [\"203.0.113.1\"]\nbackends = [\"198.51.100.1:5060\"]\n"),
                HasSubstr("pool[0].listen[0]: '203.0.113.1' has no port (write \"203.0.113.1:5060\")"));
    EXPECT_THAT(parse_err("[[pool]]\nname = \"x\"\nlisten = [\"203.0.113.1:5060\", \"203.0.113.1:5060\"]\nbackends = "
                          "[\"198.51.100.1:5060\"]\n"),
                HasSubstr("pool[0].listen[1]: duplicate VIP 203.0.113.1:5060"));
    EXPECT_THAT(parse_err("[[pool]]\nname = \"x\"\nbackends = [\"198.51.100.1:5060\"]\n"),
                HasSubstr("pool[0].listen: pool 'x' has no 'listen' VIPs and no rule routes to it"));
}

TEST(ConfigErrors, BackendMistakes) {
    std::string head = "[[pool]]\nname = \"x\"\nlisten = [\"203.0.113.1:5060\"]\n";
    EXPECT_THAT(parse_err(head + "backends = [\"198.51.100.1:5060\", { address = \"198.51.100.1:5060\" }]\n"),
                HasSubstr("pool[0].backends[1]: duplicate backend 198.51.100.1:5060"));
    EXPECT_THAT(parse_err(head + "backends = [\"198.51.100.1\"]\n"),
                HasSubstr("'198.51.100.1' is not an address:port"));
    EXPECT_THAT(parse_err(head + "backends = [{ weight = 2 }]\n"),
                HasSubstr("pool[0].backends[0]: missing key 'address'"));
    EXPECT_THAT(parse_err(head + "backends = [{ address = \"198.51.100.1:5060\", weight = -1 }]\n"),
                HasSubstr("pool[0].backends[0].weight: -1 is out of range"));
    EXPECT_THAT(parse_err(head + "backends = []\n"),
                HasSubstr("pool[0]: pool 'x' has neither 'backends' nor 'dns' names"));
    EXPECT_THAT(parse_err(head), HasSubstr("has neither 'backends' nor 'dns' names"));
}

TEST(ConfigErrors, BackendAtAVipAddress) {
    // Another pool's VIP: lund would balance into trunk and trunk into lund.
    std::string e = parse_err(std::string(kMinimalPool) +
                              "[[pool]]\nname = \"trunk\"\nlisten = [\"203.0.113.20:5060\"]\n"
                              "backends = [\"198.51.100.21:5060\", \"203.0.113.10:5060\"]\n");
    EXPECT_THAT(e, HasSubstr("t.toml:9:35: pool[1].backends[1]: backend 203.0.113.10:5060 is one of this node's own "
                             "addresses (VIP 203.0.113.10:5060 of pool 'lund')"));
    // The pool's own VIP address on another port: siplb answers ARP for it.
    const std::string head = "[[pool]]\nname = \"x\"\nlisten = [\"203.0.113.1:5060\"]\n";
    EXPECT_THAT(parse_err(head + "backends = [\"203.0.113.1:5080\"]\n"),
                HasSubstr("t.toml:4:13: pool[0].backends[0]: backend 203.0.113.1:5080 is one of this node's own "
                          "addresses (VIP 203.0.113.1:5060 of pool 'x')"));
    // Another address of the VIP's subnet is an ordinary backend.
    EXPECT_EQ(parse_ok(head + "backends = [\"203.0.113.2:5060\"]\n").pools.size(), 1u);
}

TEST(ConfigErrors, BackendAtAPortAddress) {
    const std::string port =
        "[[dataplane.port]]\nname = \"int\"\ndevice = \"net_null0\"\n"
        "addresses = [\"198.51.100.1/24\", \"2001:db8:2::1/64\"]\n";
    // Backends on-link of the port are what ports are for.
    EXPECT_EQ(parse_ok(port + kMinimalPool).pools.size(), 1u);
    const std::string head = "[[pool]]\nname = \"x\"\nlisten = [\"203.0.113.1:5060\"]\n";
    EXPECT_THAT(parse_err(port + head + "backends = [{ address = \"198.51.100.1:5060\", weight = 2 }]\n"),
                HasSubstr("t.toml:8:25: pool[0].backends[0]: backend 198.51.100.1:5060 is one of this node's own "
                          "addresses (address 198.51.100.1/24 of port 'int')"));
    // Any port of the address, and IPv6 alike.
    EXPECT_THAT(parse_err(port + head + "backends = [\"198.51.100.11:5060\", \"[2001:db8:2::1]:5999\"]\n"),
                HasSubstr("pool[0].backends[1]: backend [2001:db8:2::1]:5999 is one of this node's own addresses "
                          "(address 2001:db8:2::1/64 of port 'int')"));
}

TEST(ConfigErrors, DnsNames) {
    std::string head = "[[pool]]\nname = \"x\"\nlisten = [\"203.0.113.1:5060\"]\n";
    EXPECT_THAT(parse_err(head + "dns = [\"sip..example.net\"]\n"),
                HasSubstr("pool[0].dns[0]: 'sip..example.net' is not a valid DNS name: empty label"));
    EXPECT_THAT(parse_err(head + "dns = [\"sip_x.example.net\"]\n"), HasSubstr("is not a valid DNS name"));
    EXPECT_THAT(parse_err(head + "dns = [\"_sip._sctp.example.net\"]\n"),
                HasSubstr("SRV names look like _sip._udp.example.net, _sip._tcp.example.net or _sips._tcp"));
    EXPECT_THAT(parse_err(head + "dns = [\"_sips._udp.example.net\"]\n"),
                HasSubstr("SIP over TLS runs on TCP: _sips._tcp, not _sips._udp"));
    EXPECT_THAT(parse_err(head + "dns = [\"_xmpp._tcp.example.net\"]\n"),
                HasSubstr("TCP SRV names are _sip._tcp (SIP port) or _sips._tcp (TLS port)"));
    // _sip._tcp gives the SIP port, as _sip._udp does; _sips._tcp a TLS port,
    // which only tls:// VIPs use.
    EXPECT_EQ(parse_ok(head + "dns = [\"_sip._tcp.example.net\", \"_sip._udp.example.net\"]\n").pools[0].dns.size(),
              2u);
    EXPECT_THAT(parse_err(head + "dns = [\"_sips._tcp.example.net\"]\n"),
                HasSubstr("pool[0].dns[0]: _sips._tcp names give TLS ports, but the pool has no tls:// VIPs"));
    EXPECT_EQ(parse_ok("[[pool]]\nname = \"x\"\nlisten = [\"tls://203.0.113.1:5061\"]\n"
                       "dns = [\"_sips._tcp.example.net\"]\n")
                  .pools[0]
                  .dns,
              std::vector<std::string>{"_sips._tcp.example.net"});
    EXPECT_THAT(parse_err(head + "dns = [\"198.51.100.1\"]\n"), HasSubstr("looks like an address"));
    EXPECT_THAT(parse_err(head + "dns = [\"-a.example.net\"]\n"), HasSubstr("starts or ends with '-'"));
    EXPECT_THAT(parse_err(head + "dns = [\"a.example.net\", \"a.example.net\"]\n"), HasSubstr("duplicate DNS name"));
    EXPECT_THAT(parse_err("[dns]\nresolvers = [\"dns.example.net\"]\n"),
                HasSubstr("dns.resolvers[0]: 'dns.example.net' is not an address"));
    EXPECT_TRUE(valid_dns_name("_sip._udp.lund.example.net."));
    EXPECT_TRUE(valid_dns_name("sip-1.example.net"));
    EXPECT_FALSE(valid_dns_name(std::string(64, 'a') + ".net"));
}

TEST(ConfigErrors, PoolEnumsAndRanges) {
    std::string pool = std::string(kMinimalPool);
    EXPECT_THAT(parse_err(pool + "mode = \"dsr\"\n"), HasSubstr("pool[0].mode: 'dsr' is not a mode (nat, ipip)"));
    EXPECT_THAT(parse_err(pool + "default_port = 0\n"), HasSubstr("pool[0].default_port: 0 is out of range"));
    EXPECT_THAT(parse_err(pool + "key = \"from\"\n"),
                HasSubstr("pool[0].key: \"from\" is not a balancing key (call_id, from_user, to_user, ruri_user, "
                          "source_ip, header:NAME)"));
    EXPECT_THAT(parse_err(pool + "key = \"header:\"\n"),
                HasSubstr("pool[0].key: \"header:\": the header name must be a SIP token"));
    EXPECT_THAT(parse_err(pool + "key_fallback = \"header:X Y\"\n"), HasSubstr("pool[0].key_fallback: "));
    EXPECT_THAT(parse_err(pool + "key = 3\n"), HasSubstr("pool[0].key: expected a string"));
    for (const char* k : {"call_id", "from_user", "to_user", "ruri_user", "source_ip", "header:X-Tenant"}) {
        const Config c = parse_ok(pool + "key = \"" + k + "\"\n");
        EXPECT_EQ(balance::to_string(c.pools[0].key), k);
    }
    EXPECT_THAT(parse_err(pool + "seed = -5\n"), HasSubstr("pool[0].seed: -5 is out of range"));
    EXPECT_THAT(parse_err(pool + "[pool.health]\njitter = 0.9\n"),
                HasSubstr("pool[0].health.jitter: 0.9 is out of range"));
    EXPECT_THAT(parse_err(pool + "[pool.rate_limit]\ntable_size = 5000\n"),
                HasSubstr("pool[0].rate_limit.table_size: 5000 is not a power of two"));
    EXPECT_THAT(parse_err(pool + "[pool.rate_limit]\nrequests_per_s = 0\n"),
                HasSubstr("pool[0].rate_limit.requests_per_s"));
}

TEST(ConfigErrors, Rules) {
    std::string pool = std::string(kMinimalPool);
    auto rule = [&](const std::string& body) { return parse_err(pool + "[[pool.rule]]\n" + body); };
    EXPECT_THAT(rule("field = \"method\"\npattern = \"x\"\n"),
                HasSubstr("pool[0].rule[0]: rule needs a non-empty 'name'"));
    EXPECT_THAT(rule("name = \"r\"\nfield = \"body\"\npattern = \"x\"\n"),
                HasSubstr("pool[0].rule[0].field: 'body' is not a rule field"));
    EXPECT_THAT(rule("name = \"r\"\nfield = \"header:\"\npattern = \"x\"\n"), HasSubstr("is not a rule field"));
    EXPECT_THAT(rule("name = \"r\"\nfield = \"method\"\n"), HasSubstr("pool[0].rule[0]: missing key 'pattern'"));
    EXPECT_THAT(rule("name = \"r\"\nfield = \"method\"\npattern = \"\"\n"),
                HasSubstr("pool[0].rule[0].pattern: must not be empty"));
    EXPECT_THAT(rule("name = \"r\"\nfield = \"method\"\npattern = \"x\"\naction = \"reject\"\n"),
                HasSubstr("pool[0].rule[0].action: 'reject' is not an action (drop, allow, route)"));
    EXPECT_THAT(rule("name = \"r\"\nfield = \"method\"\npattern = \"x\"\naction = \"route\"\n"),
                HasSubstr("action 'route' needs 'route_pool'"));
    EXPECT_THAT(rule("name = \"r\"\nfield = \"method\"\npattern = \"x\"\naction = \"route\"\nroute_pool = "
                     "\"nowhere\"\n"),
                HasSubstr("pool[0].rule[0].route_pool: route_pool names unknown pool 'nowhere'"));
    EXPECT_THAT(rule("name = \"r\"\nfield = \"method\"\npattern = \"x\"\naction = \"route\"\nroute_pool = \"lund\"\n"),
                HasSubstr("a pool cannot route to itself"));
    EXPECT_THAT(rule("name = \"r\"\nfield = \"method\"\npattern = \"x\"\nroute_pool = \"lund\"\n"),
                HasSubstr("only meaningful with action = \"route\""));
    EXPECT_THAT(parse_err(pool + "[[pool.rule]]\nname = \"r\"\nfield = \"method\"\npattern = \"x\"\n" +
                          "[[pool.rule]]\nname = \"r\"\nfield = \"to\"\npattern = \"y\"\n"),
                HasSubstr("pool[0].rule[1].name: duplicate rule name 'r'"));
}

TEST(ConfigErrors, DataplanePortsRoutesNeighbors) {
    std::string ports =
        "[[dataplane.port]]\nname = \"ext\"\ndevice = \"net_null0\"\naddresses = [\"203.0.113.2/24\"]\n";
    EXPECT_THAT(parse_err("[[dataplane.port]]\nname = \"ext\"\n"),
                HasSubstr("dataplane.port[0]: missing key 'device'"));
    EXPECT_THAT(parse_err(ports + ports), HasSubstr("dataplane.port[1].name: duplicate port name 'ext'"));
    EXPECT_THAT(parse_err("[[dataplane.port]]\nname = \"e\"\ndevice = \"d\"\naddresses = [\"203.0.113.2\"]\n"),
                HasSubstr("dataplane.port[0].addresses[0]: '203.0.113.2' is not an address/prefix-length"));
    EXPECT_THAT(parse_err("[[dataplane.port]]\nname = \"e\"\ndevice = \"d\"\nmac = \"02:00:00\"\n"),
                HasSubstr("dataplane.port[0].mac: '02:00:00' is not a MAC address"));
    EXPECT_THAT(parse_err("[[dataplane.port]]\nname = \"e\"\ndevice = \"d\"\nvlan = 4095\n"),
                HasSubstr("dataplane.port[0].vlan: 4095 is out of range"));
    EXPECT_THAT(parse_err(ports + "[[dataplane.route]]\nprefix = \"2001:db8::/32\"\nvia = \"203.0.113.1\"\n"),
                HasSubstr(
                    "dataplane.route[0].via: next hop 203.0.113.1 is not of the same address family as 2001:db8::/32"));
    EXPECT_THAT(parse_err(ports +
                          "[[dataplane.route]]\nprefix = \"0.0.0.0/0\"\nvia = \"203.0.113.1\"\nport = \"int\"\n"),
                HasSubstr("t.toml:8:8: dataplane.route[0].port: unknown port 'int'"));
    EXPECT_THAT(parse_err(ports + "[[dataplane.route]]\nprefix = \"10.0.0.1/8\"\nvia = \"203.0.113.1\"\n"),
                HasSubstr("dataplane.route[0].prefix: '10.0.0.1/8' is not a prefix"));
    EXPECT_THAT(parse_err(ports + "[[dataplane.route]]\nprefix = \"0.0.0.0/0\"\nvia = \"192.0.2.1\"\n"),
                HasSubstr("next hop 192.0.2.1 is on no port's subnet"));
    EXPECT_THAT(parse_err(ports + "[[dataplane.route]]\nvia = \"203.0.113.1\"\n"),
                HasSubstr("dataplane.route[0]: missing key 'prefix'"));
    EXPECT_THAT(parse_err(
                    ports +
                    "[[dataplane.neighbor]]\nip = \"203.0.113.1\"\nmac = \"02:00:00:00:00:01\"\nport = \"lan\"\n"),
                HasSubstr("dataplane.neighbor[0].port: unknown port 'lan'"));
    EXPECT_THAT(parse_err(ports + "[[dataplane.neighbor]]\nip = \"203.0.113.1\"\n"),
                HasSubstr("dataplane.neighbor[0]: missing key 'mac'"));
}

TEST(ConfigErrors, VdevCreatedTwice) {
    EXPECT_THAT(parse_err("[dataplane]\neal = [\"--vdev=net_af_packet0,iface=a\"]\n"
                          "[[dataplane.port]]\nname = \"e\"\ndevice = \"net_af_packet0\"\nvdev_args = \"iface=a\"\n"),
                HasSubstr("dataplane.port[0].vdev_args: vdev 'net_af_packet0' is also created by EAL argument"));
}

TEST(ConfigErrors, ReportsEveryMistakeNotOnlyTheFirst) {
    std::string e = parse_err("[dataplane]\nworkers = 0\nburst = 0\n[log]\nlevel = \"loud\"\n");
    EXPECT_THAT(e, HasSubstr("dataplane.workers"));
    EXPECT_THAT(e, HasSubstr("dataplane.burst"));
    EXPECT_THAT(e, HasSubstr("log.level"));
}

TEST(ConfigLoad, MissingFileGivesClearError) {
    auto r = load_config("/nonexistent/siplb.toml");
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.message(), HasSubstr("/nonexistent/siplb.toml: cannot open config file: No such file or directory"));
    auto d = load_config("/tmp");
    ASSERT_FALSE(d.ok());
    EXPECT_THAT(d.message(), HasSubstr("is a directory"));
}

TEST(ConfigLoad, ReadsFileAndNamesItInErrors) {
    char path[] = "/tmp/siplb-config-test-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    {
        std::ofstream out(path);
        out << kMinimalPool << "[log]\nlevel = \"trace\"\n";
    }
    auto r = load_config(path);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.message(), HasSubstr(std::string(path) + ":7:9: log.level"));
    {
        std::ofstream out(path);
        out << kMinimalPool;
    }
    auto ok = load_config(path);
    std::remove(path);
    ASSERT_TRUE(ok.ok()) << ok.message();
    EXPECT_EQ(ok->source_path, path);
    EXPECT_EQ(ok->pools.size(), 1u);
}

TEST(ConfigParse, StopGrace) {
    EXPECT_EQ(parse_ok(kMinimalPool).control.stop_grace_ms, 0u);  // stop at once, as before
    Config c = parse_ok(std::string("[control]\nstop_grace_ms = 2000\n") + kMinimalPool);
    EXPECT_EQ(c.control.stop_grace_ms, 2000u);
    auto again = parse_config(format_config(c), "t.toml");
    ASSERT_TRUE(again.ok()) << again.message();
    EXPECT_EQ(again->control.stop_grace_ms, 2000u);
    EXPECT_THAT(parse_err("[control]\nstop_grace_ms = -1\n"), HasSubstr("control.stop_grace_ms"));
    EXPECT_THAT(parse_err("[control]\nstop_grace_ms = 600001\n"), HasSubstr("control.stop_grace_ms"));
    EXPECT_THAT(parse_err("[control]\nstop_grace_s = 100\n"), HasSubstr("did you mean 'stop_grace_ms'"));
}

namespace {

const std::string kMirrorPools = R"(
[[pool]]
name = "lund"
listen = ["203.0.113.10:5060"]
backends = ["198.51.100.11:5060"]

[[pool]]
name = "trunk"
listen = ["203.0.113.20:5060"]
backends = ["198.51.100.12:5060"]
)";

}  // namespace

TEST(ConfigMirror, OffByDefault) {
    const Config c = parse_ok(kMirrorPools);
    EXPECT_FALSE(c.dataplane.mirror.enabled());
}

TEST(ConfigMirror, EveryKeyAndRoundTrip) {
    const Config c = parse_ok(kMirrorPools + R"(
[mirror]
hep = "192.0.2.50:9060"
pools = ["trunk"]
sample = 0.25
rate = 5000
agent_id = 7
ring = 256
)");
    const auto& m = c.dataplane.mirror;
    ASSERT_TRUE(m.enabled());
    EXPECT_EQ(*m.hep, ep("192.0.2.50:9060"));
    EXPECT_EQ(m.pools, (std::vector<std::string>{"trunk"}));
    EXPECT_DOUBLE_EQ(m.sample, 0.25);
    EXPECT_EQ(m.rate, 5000u);
    EXPECT_EQ(m.agent_id, 7u);
    EXPECT_EQ(m.ring, 256u);
    auto again = parse_config(format_config(c), "t.toml");
    ASSERT_TRUE(again.ok()) << again.message();
    EXPECT_EQ(again.value(), c);
    // The workers' mirror is fixed at start: a change needs a restart.
    Config changed = c;
    changed.dataplane.mirror.sample = 0.5;
    const auto changes = diff_configs(c, changed);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_THAT(changes[0].description, HasSubstr("mirror.sample: 0.25 -> 0.5"));
    EXPECT_TRUE(changes[0].needs_restart);
}

TEST(ConfigMirror, Errors) {
    EXPECT_THAT(parse_err(kMirrorPools + "[mirror]\nhep = \"collector:9060\"\n"),
                HasSubstr("mirror.hep: 'collector:9060' is not the HEP collector's address:port"));
    EXPECT_THAT(parse_err(kMirrorPools + "[mirror]\nhep = \"192.0.2.50:9060\"\npools = [\"lnud\"]\n"),
                HasSubstr("mirror.pools: names unknown pool 'lnud'"));
    EXPECT_THAT(parse_err(kMirrorPools + "[mirror]\nhep = \"192.0.2.50:9060\"\nsample = 0\n"),
                HasSubstr("sample 0 would mirror nothing"));
    EXPECT_THAT(parse_err(kMirrorPools + "[mirror]\nhep = \"192.0.2.50:9060\"\nsample = 1.5\n"),
                HasSubstr("mirror.sample: 1.5 is out of range 0..1"));
    EXPECT_THAT(parse_err(kMirrorPools + "[mirror]\nhep = \"192.0.2.50:9060\"\nring = 100\n"),
                HasSubstr("mirror.ring: 100 is not a power of two"));
    EXPECT_THAT(parse_err(kMirrorPools + "[mirror]\npools = [\"lund\"]\n"), HasSubstr("[mirror] without 'hep'"));
    EXPECT_THAT(parse_err(kMirrorPools + "[mirror]\nhep = \"192.0.2.50:9060\"\nrate = 0\n"), HasSubstr("mirror.rate"));
    EXPECT_THAT(parse_err(kMirrorPools + "[mirror]\nhep = \"192.0.2.50:9060\"\nsampel = 0.5\n"),
                HasSubstr("unknown key 'sampel' (did you mean 'sample'?)"));
}

namespace {
std::string af_xdp_port(const std::string& dataplane, const std::string& args, const std::string& port_extra = "") {
    return "[dataplane]\n" + dataplane +
           "[[dataplane.port]]\nname = \"ext\"\ndevice = \"net_af_xdp0\"\n"
           "vdev_args = \"" +
           args + "\"\naddresses = [\"192.0.2.1/24\"]\n" + port_extra + kMinimalPool;
}
}  // namespace

TEST(Config, AfXdpArgumentsAreChecked) {
    EXPECT_TRUE(parse_config(af_xdp_port("", "iface=v0"), "t.toml"));
    EXPECT_TRUE(
        parse_config(af_xdp_port("workers = 2\n",
                                 "iface=v0,start_queue=0,queue_count=2,force_copy=1,busy_budget=0,shared_umem=0"),
                     "t.toml"));
    EXPECT_THAT(parse_err(af_xdp_port("", "iface=v0,queue=1")),
                HasSubstr("dataplane.port[0].vdev_args: net_af_xdp does not know 'queue=1' (keys: iface,"));
    EXPECT_THAT(parse_err(af_xdp_port("", "start_queue=0")), HasSubstr("net_af_xdp needs iface=<interface>"));
    EXPECT_THAT(parse_err(af_xdp_port("", "iface=v0,start_queue=2x")),
                HasSubstr("'start_queue=2x' is not a queue number (0..65535)"));
    EXPECT_THAT(parse_err(af_xdp_port("", "iface=v0,queue_count=0")),
                HasSubstr("'queue_count=0' is not a queue count (1..65535)"));
    EXPECT_THAT(parse_err(af_xdp_port("", "iface=v0,queue_count=-1")), HasSubstr("is not a queue count"));
    EXPECT_THAT(parse_err(af_xdp_port("", "iface=v0,force_copy=yes")), HasSubstr("'force_copy=yes' must be 0 or 1"));
    EXPECT_THAT(parse_err(af_xdp_port("", "iface=v0,iface=v1")), HasSubstr("net_af_xdp 'iface' given twice"));
    EXPECT_THAT(parse_err(af_xdp_port("", "iface=v0,start_queue")), HasSubstr("'start_queue' needs a value"));
    EXPECT_THAT(parse_err(af_xdp_port("", "iface=a/b")), HasSubstr("'iface=a/b' is not an interface name"));
    EXPECT_THAT(parse_err(af_xdp_port("", "iface=sixteen-chars-xx")), HasSubstr("is not an interface name"));
    // Every RX queue and every worker's TX queue must be one of the bound queues.
    EXPECT_THAT(parse_err(af_xdp_port("workers = 2\n", "iface=v0")),
                HasSubstr("every worker needs its own TX queue (2 workers) but net_af_xdp binds queue_count=1"));
    EXPECT_THAT(parse_err(af_xdp_port("", "iface=v0,queue_count=1", "rx_queues = 2\n")),
                HasSubstr("rx_queues = 2 but net_af_xdp binds queue_count=1 queue(s)"));
    // Arguments given on the EAL --vdev instead are checked the same way.
    EXPECT_THAT(parse_err("[dataplane]\neal = [\"--vdev=net_af_xdp0,iface=v0,bogus=1\"]\n"
                          "[[dataplane.port]]\nname = \"ext\"\ndevice = \"net_af_xdp0\"\n"
                          "addresses = [\"192.0.2.1/24\"]\n" +
                          std::string(kMinimalPool)),
                HasSubstr("net_af_xdp does not know 'bogus=1'"));
}

TEST(Config, CheckHostFindsMissingInterfaces) {
    auto ok = parse_config(af_xdp_port("", "iface=lo"), "t.toml");
    ASSERT_TRUE(ok) << ok.message();
    EXPECT_TRUE(check_host(*ok));
    auto missing = parse_config(af_xdp_port("", "iface=siplbnone0"), "t.toml");
    ASSERT_TRUE(missing) << missing.message();
    auto st = check_host(*missing);
    ASSERT_FALSE(st);
    EXPECT_THAT(st.message(), HasSubstr("dataplane.port[0] (ext): no interface 'siplbnone0' on this host"));
    auto prog = parse_config(af_xdp_port("", "iface=lo,xdp_prog=/nonexistent/siplb.o"), "t.toml");
    ASSERT_TRUE(prog) << prog.message();
    EXPECT_THAT(check_host(*prog).message(), HasSubstr("xdp_prog '/nonexistent/siplb.o': No such file or directory"));
    // net_af_packet ifaces are checked too; other devices are not.
    auto afp = parse_config(
        "[[dataplane.port]]\nname = \"ext\"\ndevice = \"net_af_packet0\"\n"
        "vdev_args = \"iface=siplbnone1\"\naddresses = [\"192.0.2.1/24\"]\n" +
            std::string(kMinimalPool),
        "t.toml");
    ASSERT_TRUE(afp) << afp.message();
    EXPECT_THAT(check_host(*afp).message(), HasSubstr("no interface 'siplbnone1'"));
    auto null = parse_config(
        "[[dataplane.port]]\nname = \"n\"\ndevice = \"net_null0\"\n"
        "addresses = [\"192.0.2.1/24\"]\n" +
            std::string(kMinimalPool),
        "t.toml");
    ASSERT_TRUE(null) << null.message();
    EXPECT_TRUE(check_host(*null));
}

TEST(ConfigTransports, ListenNamesTcpAndTlsVipsAndBackendsTheirTlsPort) {
    Config c = parse_ok(R"(
[[pool]]
name = "lund"
listen = ["203.0.113.10:5060", "udp://203.0.113.11:5060", "tcp://203.0.113.10:5060", "tls://203.0.113.10:5061"]
backends = ["198.51.100.11:5060", { address = "198.51.100.12:5060", tls_port = 5071 }]
)");
    ASSERT_EQ(c.pools.size(), 1u);
    const PoolConfig& p = c.pools[0];
    EXPECT_EQ(p.listen, (std::vector<Endpoint>{ep("203.0.113.10:5060"), ep("203.0.113.11:5060")}));
    EXPECT_EQ(p.tcp_listen, std::vector<Endpoint>{ep("203.0.113.10:5060")});
    EXPECT_EQ(p.tls_listen, std::vector<Endpoint>{ep("203.0.113.10:5061")});
    EXPECT_EQ(p.backends[0].tls_port, 5061);
    EXPECT_EQ(p.backends[1].tls_port, 5071);
    EXPECT_EQ(listen_entries(p), (std::vector<std::string>{"203.0.113.10:5060", "203.0.113.11:5060",
                                                           "tcp://203.0.113.10:5060", "tls://203.0.113.10:5061"}));
    // The formatted file reads back the same.
    auto again = parse_config(format_config(c), "again.toml");
    ASSERT_TRUE(again.ok()) << again.message();
    EXPECT_EQ(again.value().pools, c.pools);
}

TEST(ConfigTransports, TcpOnlyPoolNeedsNoUdpVip) {
    Config c = parse_ok(R"(
[[pool]]
name = "trunk"
listen = ["tls://203.0.113.10:5061"]
backends = ["198.51.100.11:5060"]
)");
    EXPECT_TRUE(c.pools[0].listen.empty());
    EXPECT_EQ(c.pools[0].tls_listen.size(), 1u);
}

TEST(ConfigTransports, Errors) {
    EXPECT_THAT(parse_err(R"([[pool]]
name = "a"
listen = ["sctp://203.0.113.10:5060"]
)"),
                HasSubstr("t.toml:3:11: pool[0].listen[0]: unknown transport 'sctp' (udp://, tcp:// or tls://)"));
    EXPECT_THAT(parse_err(R"([[pool]]
name = "a"
listen = ["tcp://203.0.113.10"]
)"),
                HasSubstr("pool[0].listen[0]: 'tcp://203.0.113.10' has no port"));
    // TCP and TLS on one address:port cannot be told apart on the wire.
    EXPECT_THAT(parse_err(R"([[pool]]
name = "a"
listen = ["tcp://203.0.113.10:5060", "tls://203.0.113.10:5060"]
)"),
                HasSubstr("pool[0].listen[1]: duplicate VIP tls://203.0.113.10:5060"));
    EXPECT_THAT(parse_err(R"([[pool]]
name = "a"
listen = ["tcp://203.0.113.10:5060"]
[[pool]]
name = "b"
listen = ["tls://203.0.113.10:5060"]
)"),
                HasSubstr("pool[1].listen: TCP VIP 203.0.113.10:5060 is already used by pool 'a'"));
    EXPECT_THAT(parse_err(std::string(kMinimalPool) +
                          "[[pool]]\nname = \"b\"\nlisten = [\"tcp://203.0.113.10:5060\"]\n"
                          "backends = [{ address = \"198.51.100.1:5060\", tls_port = 0 }]\n"),
                HasSubstr("pool[1].backends[0].tls_port"));
}

TEST(ConfigHealth, TransportChecksFollowTheVips) {
    const std::string mixed =
        "[[pool]]\nname = \"x\"\nlisten = [\"203.0.113.1:5060\", \"tcp://203.0.113.1:5060\", "
        "\"tls://203.0.113.1:5061\"]\nbackends = [\"198.51.100.1:5060\"]\n";
    const std::string tcp_only =
        "[[pool]]\nname = \"t\"\nlisten = [\"tcp://203.0.113.2:5060\"]\n"
        "backends = [\"198.51.100.2:5060\"]\n";
    Config c = parse_ok(mixed + tcp_only);
    EXPECT_EQ(c.pools[0].health.udp, TransportCheck::options);
    EXPECT_EQ(c.pools[0].health.tcp, TransportCheck::options);
    EXPECT_EQ(c.pools[0].health.tls, TransportCheck::connect);
    // A pool without UDP VIPs is not probed over UDP.
    EXPECT_EQ(c.pools[1].health.udp, TransportCheck::off);
    EXPECT_EQ(c.pools[1].health.tcp, TransportCheck::options);
    EXPECT_EQ(c.pools[1].health.tls, TransportCheck::off);

    // [health] sets the default for pools with such VIPs; [pool.health] overrides.
    Config g = parse_ok("[health]\ntcp = \"connect\"\n" + mixed + "[pool.health]\ntls = \"off\"\n" + tcp_only);
    EXPECT_EQ(g.health.tcp, TransportCheck::connect);
    EXPECT_EQ(g.pools[0].health.tcp, TransportCheck::connect);
    EXPECT_EQ(g.pools[0].health.tls, TransportCheck::off);
    EXPECT_EQ(g.pools[1].health.tcp, TransportCheck::connect);
    // Off is always allowed, even for a transport the pool does not serve.
    EXPECT_EQ(parse_ok(tcp_only + "[pool.health]\nudp = \"off\"\ntls = \"off\"\n").pools[0].health.tls,
              TransportCheck::off);

    // Round trip: [health] keeps its unset keys unset, pools their values.
    Config again = parse_ok(format_config(g));
    again.source_path = g.source_path;
    EXPECT_EQ(again, g);
    Config plain = parse_ok(mixed);
    Config plain_again = parse_ok(format_config(plain));
    plain_again.source_path = plain.source_path;
    EXPECT_EQ(plain_again, plain);
}

TEST(ConfigHealth, TransportCheckErrors) {
    const std::string udp_pool =
        "[[pool]]\nname = \"x\"\nlisten = [\"203.0.113.1:5060\"]\nbackends = [\"198.51.100.1:5060\"]\n";
    EXPECT_THAT(parse_err(udp_pool + "[pool.health]\ntcp = \"ping\"\n"),
                HasSubstr("pool[0].health.tcp: 'ping' is not a tcp check (options, connect, off)"));
    EXPECT_THAT(parse_err(udp_pool + "[pool.health]\ntls = \"options\"\n"),
                HasSubstr("pool[0].health.tls: 'options' is not a tls check (connect, off)"));
    EXPECT_THAT(parse_err(udp_pool + "[pool.health]\nudp = \"connect\"\n"),
                HasSubstr("'connect' is not a udp check (options, off)"));
    // A check of a transport the pool does not listen on would do nothing.
    EXPECT_THAT(parse_err(udp_pool + "[pool.health]\ntcp = \"connect\"\n"),
                HasSubstr("pool[0].health.tcp: tcp = \"connect\" checks nothing: pool 'x' has no tcp:// VIPs"));
    EXPECT_THAT(parse_err(udp_pool + "[pool.health]\ntls = \"connect\"\n"),
                HasSubstr("tls = \"connect\" checks nothing: pool 'x' has no tls:// VIPs"));
    EXPECT_THAT(parse_err("[[pool]]\nname = \"t\"\nlisten = [\"tcp://203.0.113.2:5060\"]\n"
                          "backends = [\"198.51.100.2:5060\"]\n[pool.health]\nudp = \"options\"\n"),
                HasSubstr("udp = \"options\" checks nothing: pool 't' has no UDP VIPs"));
    EXPECT_THAT(parse_err("[health]\ntls = \"connect\"\n" + udp_pool),
                HasSubstr("health.tls: tls = \"connect\" checks nothing: no pool has tls:// VIPs"));
    EXPECT_THAT(parse_err("[health]\ntcp = \"options\"\n" + udp_pool),
                HasSubstr("health.tcp: tcp = \"options\" checks nothing: no pool has tcp:// VIPs"));
}
