// The order liburcu guarantees, told to ThreadSanitizer, which cannot see it: liburcu is
// not instrumented, so the grace period that separates a reader's last look at a record
// from the record's free, and the call_rcu queue that carries a batch from the writer to
// the thread that frees it, are invisible, and every such free would be reported as a race.
// Without -fsanitize=thread these are empty and cost nothing.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define KEYGATE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KEYGATE_TSAN 1
#endif
#endif

#ifdef KEYGATE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace keygate::core::rcu_order {

#ifdef KEYGATE_TSAN
inline char grace_period;  // the address TSan synchronizes on
// A read section ends: what it read happens before any free a later grace period allows.
inline void reader_done() noexcept {
  __tsan_release(&grace_period);
}
// A call_rcu callback begins: every read section that ended before it happened before it.
inline void grace_period_ended() noexcept {
  __tsan_acquire(&grace_period);
}
// The writer hands `p` to call_rcu, and the callback takes it: what the writer did first
// happens before the callback.
inline void hand_over(void* p) noexcept {
  __tsan_release(p);
}
inline void take_over(void* p) noexcept {
  __tsan_acquire(p);
}
#else
inline void reader_done() noexcept {}
inline void grace_period_ended() noexcept {}
inline void hand_over(void*) noexcept {}
inline void take_over(void*) noexcept {}
#endif

}  // namespace keygate::core::rcu_order
