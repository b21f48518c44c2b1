// Structured, concise logs for the daemon's control thread (stderr, one
// line per event): level=info msg="backend drained" pool=lund backend=...
// Never used by dataplane workers on the hot path.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace siplb::control {

enum class LogLevel : uint8_t { debug, info, warn, error };

// "debug"|"info"|"warn"|"error"; unknown text leaves *out untouched and returns false.
bool parse_log_level(std::string_view text, LogLevel* out);
void set_log_level(LogLevel level);
LogLevel log_level();

using LogField = std::pair<std::string_view, std::string>;

// Formats one line without the trailing newline; values with spaces, quotes
// or '=' are quoted and escaped so the line stays machine-parsable.
std::string format_log_line(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields);
void log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

}  // namespace siplb::control
