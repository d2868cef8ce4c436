#include "persistence/journal.hpp"

#include <algorithm>
#include <chrono>

#include "core/clock.hpp"
#include "core/log.hpp"
#include "core/thread_name.hpp"
#include "persistence/codec.hpp"
#include "persistence/record.hpp"

namespace keygate::persistence {

namespace {

using Clock = std::chrono::steady_clock;

core::Error storage_error() {
  return core::make_error(
      core::ErrorCode::storage_unavailable,
      "The server cannot write to its log right now (disk full or I/O error), so "
      "nothing was changed. Retry later; reads and verification still work.");
}

}  // namespace

Journal::Journal(const DataDir& dir, core::StateMachine& state, const RecoveryReport& recovered,
                 JournalOptions options)
    : dir_(dir), state_(state), options_(options), next_seq_(recovered.next_seq) {
  std::string error;
  if (recovered.has_segment) {
    if (!Segment::open(dir_, recovered.segment_seq, recovered.segment_size,
                       recovered.segment_records, segment_, error))
      throw StartupError(error);
  } else if (!Segment::create(dir_, next_seq_, segment_, error)) {
    throw StartupError(error);
  }
  snapshot_base_bytes_ = 0;
  last_sync_ = Clock::now();
  buffer_.reserve(1 << 16);
}

Journal::~Journal() {
  stop();
}

void Journal::start() {
  thread_ = std::thread([this] {
    core::name_thread("kg-journal");
    run();
  });
}

void Journal::submit(Submission* s) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(s);
  }
  wake_.notify_one();
}

void Journal::request_snapshot() {
  {
    std::lock_guard lock(mutex_);
    snapshot_requested_ = true;
  }
  wake_.notify_one();
}

void Journal::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  if (snapshotter_.joinable()) snapshotter_.join();
}

void Journal::run() {
  core::RcuThread rcu;
  std::vector<Submission*> batch;
  batch.reserve(256);
  for (;;) {
    bool snapshot = false;
    {
      std::unique_lock lock(mutex_);
      // With --fsync=everysec the loop also wakes every second to sync what is pending.
      wake_.wait_for(lock, std::chrono::seconds(1),
                     [&] { return stopping_ || snapshot_requested_ || !queue_.empty(); });
      if (stopping_ && queue_.empty()) break;
      batch.swap(queue_);
      snapshot = std::exchange(snapshot_requested_, false);
    }
    if (!batch.empty()) commit(batch);
    batch.clear();
    // Keys whose expiry or grace period has just ended move to "expired" in the counts
    // (core/status_counts.hpp); this loop runs at least once a second.
    state_.index().advance_clock(core::now_ms());
    if (options_.fsync == FsyncMode::everysec && segment_.dirty() &&
        Clock::now() - last_sync_ >= std::chrono::seconds(1))
      sync_segment();
    maybe_snapshot(snapshot);
  }
  if (segment_.dirty()) sync_segment();
}

bool Journal::ensure_segment() {
  if (durability_lost_) return false;
  if (segment_.usable()) return true;
  // everysec: what was published since the last good sync must be written again, not cut.
  if (!unsynced_.empty()) return resync();
  std::string error;
  if (segment_.reopen(error)) {
    core::log(core::Level::warn, "log.reopened", {{"file", segment_.path()}});
    writable_.store(true, std::memory_order_relaxed);
    return true;
  }
  core::log(core::Level::error, "log.unwritable", {{"error", error}});
  writable_.store(false, std::memory_order_relaxed);
  return false;
}

bool Journal::sync_segment() {
  std::string error;
  const auto t0 = Clock::now();
  const bool ok = segment_.sync(error);
  const auto ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
  last_sync_ = Clock::now();
  stats_.fsync_ns_total.fetch_add(ns, std::memory_order_relaxed);
  if (ns > stats_.fsync_ns_max.load(std::memory_order_relaxed))
    stats_.fsync_ns_max.store(ns, std::memory_order_relaxed);
  size_t bucket = 0;
  while (bucket < kFsyncBuckets && ns > kFsyncBucketsNs[bucket]) ++bucket;
  stats_.fsync_buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  if (ns > 1'000'000'000)
    core::log(core::Level::warn, "log.slow_fsync", {{"seconds", static_cast<double>(ns) / 1e9}});
  if (ok) {
    unsynced_.clear();
    unsynced_records_ = 0;
    return true;
  }
  stats_.failures.fetch_add(1, std::memory_order_relaxed);
  writable_.store(false, std::memory_order_relaxed);
  core::log(core::Level::error, "log.fsync_failed", {{"error", error}});
  return resync();
}

// After a failed fdatasync (FORMAT.md, "Failures while running"). The fsync is never simply
// retried: the kernel may have dropped the dirty pages it could not write and would report
// the next fsync as a success over lost data (PostgreSQL's "fsyncgate").
//
// With --fsync=always nothing that the failed sync covered was published or acknowledged:
// the batch is discarded by commit(), and the next batch reopens the segment at its last
// durable size (ensure_segment). With --fsync=everysec the records written since the last
// good sync are already visible, and were acknowledged. Cutting them from the log while
// memory keeps serving them would make the running server and its log disagree: a key
// that verifies now would be gone after a restart, and later records could refer to it.
// So they are written again from memory: the segment is reopened, cut back to its durable
// size, the kept bytes are appended into fresh pages and fdatasync'ed, and the file is
// re-read and verified. If that fails too, memory is ahead of anything the log can still
// become: the journal refuses every write from then on and reports it, and the server ends
// (main.cpp) so that it restarts from what is durable, losing at most the changes of the
// last second, as everysec promises (Redis's contract), and never disagreeing with itself.
bool Journal::resync() {
  if (unsynced_.empty()) return false;
  std::string error;
  if (segment_.reopen(error) && segment_.append(unsynced_, unsynced_records_, error) &&
      segment_.sync(error)) {
    core::log(core::Level::warn, "log.resynced",
              {{"file", segment_.path()},
               {"records", static_cast<unsigned long long>(unsynced_records_)},
               {"bytes", static_cast<unsigned long long>(unsynced_.size())}});
    unsynced_.clear();
    unsynced_records_ = 0;
    writable_.store(true, std::memory_order_relaxed);
    return true;
  }
  durability_lost_ = true;
  const std::string why =
      "changes published since the last fdatasync cannot be made durable: " + error;
  core::log(core::Level::error, "log.durability_lost", {{"error", why}});
  if (options_.on_durability_lost) options_.on_durability_lost(why);
  return false;
}

void Journal::commit(std::vector<Submission*>& batch) {
  if (!ensure_segment()) {
    for (Submission* s : batch) {
      s->outcome = {};
      s->outcome.error = storage_error();
      s->done(s);
    }
    return;
  }
  buffer_.clear();
  uint64_t records = 0;
  for (Submission* s : batch) {
    const size_t before = state_.staged().size();
    s->outcome = state_.execute(s->command, core::now_ms(), s->actor, s->authority);
    // A command's changes and its audit event are one record, or one group of records:
    // after a torn write, recovery finds all of them or none.
    const size_t after = state_.staged().size();
    if (after > before) {
      append_command(state_.staged(), before, after, payload_, group_, buffer_);
      ++records;
    }
  }
  bool ok = true;
  if (records) {
    std::string error;
    ok = segment_.append(buffer_, records, error);
    if (!ok) {
      // Nothing of the batch remains in the file; the next batch tries again, so writes
      // resume by themselves once space returns. Until then /readyz says not ready.
      writable_.store(false, std::memory_order_relaxed);
      stats_.failures.fetch_add(1, std::memory_order_relaxed);
      core::log(core::Level::error, "log.append_failed", {{"error", error}});
    } else if (options_.fsync == FsyncMode::always) {
      ok = sync_segment();
    } else {
      unsynced_.append(buffer_);
      unsynced_records_ += records;
    }
  }
  if (ok) {
    // Durable (or, with everysec, written): now readers may see it, and only now may the
    // requests be answered. A revocation is visible everywhere before its response leaves.
    state_.publish();
    next_seq_ += records;
    stats_.batches.fetch_add(1, std::memory_order_relaxed);
    stats_.records.fetch_add(records, std::memory_order_relaxed);
    stats_.bytes.fetch_add(buffer_.size(), std::memory_order_relaxed);
    writable_.store(true, std::memory_order_relaxed);
  } else {
    state_.discard();
    for (Submission* s : batch)
      if (!s->outcome.error) s->outcome = {storage_error(), {}, {}, {}};
  }
  for (Submission* s : batch) s->done(s);
}

void Journal::maybe_snapshot(bool requested) {
  if (snapshot_running_.load(std::memory_order_acquire)) return;
  const uint64_t grown = segment_.size() - snapshot_base_bytes_;
  // Also when memory holds --audit-memory-bytes of audit events: the snapshot takes them
  // (core/audit.hpp), so that a tenant writing fast cannot grow memory without bound.
  const bool audit_full = state_.index().audit().snapshot_due(options_.audit_memory_bytes);
  if (!requested && !audit_full && grown < options_.snapshot_bytes) return;
  if (!requested && segment_.next_seq() == segment_.first_seq()) return;
  if (snapshotter_.joinable()) snapshotter_.join();
  if (!segment_.usable() || (segment_.dirty() && !sync_segment())) return;

  // The only pause writes see: a new segment starts at `seq`; the snapshot then covers
  // everything before it (and perhaps more, harmlessly: FORMAT.md "Snapshots").
  const auto t0 = Clock::now();
  const uint64_t seq = segment_.next_seq();
  Segment fresh;
  std::string error;
  if (segment_.next_seq() != segment_.first_seq()) {
    if (!Segment::create(dir_, seq, fresh, error)) {
      core::log(core::Level::error, "snapshot.failed", {{"error", error}});
      return;
    }
    segment_ = std::move(fresh);
  }
  snapshot_base_bytes_ = 0;
  stats_.snapshot_pause_ns.store(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));

  snapshot_running_.store(true, std::memory_order_release);
  snapshotter_ = std::thread([this, seq] {
    core::name_thread("kg-snapshot");
    core::run_in_background();
    core::RcuThread rcu;
    SnapshotInfo info;
    std::string err;
    const uint64_t retention = options_.audit_retention_ms;
    const uint64_t cutoff = core::now_ms() > retention ? core::now_ms() - retention : 0;
    if (write_snapshot(dir_, state_.index(), seq, cutoff, info, err)) {
      publish_audit(state_.index(), info);
      // What the snapshot left out goes from memory too; the log segments that still hold
      // those events are the ones this snapshot just made unnecessary.
      const size_t dropped = state_.index().audit().drop_before(cutoff);
      if (dropped)
        core::log(core::Level::info, "audit.expired",
                  {{"events", static_cast<unsigned long long>(dropped)}});
      remove_covered(dir_, seq);
      stats_.snapshots.fetch_add(1, std::memory_order_relaxed);
      stats_.snapshot_bytes.store(info.bytes, std::memory_order_relaxed);
      stats_.snapshot_records.store(info.records, std::memory_order_relaxed);
      stats_.snapshot_unix_ms.store(core::now_ms(), std::memory_order_relaxed);
      stats_.snapshot_write_ns.store(static_cast<uint64_t>(info.seconds * 1e9),
                                     std::memory_order_relaxed);
      core::log(
          core::Level::info, "snapshot.written",
          {{"file", snapshot_name(seq)},
           {"records", static_cast<unsigned long long>(info.records)},
           {"bytes", static_cast<unsigned long long>(info.bytes)},
           {"seconds", info.seconds},
           {"write_pause_seconds", static_cast<double>(stats_.snapshot_pause_ns.load()) / 1e9}});
    } else {
      core::log(core::Level::error, "snapshot.failed", {{"error", err}});
    }
    snapshot_running_.store(false, std::memory_order_release);
  });
}

}  // namespace keygate::persistence
