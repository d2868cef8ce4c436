// Names the calling thread ("kg-reactor-0", "kg-journal", ...), for `top -H`, `perf` and
// pinning threads to cores by name (perf/bench_under_writes.sh). Linux keeps 15 characters.
#pragma once

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

namespace keygate::core {

inline void name_thread(const char* name) noexcept {
  pthread_setname_np(pthread_self(), name);
}

// Marks the calling thread as background work (a snapshot): when the cores are busy, the
// scheduler gives it about a tenth of the share of the reactors that verify, which stay at
// the process's priority (nice 10: each step is 1.25x less weight); on idle cores nothing
// changes. Raising one's own nice value needs no privilege; a failure only leaves the
// thread at the process's priority. (The journal stays at the reactors' priority: a
// revocation must reach the index at once, however busy the cores.)
inline void run_in_background() noexcept {
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
}

}  // namespace keygate::core
