// Metrics: counters and latency histograms for GET /metrics (Prometheus text format).
// Each thread records into its own cache-line-aligned shard, of which it is the only
// writer (relaxed loads and stores, no locked instruction), so the hot path never shares
// a cache line with another core; rendering sums the shards.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/verify.hpp"
#include "net/buffer_budget.hpp"

namespace keygate::core {
class Index;
class Committer;
}  // namespace keygate::core

namespace keygate::handlers {

inline constexpr size_t kMaxRoutes = 48;
inline constexpr size_t kStatusSlots = 16;  // the statuses keygate answers with
inline constexpr size_t kLatencyBuckets = 12;
inline constexpr size_t kVerifyCodes = core::kVerifyCodeCount;

struct alignas(64) MetricsShard {
  std::array<std::array<std::atomic<uint64_t>, kStatusSlots>, kMaxRoutes> requests{};
  std::array<std::array<std::atomic<uint64_t>, kLatencyBuckets + 1>, kMaxRoutes>
      latency{};  // last: +Inf
  std::array<std::atomic<uint64_t>, kMaxRoutes> latency_sum_ns{};
  std::array<std::atomic<uint64_t>, kVerifyCodes> verifications{};
};

class Metrics {
 public:
  // Hot path: relaxed increments on this thread's shard.
  void record_request(uint16_t route, uint16_t status, uint64_t elapsed_ns) noexcept;
  void record_verification(core::VerifyCode code) noexcept;

  // Route names for labels, in router order ("GET /v1/auth"); set once at start.
  void set_routes(std::vector<std::string> names) { routes_ = std::move(names); }
  std::string render(const core::Index& index, const core::Committer& committer,
                     unsigned connections, const net::BufferBudget* buffers = nullptr) const;

 private:
  MetricsShard& shard() noexcept;
  std::vector<std::string> routes_;
  mutable std::mutex mutex_;  // guards shards_ (registration and rendering only)
  std::vector<std::unique_ptr<MetricsShard>> shards_;
};

}  // namespace keygate::handlers
