// The replacement operator new of the benchmark binary: counts, then allocates as usual.
// In a file of its own so that no caller sees the malloc/free pairing inline.
#include "perf/alloc_counter.hpp"

#include <cstdlib>
#include <new>

namespace keygate::perf {
thread_local size_t t_allocations = 0;
}

void* operator new(size_t n) {
  ++keygate::perf::t_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  return operator new(n);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
  std::free(p);
}
