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
// scheduler gives it a smaller share than the reactors that verify, which stay at the
// process's priority. Raising one's own nice value needs no privilege; a failure only
// leaves the thread at the process's priority.
inline void run_in_background() noexcept {
  constexpr int kNice = 10;  // about a tenth of a default thread's weight (1.25x a step)
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kNice);
}

}  // namespace keygate::core
