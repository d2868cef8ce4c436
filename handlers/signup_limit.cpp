#include "handlers/signup_limit.hpp"

#include <cstring>

namespace keygate::handlers {

size_t SignupLimit::AddressHash::operator()(const Address& a) const noexcept {
  uint64_t hi, lo;
  std::memcpy(&hi, a.data(), 8);
  std::memcpy(&lo, a.data() + 8, 8);
  return lo ^ (hi * 0x9E3779B97F4A7C15ull);
}

core::RateDecision SignupLimit::take(const Address& address, uint64_t now_ns) {
  if (per_hour_ == 0) return {};
  const uint64_t interval = 3'600'000'000'000ull / per_hour_;
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(address);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxAddresses)  // forget the addresses whose buckets are full again
      std::erase_if(buckets_, [&](const auto& b) {
        return b.second.load(std::memory_order_relaxed) <= now_ns;
      });
    if (buckets_.size() >= kMaxAddresses) {
      core::RateDecision refused;
      refused.limited = true;
      refused.allowed = false;
      refused.limit = per_hour_;
      refused.retry_after_s = 60;
      return refused;
    }
    it = buckets_.try_emplace(address, 0).first;
  }
  return core::take_token_every(it->second, interval, per_hour_, now_ns);
}

}  // namespace keygate::handlers
