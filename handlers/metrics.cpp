#include "handlers/metrics.hpp"

#include <cstdio>
#include <memory>

#include "core/clock.hpp"
#include "core/index.hpp"
#include "core/status_counts.hpp"
#include "persistence/journal.hpp"

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

void line(std::string& out, const char* fmt, auto... args) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, fmt, args...);
  if (n > 0) out.append(buf, static_cast<size_t>(std::min<int>(n, sizeof buf - 1)));
}

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

std::string Metrics::render(const core::Index& index, const persistence::Journal& journal,
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
        line(out, "keygate_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
             routes_[r].c_str(), kStatuses[st], static_cast<unsigned long long>(v));
      else
        line(out, "keygate_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
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
        line(out, "keygate_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
             routes_[r].c_str(), static_cast<double>(kBoundsNs[b]) / 1e9,
             static_cast<unsigned long long>(cumulative));
      else
        line(out, "keygate_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
             routes_[r].c_str(), static_cast<unsigned long long>(cumulative));
    }
    const uint64_t ns = sum(
        [&](const MetricsShard& s) -> const std::atomic<uint64_t>& { return s.latency_sum_ns[r]; });
    line(out, "keygate_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n", routes_[r].c_str(),
         static_cast<double>(ns) / 1e9);
    line(out, "keygate_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
         routes_[r].c_str(), static_cast<unsigned long long>(cumulative));
  }

  out +=
      "# HELP keygate_verifications_total Key verifications (GET /v1/auth, POST /v1/keys/verify), "
      "by result code.\n"
      "# TYPE keygate_verifications_total counter\n";
  for (size_t c = 0; c < kVerifyCodes; ++c) {
    uint64_t v = sum(
        [&](const MetricsShard& s) -> const std::atomic<uint64_t>& { return s.verifications[c]; });
    line(out, "keygate_verifications_total{code=\"%s\"} %llu\n",
         std::string(core::to_string(static_cast<core::VerifyCode>(c))).c_str(),
         static_cast<unsigned long long>(v));
  }

  const auto& js = journal.stats();
  auto u = [](const std::atomic<uint64_t>& a) {
    return static_cast<unsigned long long>(a.load(std::memory_order_relaxed));
  };
  line(out,
       "# HELP keygate_connections Open client connections.\n# TYPE keygate_connections "
       "gauge\nkeygate_connections %u\n",
       connections);
  if (buffers) {
    line(out,
         "# HELP keygate_connection_buffer_bytes Receive-buffer bytes held beyond connections' "
         "resting size.\n# TYPE keygate_connection_buffer_bytes "
         "gauge\nkeygate_connection_buffer_bytes %llu\n",
         static_cast<unsigned long long>(buffers->used()));
    line(out,
         "# HELP keygate_connection_buffer_limit_bytes The budget for them "
         "(--max-buffer-bytes).\n# TYPE keygate_connection_buffer_limit_bytes "
         "gauge\nkeygate_connection_buffer_limit_bytes %llu\n",
         static_cast<unsigned long long>(buffers->limit()));
    line(out,
         "# HELP keygate_connection_buffer_refusals_total Requests answered 503 because their "
         "buffer would have exceeded the budget.\n# TYPE keygate_connection_buffer_refusals_total "
         "counter\nkeygate_connection_buffer_refusals_total %llu\n",
         static_cast<unsigned long long>(buffers->refusals()));
  }
  line(out,
       "# HELP keygate_log_appends_total Batches appended to the log.\n# TYPE "
       "keygate_log_appends_total counter\nkeygate_log_appends_total %llu\n",
       u(js.batches));
  line(out,
       "# HELP keygate_log_records_total Records appended to the log.\n# TYPE "
       "keygate_log_records_total counter\nkeygate_log_records_total %llu\n",
       u(js.records));
  line(out,
       "# HELP keygate_log_bytes_total Bytes appended to the log.\n# TYPE keygate_log_bytes_total "
       "counter\nkeygate_log_bytes_total %llu\n",
       u(js.bytes));
  line(out,
       "# HELP keygate_log_write_failures_total Appends or fsyncs that failed.\n# TYPE "
       "keygate_log_write_failures_total counter\nkeygate_log_write_failures_total %llu\n",
       u(js.failures));
  line(out,
       "# HELP keygate_log_writable 1 while the log accepts writes.\n# TYPE keygate_log_writable "
       "gauge\nkeygate_log_writable %d\n",
       journal.writable() ? 1 : 0);
  out +=
      "# HELP keygate_fsync_duration_seconds Latency of the log's fdatasync calls.\n"
      "# TYPE keygate_fsync_duration_seconds histogram\n";
  uint64_t fsyncs = 0;
  for (size_t b = 0; b <= persistence::kFsyncBuckets; ++b) {
    fsyncs += js.fsync_buckets[b].load(std::memory_order_relaxed);
    if (b < persistence::kFsyncBuckets)
      line(out, "keygate_fsync_duration_seconds_bucket{le=\"%g\"} %llu\n",
           static_cast<double>(persistence::kFsyncBucketsNs[b]) / 1e9,
           static_cast<unsigned long long>(fsyncs));
    else
      line(out, "keygate_fsync_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
           static_cast<unsigned long long>(fsyncs));
  }
  line(out, "keygate_fsync_duration_seconds_sum %.9f\nkeygate_fsync_duration_seconds_count %llu\n",
       static_cast<double>(js.fsync_ns_total.load()) / 1e9,
       static_cast<unsigned long long>(fsyncs));
  line(out,
       "# HELP keygate_fsync_max_seconds The slowest fdatasync so far.\n# TYPE "
       "keygate_fsync_max_seconds gauge\nkeygate_fsync_max_seconds %.9f\n",
       static_cast<double>(js.fsync_ns_max.load()) / 1e9);
  const uint64_t snap_ms = js.snapshot_unix_ms.load();
  line(out,
       "# HELP keygate_snapshots_total Snapshots written.\n# TYPE keygate_snapshots_total "
       "counter\nkeygate_snapshots_total %llu\n",
       u(js.snapshots));
  line(out,
       "# HELP keygate_snapshot_age_seconds Since the last snapshot was written (-1: none since "
       "start).\n# TYPE keygate_snapshot_age_seconds gauge\nkeygate_snapshot_age_seconds %.3f\n",
       snap_ms ? static_cast<double>(core::now_ms() - snap_ms) / 1e3 : -1.0);
  line(out,
       "# HELP keygate_snapshot_size_bytes Size of the last snapshot.\n# TYPE "
       "keygate_snapshot_size_bytes gauge\nkeygate_snapshot_size_bytes %llu\n",
       u(js.snapshot_bytes));

  // Kept by the writer as it publishes (core/status_counts.hpp): a scrape never walks the
  // keys, so it costs the same at 10 M keys as at 1 k and holds no read section for long.
  const core::OrgStatusCounts orgs = index.counts().organizations();
  const core::KeyStatusCounts keys = index.counts().keys();
  out +=
      "# HELP keygate_organizations Organizations by status.\n# TYPE keygate_organizations gauge\n";
  line(out,
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
    line(out, "keygate_api_keys{status=\"%s\"} %llu\n", name, static_cast<unsigned long long>(n));
  return out;
}

}  // namespace keygate::handlers
