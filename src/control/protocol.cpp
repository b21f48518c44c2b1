#include "siplb/control/protocol.h"

#include <array>
#include <nlohmann/json.hpp>

namespace siplb::control {

namespace {
using json = nlohmann::json;

constexpr std::array<std::pair<CommandKind, std::string_view>, 14> kCommands{{
    {CommandKind::status, "status"},
    {CommandKind::pools, "pools"},
    {CommandKind::backends, "backends"},
    {CommandKind::stats, "stats"},
    {CommandKind::lookup, "lookup"},
    {CommandKind::drain, "drain"},
    {CommandKind::disable, "disable"},
    {CommandKind::enable, "enable"},
    {CommandKind::weight, "weight"},
    {CommandKind::add, "add"},
    {CommandKind::remove, "remove"},
    {CommandKind::reload, "reload"},
    {CommandKind::resolve, "resolve"},
    {CommandKind::metrics, "metrics"},
}};

using Fail = Result<Request>;

Result<std::string> string_field(const json& j, const char* key, bool required) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) return Result<std::string>::fail(std::string("missing field '") + key + "'");
        return std::string();
    }
    if (!it->is_string()) return Result<std::string>::fail(std::string("field '") + key + "' must be a string");
    std::string v = it->get<std::string>();
    if (required && v.empty()) return Result<std::string>::fail(std::string("field '") + key + "' is empty");
    return v;
}
}  // namespace

std::string_view to_string(CommandKind c) {
    for (const auto& [k, n] : kCommands)
        if (k == c) return n;
    return "?";
}

std::optional<CommandKind> parse_command_kind(std::string_view name) {
    for (const auto& [k, n] : kCommands)
        if (n == name) return k;
    return std::nullopt;
}

Result<Request> parse_request(std::string_view line) {
    if (line.size() > kMaxRequestLine)
        return Fail::fail("request line exceeds " + std::to_string(kMaxRequestLine) + " bytes");
    json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Fail::fail("request is not valid JSON");
    if (!j.is_object()) return Fail::fail("request must be a JSON object like {\"cmd\":\"status\"}");
    auto cmd = string_field(j, "cmd", true);
    if (!cmd) return Fail::fail(cmd.message());
    auto kind = parse_command_kind(*cmd);
    if (!kind) {
        std::string name = cmd->substr(0, 64);
        return Fail::fail("unknown command '" + name + "'");
    }
    Request r;
    r.cmd = *kind;
    const bool needs_pool = r.cmd == CommandKind::lookup || r.cmd == CommandKind::drain ||
                            r.cmd == CommandKind::disable || r.cmd == CommandKind::enable ||
                            r.cmd == CommandKind::weight || r.cmd == CommandKind::add || r.cmd == CommandKind::remove ||
                            r.cmd == CommandKind::resolve;
    const bool takes_pool = needs_pool || r.cmd == CommandKind::backends;
    const bool needs_backend = r.cmd == CommandKind::drain || r.cmd == CommandKind::disable ||
                               r.cmd == CommandKind::enable || r.cmd == CommandKind::weight ||
                               r.cmd == CommandKind::add || r.cmd == CommandKind::remove;
    if (takes_pool) {
        auto pool = string_field(j, "pool", needs_pool);
        if (!pool) return Fail::fail(std::string(to_string(r.cmd)) + ": " + pool.message());
        r.pool = *pool;
    }
    if (needs_backend) {
        auto b = string_field(j, "backend", true);
        if (!b) return Fail::fail(std::string(to_string(r.cmd)) + ": " + b.message());
        auto ep = Endpoint::parse(*b, kDefaultSipPort, /*allow_no_port=*/true);
        if (!ep || ep->port == 0)
            return Fail::fail(std::string(to_string(r.cmd)) + ": backend '" + b->substr(0, 128) +
                              "' is not an address like 192.0.2.10:5060 or [2001:db8::1]:5060");
        r.backend = *ep;
    }
    if (r.cmd == CommandKind::lookup) {
        auto c = string_field(j, "call_id", true);
        if (!c) return Fail::fail("lookup: " + c.message());
        r.call_id = *c;
        if (j.contains("key")) {
            auto k = string_field(j, "key", true);
            if (!k) return Fail::fail("lookup: " + k.message());
            r.key = *k;
        }
    }
    if (r.cmd == CommandKind::weight || r.cmd == CommandKind::add) {
        auto it = j.find("weight");
        if (it == j.end()) {
            if (r.cmd == CommandKind::weight) return Fail::fail("weight: missing field 'weight'");
        } else {
            if (!it->is_number_integer() && !it->is_number_unsigned())
                return Fail::fail(std::string(to_string(r.cmd)) + ": field 'weight' must be an integer");
            const auto w = it->get<int64_t>();
            if (w < 0 || w > 65535)
                return Fail::fail(std::string(to_string(r.cmd)) + ": weight " + std::to_string(w) +
                                  " out of range 0..65535");
            r.weight = static_cast<uint32_t>(w);
        }
    }
    return r;
}

std::string encode_request(const Request& r) {
    json j;
    j["cmd"] = std::string(to_string(r.cmd));
    if (!r.pool.empty()) j["pool"] = r.pool;
    if (r.backend) j["backend"] = r.backend->to_string();
    if (r.cmd == CommandKind::lookup) {
        j["call_id"] = r.call_id;
        if (r.key) j["key"] = *r.key;
    }
    if (r.cmd == CommandKind::weight || r.cmd == CommandKind::add) j["weight"] = r.weight;
    return j.dump() + "\n";
}

std::string error_response(std::string_view message) {
    json j;
    j["ok"] = false;
    j["error"] = std::string(message);
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace siplb::control
