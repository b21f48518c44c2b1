// The human-readable form of the daemon's control answers: siplbctl's
// default output (with --json it prints the result itself). Pure, so
// tests/cli renders the JSON the daemon's CommandHandler really sends.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "siplb/control/protocol.h"

namespace siplb::cli {

// The text siplbctl prints for `cmd`'s result object, lines ending in '\n'.
std::string render_result(control::CommandKind cmd, const nlohmann::json& result);

}  // namespace siplb::cli
