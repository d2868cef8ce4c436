// Names the calling thread ("kg-reactor-0", "kg-journal", ...), for `top -H`, `perf` and
// pinning threads to cores by name (perf/bench_under_writes.sh). Linux keeps 15 characters.
#pragma once

#include <pthread.h>

namespace keygate::core {

inline void name_thread(const char* name) noexcept {
  pthread_setname_np(pthread_self(), name);
}

}  // namespace keygate::core
