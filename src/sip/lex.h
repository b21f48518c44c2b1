// Lexical helpers shared by the parser, find_header() and the Replaces/Join
// reader, so that each piece of SIP syntax has one implementation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace siplb::sip::lex {

// d[i] is the opening '"' of a quoted-string: the offset of its closing
// quote (a backslash escapes the next byte, RFC 3261 quoted-pair), or e when
// it does not close before e.
inline size_t closing_quote(const uint8_t* d, size_t i, size_t e) noexcept {
    for (++i; i < e; ++i) {
        if (d[i] == '\\')
            ++i;
        else if (d[i] == '"')
            return i;
    }
    return e;
}

}  // namespace siplb::sip::lex
