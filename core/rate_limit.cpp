#include "core/rate_limit.hpp"

#include <algorithm>

namespace keygate::core {

RateDecision take_token(std::atomic<uint64_t>& tat_ns, RateLimit limit, uint64_t now_ns) noexcept {
  if (limit.requests_per_second == 0) return {};
  // Above 10^9 per second the interval would round to 0 (and divide by it below): the
  // flags and the API refuse such rates, and this keeps the arithmetic sound regardless.
  return take_token_every(tat_ns, 1'000'000'000ull / limit.requests_per_second, limit.burst,
                          now_ns);
}

RateDecision take_token(std::atomic<uint64_t>& tat_ns, RateLimit limit, uint32_t nodes,
                        uint64_t now_ns) noexcept {
  if (limit.requests_per_second == 0) return {};
  if (nodes <= 1) return take_token(tat_ns, limit, now_ns);
  return take_token_every(tat_ns, 1'000'000'000ull * nodes / limit.requests_per_second,
                          limit.burst / nodes, now_ns);
}

RateDecision take_token_every(std::atomic<uint64_t>& tat_ns, uint64_t interval_ns,
                              uint32_t burst_in, uint64_t now_ns) noexcept {
  RateDecision d;
  d.limited = true;
  const uint32_t burst = std::max<uint32_t>(burst_in, 1);
  d.limit = burst;
  const uint64_t interval = std::max<uint64_t>(interval_ns, 1);  // one token
  const uint64_t tolerance = interval * burst;                   // a full bucket
  uint64_t tat = tat_ns.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t next = std::max(tat, now_ns) + interval;
    const uint64_t debt = next - now_ns;  // time the bucket needs to refill completely
    if (debt > tolerance) {
      d.allowed = false;
      d.remaining = 0;
      const uint64_t wait = debt - tolerance;
      d.reset_ms = static_cast<uint32_t>((debt - interval) / 1'000'000);
      d.retry_after_s =
          static_cast<uint32_t>(std::max<uint64_t>(1, (wait + 999'999'999) / 1'000'000'000));
      return d;
    }
    // relaxed: the bucket guards nothing but itself; the CAS orders its own updates.
    if (tat_ns.compare_exchange_weak(tat, next, std::memory_order_relaxed)) {
      d.remaining = static_cast<uint32_t>((tolerance - debt) / interval);
      d.reset_ms = static_cast<uint32_t>((debt + 999'999) / 1'000'000);
      return d;
    }
  }
}

}  // namespace keygate::core
