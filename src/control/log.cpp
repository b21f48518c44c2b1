#include "siplb/control/log.h"

#include <atomic>
#include <cstdio>

namespace siplb::control {

namespace {
std::atomic<LogLevel> g_level{LogLevel::info};

std::string_view level_name(LogLevel l) {
    switch (l) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warn: return "warn";
        case LogLevel::error: return "error";
    }
    return "info";
}

void append_value(std::string& out, std::string_view v) {
    bool quote = v.empty();
    for (char c : v)
        if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) quote = true;
    if (!quote) {
        out += v;
        return;
    }
    out += '"';
    for (char c : v) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += ' ';
        } else {
            out += c;
        }
    }
    out += '"';
}
}  // namespace

bool parse_log_level(std::string_view text, LogLevel* out) {
    for (LogLevel l : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
        if (text == level_name(l)) {
            *out = l;
            return true;
        }
    }
    return false;
}

void set_log_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel log_level() { return g_level.load(std::memory_order_relaxed); }

std::string format_log_line(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
    std::string line = "level=";
    line += level_name(level);
    line += " msg=";
    std::string m(msg);
    // msg is always quoted, so readers can rely on it.
    line += '"';
    for (char c : m) {
        if (c == '"' || c == '\\') line += '\\';
        line += (c == '\n') ? ' ' : c;
    }
    line += '"';
    for (const auto& [k, v] : fields) {
        line += ' ';
        line += k;
        line += '=';
        append_value(line, v);
    }
    return line;
}

void log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
    if (level < log_level()) return;
    std::string line = format_log_line(level, msg, fields);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace siplb::control
