// Per-key rate limiting: a token bucket of `burst` capacity refilled at
// `requests_per_second`, implemented as GCRA so that its whole state is one atomic word
// (the theoretical arrival time) beside the key in the index. Lock-free; hot path.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

#include "core/model.hpp"

namespace keygate::core {

struct RateDecision {
  bool allowed = true;
  bool limited = false;  // false: the key has no limit
  uint32_t limit = 0;    // the bucket's capacity (burst)
  uint32_t remaining = 0;
  uint32_t reset_ms = 0;       // until the bucket is full again
  uint32_t retry_after_s = 0;  // when denied: until one request is allowed
};

inline uint64_t monotonic_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Takes one token if there is one. `now_ns` from monotonic_ns().
RateDecision take_token(std::atomic<uint64_t>& tat_ns, RateLimit limit, uint64_t now_ns) noexcept;
// The same, for one of `nodes` nodes that enforce `limit` together without a shared count
// (cluster mode without --redis): this node's fair share, a token every `nodes` / rate
// seconds and burst / `nodes` of them (at least one). Never more than the limit in all
// while each node holds its share; a client pinned to one node gets 1 / `nodes` of it.
RateDecision take_token(std::atomic<uint64_t>& tat_ns, RateLimit limit, uint32_t nodes,
                        uint64_t now_ns) noexcept;
// The same for a bucket that gains a token every `interval_ns` (at least 1) and holds
// `burst` (at least 1): rates slower than one a second, such as sign-ups per hour.
RateDecision take_token_every(std::atomic<uint64_t>& tat_ns, uint64_t interval_ns, uint32_t burst,
                              uint64_t now_ns) noexcept;

}  // namespace keygate::core
