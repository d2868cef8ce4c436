// The log's figures for /metrics: what an operator watches to see the disk (Redis's
// INFO persistence): appends, fsync latency, failures, whether writes are taken, snapshots.
#include "core/clock.hpp"
#include "persistence/journal.hpp"

namespace keygate::persistence {

using core::appendf;

void Journal::write_metrics(std::string& out) const {
  const JournalStats& js = stats_;
  auto u = [](const std::atomic<uint64_t>& a) {
    return static_cast<unsigned long long>(a.load(std::memory_order_relaxed));
  };
  appendf(out,
          "# HELP keygate_log_appends_total Batches appended to the log.\n# TYPE "
          "keygate_log_appends_total counter\nkeygate_log_appends_total %llu\n",
          u(js.batches));
  appendf(out,
          "# HELP keygate_log_records_total Records appended to the log.\n# TYPE "
          "keygate_log_records_total counter\nkeygate_log_records_total %llu\n",
          u(js.records));
  appendf(
      out,
      "# HELP keygate_log_bytes_total Bytes appended to the log.\n# TYPE keygate_log_bytes_total "
      "counter\nkeygate_log_bytes_total %llu\n",
      u(js.bytes));
  appendf(out,
          "# HELP keygate_log_write_failures_total Appends or fsyncs that failed.\n# TYPE "
          "keygate_log_write_failures_total counter\nkeygate_log_write_failures_total %llu\n",
          u(js.failures));
  appendf(
      out,
      "# HELP keygate_log_writable 1 while the log accepts writes.\n# TYPE keygate_log_writable "
      "gauge\nkeygate_log_writable %d\n",
      writable() ? 1 : 0);
  out +=
      "# HELP keygate_fsync_duration_seconds Latency of the log's fdatasync calls.\n"
      "# TYPE keygate_fsync_duration_seconds histogram\n";
  uint64_t fsyncs = 0;
  for (size_t b = 0; b <= kFsyncBuckets; ++b) {
    fsyncs += js.fsync_buckets[b].load(std::memory_order_relaxed);
    if (b < kFsyncBuckets)
      appendf(out, "keygate_fsync_duration_seconds_bucket{le=\"%g\"} %llu\n",
              static_cast<double>(kFsyncBucketsNs[b]) / 1e9,
              static_cast<unsigned long long>(fsyncs));
    else
      appendf(out, "keygate_fsync_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
              static_cast<unsigned long long>(fsyncs));
  }
  appendf(
      out, "keygate_fsync_duration_seconds_sum %.9f\nkeygate_fsync_duration_seconds_count %llu\n",
      static_cast<double>(js.fsync_ns_total.load()) / 1e9, static_cast<unsigned long long>(fsyncs));
  appendf(out,
          "# HELP keygate_fsync_max_seconds The slowest fdatasync so far.\n# TYPE "
          "keygate_fsync_max_seconds gauge\nkeygate_fsync_max_seconds %.9f\n",
          static_cast<double>(js.fsync_ns_max.load()) / 1e9);
  const uint64_t snap_ms = js.snapshot_unix_ms.load();
  appendf(out,
          "# HELP keygate_snapshots_total Snapshots written.\n# TYPE keygate_snapshots_total "
          "counter\nkeygate_snapshots_total %llu\n",
          u(js.snapshots));
  appendf(out,
          "# HELP keygate_snapshot_age_seconds Since the last snapshot was written (-1: none since "
          "start).\n# TYPE keygate_snapshot_age_seconds gauge\nkeygate_snapshot_age_seconds %.3f\n",
          snap_ms ? static_cast<double>(core::now_ms() - snap_ms) / 1e3 : -1.0);
  appendf(out,
          "# HELP keygate_snapshot_size_bytes Size of the last snapshot.\n# TYPE "
          "keygate_snapshot_size_bytes gauge\nkeygate_snapshot_size_bytes %llu\n",
          u(js.snapshot_bytes));
}

}  // namespace keygate::persistence
