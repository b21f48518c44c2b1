// A field of a JSON object the daemon sent: null when the key is absent or
// the value is not an object (const operator[] on a missing key is
// undefined behaviour), so a newer or older daemon's answer never crashes
// siplbctl's text output.
#pragma once

#include <nlohmann/json.hpp>

namespace siplb::cli {

inline const nlohmann::json& json_field(const nlohmann::json& o, const char* key) {
    static const nlohmann::json kNull;
    if (!o.is_object()) return kNull;
    auto it = o.find(key);
    return it == o.end() ? kNull : *it;
}

}  // namespace siplb::cli
