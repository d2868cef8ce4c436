#include "handlers/metrics.hpp"

#include <cstdio>
#include <memory>

#include "core/clock.hpp"
#include "core/committer.hpp"
#include "core/index.hpp"
#include "core/status_counts.hpp"

namespace keygate::handlers {

namespace {

constexpr uint16_t kStatuses[kStatusSlots] = {200, 201, 400, 401, 403, 404, 405, 408,
                                              409, 413, 429, 431, 500, 503, 204, 0};
// Upper bounds: verification answers in microseconds, writes in milliseconds.
constexpr uint64_t kBoundsNs[kLatencyBuckets] = {10'000,    25'000,     50'000,     100'000,
                                                 250'000,   500'000,    1'000'000,  2'500'000,
                                                 5'000'000, 10'000'000, 50'000'000, 250'000'000};

// A shard has one writer, its thread: a relaxed load and store is a correct increment
// there, and avoids the locked read-modify-write a fetch_add costs on every request.
// The scraping thread reads whole 64-bit values, which x86-64 and ARMv8 load atomically.
inline void bump(std::atomic<uint64_t>& counter, uint64_t by = 1) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

size_t status_slot(uint16_t status) {
  for (size_t i = 0; i < kStatusSlots - 1; ++i)
    if (kStatuses[i] == status) return i;
  return kStatusSlots - 1;  // any other
}

using core::appendf;

}  // namespace

MetricsShard& Metrics::shard() noexcept {
  thread_local MetricsShard* mine = nullptr;
  thread_local const Metrics* owner = nullptr;
  if (owner != this) {
    auto s = std::make_unique<MetricsShard>();
    mine = s.get();
    owner = this;
    std::lock_guard lock(mutex_);
    const_cast<Metrics*>(this)->shards_.push_back(std::move(s));
  }
  return *mine;
}

void Metrics::record_request(uint16_t route, uint16_t status, uint64_t elapsed_ns) noexcept {
  if (route >= kMaxRoutes) return;
  MetricsShard& s = shard();
  bump(s.requests[route][status_slot(status)]);
  size_t b = 0;
  while (b < kLatencyBuckets && elapsed_ns > kBoundsNs[b]) ++b;
  bump(s.latency[route][b]);
  bump(s.latency_sum_ns[route], elapsed_ns);
}

void Metrics::record_verification(core::VerifyCode code) noexcept {
  bump(shard().verifications[static_cast<size_t>(code)]);
}

std::string Metrics::render(const core::Index& index, const core::Committer& committer,
                            unsigned connections, const net::BufferBudget* buffers) const {
  std::string out;
  out.reserve(16384);
  std::lock_guard lock(mutex_);
  auto sum = [&](auto get) {
    uint64_t v = 0;
    for (const auto& s : shards_) v += get(*s).load(std::memory_order_relaxed);
    return v;
  };

  out +=
      "# HELP keygate_http_requests_total HTTP requests answered, by route and status.\n"
      "# TYPE keygate_http_requests_total counter\n";
  for (size_t r = 0; r < routes_.size() && r < kMaxRoutes; ++r)
    for (size_t st = 0; st < kStatusSlots; ++st) {
      uint64_t v = sum(
          [&](const MetricsShard& s) -> const std::atomic<uint64_t>& { return s.requests[r][st]; });
      if (v == 0) continue;
      if (kStatuses[st])
        appendf(out, "keygate_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
                routes_[r].c_str(), kStatuses[st], static_cast<unsigned long long>(v));
      else
        appendf(out, "keygate_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                routes_[r].c_str(), static_cast<unsigned long long>(v));
    }

  out +=
      "# HELP keygate_http_request_duration_seconds Time from a request's parse to its response, "
      "by route.\n"
      "# TYPE keygate_http_request_duration_seconds histogram\n";
  for (size_t r = 0; r < routes_.size() && r < kMaxRoutes; ++r) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kLatencyBuckets; ++b) {
      cumulative += sum(
          [&](const MetricsShard& s) -> const std::atomic<uint64_t>& { return s.latency[r][b]; });
      if (b < kLatencyBuckets)
        appendf(out, "keygate_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                routes_[r].c_str(), static_cast<double>(kBoundsNs[b]) / 1e9,
                static_cast<unsigned long long>(cumulative));
      else
        appendf(out,
                "keygate_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                routes_[r].c_str(), static_cast<unsigned long long>(cumulative));
    }
    const uint64_t ns = sum(
        [&](const MetricsShard& s) -> const std::atomic<uint64_t>& { return s.latency_sum_ns[r]; });
    appendf(out, "keygate_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n",
            routes_[r].c_str(), static_cast<double>(ns) / 1e9);
    appendf(out, "keygate_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
            routes_[r].c_str(), static_cast<unsigned long long>(cumulative));
  }

  out +=
      "# HELP keygate_build_info The version of keygate serving.\n# TYPE keygate_build_info "
      "gauge\nkeygate_build_info{version=\"" KEYGATE_VERSION "\"} 1\n";
  out +=
      "# HELP keygate_verifications_total Key verifications (GET /v1/auth, POST /v1/keys/verify), "
      "by result code.\n"
      "# TYPE keygate_verifications_total counter\n";
  for (size_t c = 0; c < kVerifyCodes; ++c) {
    uint64_t v = sum(
        [&](const MetricsShard& s) -> const std::atomic<uint64_t>& { return s.verifications[c]; });
    appendf(out, "keygate_verifications_total{code=\"%s\"} %llu\n",
            std::string(core::to_string(static_cast<core::VerifyCode>(c))).c_str(),
            static_cast<unsigned long long>(v));
  }

  appendf(out,
          "# HELP keygate_connections Open client connections.\n# TYPE keygate_connections "
          "gauge\nkeygate_connections %u\n",
          connections);
  if (buffers) {
    appendf(out,
            "# HELP keygate_connection_buffer_bytes Receive-buffer bytes held beyond connections' "
            "resting size.\n# TYPE keygate_connection_buffer_bytes "
            "gauge\nkeygate_connection_buffer_bytes %llu\n",
            static_cast<unsigned long long>(buffers->used()));
    appendf(out,
            "# HELP keygate_connection_buffer_limit_bytes The budget for them "
            "(--max-buffer-bytes).\n# TYPE keygate_connection_buffer_limit_bytes "
            "gauge\nkeygate_connection_buffer_limit_bytes %llu\n",
            static_cast<unsigned long long>(buffers->limit()));
    appendf(
        out,
        "# HELP keygate_connection_buffer_refusals_total Requests answered 503 because their "
        "buffer would have exceeded the budget.\n# TYPE keygate_connection_buffer_refusals_total "
        "counter\nkeygate_connection_buffer_refusals_total %llu\n",
        static_cast<unsigned long long>(buffers->refusals()));
  }
  committer.write_metrics(out);

  // Kept by the writer as it publishes (core/status_counts.hpp): a scrape never walks the
  // keys, so it costs the same at 10 M keys as at 1 k and holds no read section for long.
  const core::OrgStatusCounts orgs = index.counts().organizations();
  const core::KeyStatusCounts keys = index.counts().keys();
  out +=
      "# HELP keygate_organizations Organizations by status.\n# TYPE keygate_organizations gauge\n";
  appendf(
      out,
      "keygate_organizations{status=\"active\"} %llu\nkeygate_organizations{status=\"suspended\"} "
      "%llu\n",
      static_cast<unsigned long long>(orgs.active),
      static_cast<unsigned long long>(orgs.suspended));
  out +=
      "# HELP keygate_api_keys API keys by status (expiries counted within a second).\n# TYPE "
      "keygate_api_keys gauge\n";
  const std::pair<const char*, uint64_t> by_status[] = {{"active", keys.active},
                                                        {"rotating", keys.rotating},
                                                        {"expired", keys.expired},
                                                        {"revoked", keys.revoked}};
  for (const auto& [name, n] : by_status)
    appendf(out, "keygate_api_keys{status=\"%s\"} %llu\n", name,
            static_cast<unsigned long long>(n));
  appendf(out,
          "# HELP keygate_api_keys_reclaimed_total Revoked or expired keys removed "
          "--reclaim-keys-after past their end, since the start.\n# TYPE "
          "keygate_api_keys_reclaimed_total counter\nkeygate_api_keys_reclaimed_total %llu\n",
          static_cast<unsigned long long>(index.reclaimed_keys()));
  // Audit events in memory (bounded by --audit-memory-bytes) and in the latest snapshot,
  // whose index is what they hold in memory there (core/audit.hpp).
  const std::shared_ptr<const core::AuditDisk> disk = index.audit().disk();
  appendf(out,
          "# HELP keygate_audit_memory_bytes Memory held by audit events: in memory since the "
          "last snapshot, and the index of those read from it.\n# TYPE "
          "keygate_audit_memory_bytes gauge\nkeygate_audit_memory_bytes{held=\"events\"} "
          "%llu\nkeygate_audit_memory_bytes{held=\"snapshot_index\"} %llu\n",
          static_cast<unsigned long long>(index.audit().memory_bytes()),
          static_cast<unsigned long long>(disk ? disk->memory_bytes() : 0));
  appendf(out,
          "# HELP keygate_audit_snapshot_events Audit events read from the latest snapshot.\n"
          "# TYPE keygate_audit_snapshot_events gauge\nkeygate_audit_snapshot_events %llu\n",
          static_cast<unsigned long long>(disk ? disk->size() : 0));
  return out;
}

}  // namespace keygate::handlers
