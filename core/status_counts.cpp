#include "core/status_counts.hpp"

#include <algorithm>
#include <functional>
#include <limits>

namespace keygate::core {

namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

// When a key that is not revoked stops being active or rotating (model.hpp, status_at).
uint64_t end_of(const ApiKey& k) noexcept {
  uint64_t end = k.expires_ms ? k.expires_ms : kNever;
  if (k.rotated_ms) end = std::min(end, k.grace_expires_ms);
  return end;
}

void heap_push(std::vector<uint64_t>& heap, uint64_t v) {
  heap.push_back(v);
  std::push_heap(heap.begin(), heap.end(), std::greater<>{});
}

uint64_t heap_pop(std::vector<uint64_t>& heap) {
  std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
  const uint64_t v = heap.back();
  heap.pop_back();
  return v;
}

}  // namespace

void StatusCounts::add(const ApiKey& k) {
  if (k.revoked_ms) {
    ++revoked_;
    return;
  }
  Ends& e = ends_[k.rotated_ms ? base_rotating : base_active];
  ++e.total;
  const uint64_t end = end_of(k);
  if (end == kNever) return;
  if (end <= clock_)
    ++e.expired;
  else
    heap_push(e.pending, end);
}

void StatusCounts::remove(const ApiKey& k) {
  if (k.revoked_ms) {
    --revoked_;
    return;
  }
  Ends& e = ends_[k.rotated_ms ? base_rotating : base_active];
  --e.total;
  const uint64_t end = end_of(k);
  if (end == kNever) return;
  // An end at or before the clock was counted by add() or advance(); a later one is still
  // in `pending`, and is cancelled there.
  if (end <= clock_) {
    --e.expired;
  } else {
    heap_push(e.cancelled, end);
    compact(e);
  }
}

// Cancelled ends normally leave as their time comes; a key whose expiry is changed again
// and again far ahead of time would let them pile up, so past a bound both heaps are
// rebuilt without them.
void StatusCounts::compact(Ends& e) {
  if (e.cancelled.size() < 4096 || e.cancelled.size() * 2 < e.pending.size()) return;
  std::sort(e.pending.begin(), e.pending.end());
  std::sort(e.cancelled.begin(), e.cancelled.end());
  std::vector<uint64_t> kept;
  kept.reserve(e.pending.size() - e.cancelled.size());
  std::set_difference(e.pending.begin(), e.pending.end(), e.cancelled.begin(), e.cancelled.end(),
                      std::back_inserter(kept));
  e.pending.swap(kept);  // sorted ascending: already a min-heap
  e.cancelled.clear();
}

void StatusCounts::replace(const ApiKey* prev, const ApiKey* next) {
  if (prev) remove(*prev);
  if (next) add(*next);
  publish();
}

void StatusCounts::replace(const Organization* prev, const Organization* next) {
  if (prev) --orgs_[static_cast<int>(prev->status)];
  if (next) ++orgs_[static_cast<int>(next->status)];
  publish();
}

void StatusCounts::advance(uint64_t now_ms) {
  clock_ = std::max(clock_, now_ms);
  for (Ends& e : ends_) {
    while (!e.pending.empty() && e.pending.front() <= clock_) {
      const uint64_t end = heap_pop(e.pending);
      if (!e.cancelled.empty() && e.cancelled.front() == end)
        heap_pop(e.cancelled);
      else
        ++e.expired;
    }
  }
  publish();
}

void StatusCounts::publish() noexcept {
  constexpr auto relaxed = std::memory_order_relaxed;
  active_.store(ends_[base_active].total - ends_[base_active].expired, relaxed);
  rotating_.store(ends_[base_rotating].total - ends_[base_rotating].expired, relaxed);
  expired_.store(ends_[base_active].expired + ends_[base_rotating].expired, relaxed);
  revoked_pub_.store(revoked_, relaxed);
  orgs_active_.store(orgs_[0], relaxed);
  orgs_suspended_.store(orgs_[1], relaxed);
}

KeyStatusCounts StatusCounts::keys() const noexcept {
  constexpr auto relaxed = std::memory_order_relaxed;
  return {active_.load(relaxed), rotating_.load(relaxed), expired_.load(relaxed),
          revoked_pub_.load(relaxed)};
}

OrgStatusCounts StatusCounts::organizations() const noexcept {
  return {orgs_active_.load(std::memory_order_relaxed),
          orgs_suspended_.load(std::memory_order_relaxed)};
}

}  // namespace keygate::core
