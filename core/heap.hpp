// The heap's pages. With mimalloc linked (KEYGATE_MIMALLOC), keygate asks it for 2 MiB
// pages: mimalloc then marks its segments MADV_HUGEPAGE, and the kernel backs them with
// transparent huge pages (in its default `madvise` mode too). The key records a
// verification reads are spread over the whole heap (1.3 GiB at 10 M keys): on 4 KiB pages
// each of those reads also misses the TLB. An index lookup at 10 M keys measured 242-401 ns
// on 4 KiB pages against 170-184 ns on huge pages in a slow phase of this VM, and the same
// (160-190 ns) on both at other times (perf/RESULTS.md). The cost is the rounding
// to 2 MiB: an idle server holds 20 MiB instead of 11, and a loaded one about as many bytes
// per key as before. The operator's MIMALLOC_LARGE_OS_PAGES, when set, wins (=0 turns it
// off).
#pragma once

#include <cstdlib>

#if defined(KEYGATE_MIMALLOC)
#include <mimalloc.h>
#endif

namespace keygate::core {

// Call before the heap grows (keygate does from a constructor that runs ahead of its static
// initializers); segments mimalloc mapped earlier keep their pages. Returns whether the
// heap asks for huge pages.
inline bool use_huge_pages_for_heap() {
#if defined(KEYGATE_MIMALLOC)
  if (std::getenv("MIMALLOC_LARGE_OS_PAGES") == nullptr) {
    mi_option_enable(mi_option_large_os_pages);
    // mimalloc keeps each thread's first segment on small pages unless told otherwise;
    // MIMALLOC_LARGE_OS_PAGES=1 in the environment does the same at its start.
    if (std::getenv("MIMALLOC_EAGER_COMMIT_DELAY") == nullptr)
      mi_option_set(mi_option_eager_commit_delay, 0);
  }
  return mi_option_is_enabled(mi_option_large_os_pages);
#else
  return false;
#endif
}

}  // namespace keygate::core
