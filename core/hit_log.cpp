#include "core/hit_log.hpp"

#include <bit>
#include <new>

namespace keygate::core {

namespace {
std::atomic<uint64_t> g_serials{0};
}

struct HitLog::Ring {
  explicit Ring(size_t n) : mask(n - 1), ids(new Id[n]) {}
  const size_t mask;
  std::unique_ptr<Id[]> ids;
  // The producer's line: where it writes next, and what it knows of the consumer's place.
  alignas(64) std::atomic<uint64_t> head{0};
  uint64_t tail_seen = 0;
  std::atomic<uint64_t> dropped{0};
  // The consumer's line.
  alignas(64) std::atomic<uint64_t> tail{0};
};

HitLog::HitLog(size_t ring_entries)
    : serial_(g_serials.fetch_add(1, std::memory_order_relaxed) + 1),
      entries_(std::bit_ceil(std::max<size_t>(ring_entries, 2))) {}

HitLog::~HitLog() = default;

HitLog::Ring& HitLog::ring_of_this_thread() {
  // One cached ring per thread: the log it belongs to is named by serial, not address.
  thread_local uint64_t cached_serial = 0;
  thread_local Ring* cached = nullptr;
  if (cached_serial == serial_) return *cached;
  std::lock_guard lock(rings_mutex_);
  rings_.push_back(std::make_unique<Ring>(entries_));
  cached = rings_.back().get();
  cached_serial = serial_;
  return *cached;
}

void HitLog::record(Id key) noexcept {
  Ring* r;
  try {
    r = &ring_of_this_thread();
  } catch (const std::bad_alloc&) {
    return;  // a thread's first record, without memory for its ring: the fleet learns less
  }
  const uint64_t h = r->head.load(std::memory_order_relaxed);
  if (h - r->tail_seen > r->mask) {
    r->tail_seen = r->tail.load(std::memory_order_acquire);
    if (h - r->tail_seen > r->mask) {
      r->dropped.store(r->dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return;
    }
  }
  r->ids[h & r->mask] = key;
  r->head.store(h + 1, std::memory_order_release);  // the id before the head that shows it
}

void HitLog::drain(std::vector<Id>& out) {
  std::lock_guard lock(rings_mutex_);
  for (const auto& r : rings_) {
    const uint64_t h = r->head.load(std::memory_order_acquire);
    uint64_t t = r->tail.load(std::memory_order_relaxed);
    for (; t != h; ++t) out.push_back(r->ids[t & r->mask]);
    r->tail.store(t, std::memory_order_release);  // the slots read before they are reused
  }
}

uint64_t HitLog::dropped() const noexcept {
  uint64_t n = 0;
  std::lock_guard lock(rings_mutex_);
  for (const auto& r : rings_) n += r->dropped.load(std::memory_order_relaxed);
  return n;
}

}  // namespace keygate::core
