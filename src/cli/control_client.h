// The control socket client siplbctl's online commands share: where the
// socket is and one request/response exchange
// (include/siplb/control/protocol.h).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "siplb/common/result.h"

namespace siplb::cli {

inline constexpr const char* kDefaultConfig = "/etc/siplb/siplb.toml";
inline constexpr const char* kDefaultSocket = "/run/siplb/siplb.sock";

// [control] socket of kDefaultConfig when it is readable, else kDefaultSocket.
std::string default_socket();

// Sends one request line, reads one response line (a JSON object). Errors
// name the socket and, where it helps, why (exit status 3 for the caller).
Result<nlohmann::json> call(const std::string& path, const std::string& line, int timeout_ms);

}  // namespace siplb::cli
