// BufferBudget: the bytes that connections' receive buffers may hold beyond their resting
// size, across every reactor of a server. A client that sends a big body or a long
// pipelined burst needs a large buffer for a moment; ten thousand of them at once must not
// take the machine's memory. A buffer that cannot take its growth from the budget is not
// grown: its connection is answered 503 and closed (net/connection.cpp).
// Thread-safe and lock-free: take() and give() from any reactor.
#pragma once

#include <atomic>
#include <cstddef>

namespace keygate::net {

class BufferBudget {
 public:
  explicit BufferBudget(size_t limit) noexcept : limit_(limit) {}
  BufferBudget(const BufferBudget&) = delete;
  BufferBudget& operator=(const BufferBudget&) = delete;

  // Takes `bytes` if they fit under the limit; false (and nothing taken) if not.
  bool take(size_t bytes) noexcept {
    size_t used = used_.load(std::memory_order_relaxed);
    do {
      if (used + bytes > limit_) {
        refusals_.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
    return true;
  }
  void give(size_t bytes) noexcept { used_.fetch_sub(bytes, std::memory_order_relaxed); }

  size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
  size_t limit() const noexcept { return limit_; }
  size_t refusals() const noexcept { return refusals_.load(std::memory_order_relaxed); }

 private:
  const size_t limit_;
  std::atomic<size_t> used_{0};
  std::atomic<size_t> refusals_{0};
};

}  // namespace keygate::net
