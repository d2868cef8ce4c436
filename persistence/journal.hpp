// Journal: the commit thread (docs/architecture.md rules 1 and 3). Takes every queued command as
// one batch, executes each against the state machine, appends the records they staged, makes the
// batch durable with one fdatasync (group commit), publishes it to the index, and only then
// completes the submissions. Starts snapshots when the log has grown. submit() is thread-safe;
// everything else belongs to the commit thread.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/commands.hpp"
#include "core/committer.hpp"
#include "core/state_machine.hpp"
#include "persistence/data_dir.hpp"
#include "persistence/recovery.hpp"
#include "persistence/segment.hpp"
#include "persistence/snapshot.hpp"

namespace keygate::persistence {

enum class FsyncMode { always, everysec };

struct JournalOptions {
  FsyncMode fsync = FsyncMode::always;
  uint64_t snapshot_bytes = 64ull << 20;
  // Audit events older than this are left out of each snapshot and dropped from memory
  // then (--audit-retention); 0: no events are recorded at all.
  uint64_t audit_retention_ms = 90ull * 86'400'000;
  // A snapshot is also taken when memory holds this many bytes of audit events (the rest
  // are read from the snapshot: core/audit.hpp). --audit-memory-bytes.
  size_t audit_memory_bytes = size_t{128} << 20;
  // Called on the commit thread when, with --fsync=everysec, published changes can no
  // longer be made durable (see Journal::resync). main.cpp ends the process there so that
  // systemd restarts it from what the log holds; if it returns, the journal refuses every
  // further write.
  std::function<void(const std::string& why)> on_durability_lost;
};

// Upper bounds of the fsync latency histogram, in nanoseconds (+Inf follows the last):
// a local NVMe answers in tens of microseconds, a virtual disk in milliseconds.
inline constexpr uint64_t kFsyncBucketsNs[] = {
    50'000,     100'000,    250'000,    500'000,     1'000'000,   2'500'000,    5'000'000,
    10'000'000, 25'000'000, 50'000'000, 100'000'000, 250'000'000, 1'000'000'000};
inline constexpr size_t kFsyncBuckets = std::size(kFsyncBucketsNs);

// Counters for /metrics and logs; written by the commit and snapshot threads.
struct JournalStats {
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> fsync_ns_total{0};
  std::atomic<uint64_t> fsync_ns_max{0};
  std::array<std::atomic<uint64_t>, kFsyncBuckets + 1>
      fsync_buckets{};  // not cumulative; last: +Inf
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> snapshots{0};
  std::atomic<uint64_t> snapshot_bytes{0};
  std::atomic<uint64_t> snapshot_records{0};
  std::atomic<uint64_t> snapshot_unix_ms{0};
  std::atomic<uint64_t> snapshot_pause_ns{0};  // how long writes waited for the segment switch
  std::atomic<uint64_t> snapshot_write_ns{0};
};

class Journal final : public core::Committer {
 public:
  using Submission = core::Submission;

  Journal(const DataDir& dir, core::StateMachine& state, const RecoveryReport& recovered,
          JournalOptions options);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  void start();
  void submit(Submission* s) override;
  // Completes everything queued, syncs the log, waits for a running snapshot, stops.
  void stop();
  void request_snapshot();
  bool writable() const noexcept override { return writable_.load(std::memory_order_relaxed); }
  // The log's figures: appends, fsync latency, failures, snapshots
  // (persistence/journal_metrics.cpp).
  void write_metrics(std::string& out) const override;
  const JournalStats& stats() const noexcept { return stats_; }

 private:
  void run();
  void commit(std::vector<Submission*>& batch);
  bool sync_segment();
  bool resync();
  void maybe_snapshot(bool requested);
  bool ensure_segment();

  const DataDir& dir_;
  core::StateMachine& state_;
  JournalOptions options_;
  Segment segment_;
  uint64_t next_seq_;
  uint64_t snapshot_base_bytes_ = 0;  // segment size when it was started
  std::chrono::steady_clock::time_point last_sync_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Submission*> queue_;
  bool stopping_ = false;
  bool snapshot_requested_ = false;
  std::thread thread_;
  std::thread snapshotter_;
  std::atomic<bool> snapshot_running_{false};
  std::atomic<bool> writable_{true};
  bool durability_lost_ = false;  // everysec: memory ran ahead of what the log can become
  // everysec: the bytes appended (and published) since the last fdatasync that succeeded,
  // and how many records they hold. Kept so that a failed fdatasync can be answered by
  // writing them again instead of serving changes the disk may not have.
  std::string unsynced_;
  uint64_t unsynced_records_ = 0;
  JournalStats stats_;
  std::string buffer_;
  std::string payload_;
  std::string group_;
};

}  // namespace keygate::persistence
