// HitLog: the keys this node's verifications admitted, one entry a hit, kept for the
// fleet's counters (cluster/fleet_counters.hpp) to send on to Redis. Each thread that
// records has a ring of its own (one producer, and one consumer: the thread that drains),
// so a verification writes only its own thread's lines: a store of the key's id and a
// release store of the ring's head, no read-modify-write, no allocation after the thread's
// first record (which makes its ring). A ring that is full drops the hit and counts it
// (dropped()): the node's own bucket took the token already, only the fleet learns less.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/ids.hpp"

namespace keygate::core {

class HitLog {
 public:
  // `ring_entries`: per thread, rounded up to a power of two.
  explicit HitLog(size_t ring_entries = size_t{1} << 16);
  ~HitLog();
  HitLog(const HitLog&) = delete;
  HitLog& operator=(const HitLog&) = delete;

  // Hot path: any thread.
  void record(Id key) noexcept;
  // One thread at a time (the drainer): appends every hit recorded since the last drain,
  // by any thread, to `out`.
  void drain(std::vector<Id>& out);
  uint64_t dropped() const noexcept;

 private:
  struct Ring;
  Ring& ring_of_this_thread();
  const uint64_t serial_;  // tells this log from one that lived at the same address before
  const size_t entries_;
  mutable std::mutex rings_mutex_;  // taken by a thread's first record and by drain()
  std::vector<std::unique_ptr<Ring>> rings_;
};

}  // namespace keygate::core
