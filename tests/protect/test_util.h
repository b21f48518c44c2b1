#pragma once

#include <string>
#include <string_view>

#include "siplb/protect/spec.h"

namespace siplb::protect::test {

inline protect::RuleSpec rule(std::string name, std::string field, std::string pattern,
                              protect::RuleAction action = protect::RuleAction::drop, std::string route = {},
                              bool caseless = true) {
    protect::RuleSpec r;
    r.name = std::move(name);
    r.field = std::move(field);
    r.pattern = std::move(pattern);
    r.action = action;
    r.route_pool = std::move(route);
    r.caseless = caseless;
    return r;
}

inline std::string request(std::string_view method, std::string_view uri, std::string_view user_agent,
                           std::string_view extra = {}) {
    std::string m;
    m += std::string(method) + " " + std::string(uri) + " SIP/2.0\r\n";
    m += "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK776asdhds\r\n";
    m += "Max-Forwards: 70\r\n";
    m += "To: <sip:1000@example.net>\r\n";
    m += "From: \"Alice\" <sip:alice@example.net>;tag=1928301774\r\n";
    m += "Call-ID: a84b4c76e66710@pc33.example.net\r\n";
    m += "CSeq: 314159 " + std::string(method) + "\r\n";
    if (!user_agent.empty()) m += "User-Agent: " + std::string(user_agent) + "\r\n";
    m += extra;
    m += "Content-Length: 0\r\n\r\n";
    return m;
}

}  // namespace siplb::protect::test
