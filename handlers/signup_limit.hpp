// SignupLimit: anonymous sign-ups (--open-signup) per client address (docs/security.md),
// a token bucket per address: `per_hour` sign-ups an hour, as many at once. At most
// kMaxAddresses buckets are kept; when that many addresses are all still limited, a new
// address is refused too (it fails closed: a flood from that many addresses is an attack,
// not sign-ups). Thread-safe (a mutex: sign-ups are rare, and never on the verify path).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "core/rate_limit.hpp"

namespace keygate::handlers {

class SignupLimit {
 public:
  static constexpr size_t kMaxAddresses = 100'000;
  using Address = std::array<uint8_t, 16>;

  explicit SignupLimit(uint32_t per_hour) : per_hour_(per_hour) {}
  // Takes one sign-up for `address` at `now_ns` (CLOCK_MONOTONIC). 0 per hour: unlimited.
  core::RateDecision take(const Address& address, uint64_t now_ns);

 private:
  struct AddressHash {
    size_t operator()(const Address& a) const noexcept;
  };
  std::mutex mutex_;
  std::unordered_map<Address, std::atomic<uint64_t>, AddressHash> buckets_;
  uint32_t per_hour_;
};

}  // namespace keygate::handlers
