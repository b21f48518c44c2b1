// How a pool's datagrams reach its backends.
#pragma once

#include <cstdint>

namespace siplb::balance {

// nat: DNAT to the backend, replies SNATed back to the VIP through siplb.
// ipip: the unchanged datagram in an IP tunnel; the backend answers from
// the VIP itself (direct server return).
enum class ForwardMode : uint8_t { nat, ipip };

}  // namespace siplb::balance
