// A line of siplbctl's human output split into its space-separated columns.
#pragma once

#include <string>
#include <vector>

namespace siplb::test {

inline std::vector<std::string> words(const std::string& line) {
    std::vector<std::string> w;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        const size_t k = i;
        while (i < line.size() && line[i] != ' ') ++i;
        if (i > k) w.push_back(line.substr(k, i - k));
    }
    return w;
}

}  // namespace siplb::test
