#include "siplb/control/protocol.h"

#include <array>
#include <nlohmann/json.hpp>

namespace siplb::control {

namespace {
using json = nlohmann::json;

constexpr std::array<std::pair<CommandKind, std::string_view>, 17> kCommands{{
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
    {CommandKind::capture_start, "capture_start"},
    {CommandKind::capture_read, "capture_read"},
    {CommandKind::capture_stop, "capture_stop"},
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
    const bool takes_pool = needs_pool || r.cmd == CommandKind::backends || r.cmd == CommandKind::capture_start;
    const bool needs_backend = r.cmd == CommandKind::drain || r.cmd == CommandKind::disable ||
                               r.cmd == CommandKind::enable || r.cmd == CommandKind::weight ||
                               r.cmd == CommandKind::add || r.cmd == CommandKind::remove;
    if (takes_pool) {
        auto pool = string_field(j, "pool", needs_pool);
        if (!pool) return Fail::fail(std::string(to_string(r.cmd)) + ": " + pool.message());
        r.pool = *pool;
    }
    if (needs_backend || (r.cmd == CommandKind::capture_start && j.contains("backend"))) {
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
    if (r.cmd == CommandKind::capture_start) {
        auto c = string_field(j, "call_id", false);
        if (!c) return Fail::fail("capture_start: " + c.message());
        r.call_id = *c;
        auto client = string_field(j, "client", false);
        if (!client) return Fail::fail("capture_start: " + client.message());
        if (!client->empty()) {
            r.client = IpAddress::parse(*client);
            if (!r.client)
                return Fail::fail("capture_start: client '" + client->substr(0, 128) +
                                  "' is not an IP address like 203.0.113.5 or 2001:db8::5");
        }
    }
    if (r.cmd == CommandKind::capture_read || r.cmd == CommandKind::capture_stop) {
        auto it = j.find("id");
        if (it == j.end() || !it->is_number_unsigned())
            return Fail::fail(std::string(to_string(r.cmd)) + ": field 'id' must be the capture's id");
        r.capture_id = it->get<uint64_t>();
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
    if (r.cmd == CommandKind::lookup || (r.cmd == CommandKind::capture_start && !r.call_id.empty()))
        j["call_id"] = r.call_id;
    if (r.cmd == CommandKind::lookup && r.key) j["key"] = *r.key;
    if (r.client) j["client"] = r.client->to_string();
    if (r.cmd == CommandKind::capture_read || r.cmd == CommandKind::capture_stop) j["id"] = r.capture_id;
    if (r.cmd == CommandKind::weight || r.cmd == CommandKind::add) j["weight"] = r.weight;
    return j.dump() + "\n";
}

namespace {
constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(const uint8_t* data, size_t len) {
    std::string out;
    out.reserve((len + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        const uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8 | data[i + 2];
        for (int s = 18; s >= 0; s -= 6) out += kBase64[(v >> s) & 63];
    }
    if (len - i == 1) {
        const uint32_t v = uint32_t(data[i]) << 16;
        out += kBase64[(v >> 18) & 63];
        out += kBase64[(v >> 12) & 63];
        out += "==";
    } else if (len - i == 2) {
        const uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8;
        out += kBase64[(v >> 18) & 63];
        out += kBase64[(v >> 12) & 63];
        out += kBase64[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        const size_t pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
        if (pad == 1 && text[i + 2] == '=') return std::nullopt;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; ++k) {
            const int x = k >= 4 - pad ? 0 : value(text[i + k]);
            if (x < 0) return std::nullopt;
            v = v << 6 | static_cast<uint32_t>(x);
        }
        out += static_cast<char>(v >> 16);
        if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
        if (pad < 1) out += static_cast<char>(v & 0xFF);
    }
    return out;
}

std::string error_response(std::string_view message) {
    json j;
    j["ok"] = false;
    j["error"] = std::string(message);
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace siplb::control
