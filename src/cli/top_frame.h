// `siplbctl top`: one frame of the live view from the daemon's answers,
// pure so tests drive it with JSON. Rates are counter deltas between two
// `stats` results divided by the seconds between them.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace siplb::cli {

struct TopInput {
    nlohmann::json status;    // `status` result; null when not asked
    nlohmann::json prev;      // the previous `stats` result; null: no rates yet
    nlohmann::json cur;       // the latest `stats` result
    nlohmann::json backends;  // `backends` result (states, health)
    double elapsed_s = 0;     // between the polls of prev and cur
    std::string error;        // shown on the top line (the daemon went away, ...)
};

// The frame's lines: a header, totals, the top drop reasons, worker busy
// shares, then one line per pool and per backend. No line is longer than
// `width` (cells are truncated, never wrapped); with max_lines > 0 the frame
// is cut to that many lines, the last one saying how many were left out.
// Only printable ASCII reaches the output: names and health details come
// from the network (a backend's reason phrase) and must not drive the terminal.
std::vector<std::string> top_frame(const TopInput& in, size_t width, size_t max_lines = 0);

// 0.5 -> "0.5", 12345 -> "12.3k", 2.5e6 -> "2.50M": at most 6 characters.
std::string format_rate(double per_s);

}  // namespace siplb::cli
