// Counts heap allocations made by the calling thread while a scope is open, to prove that a
// hot path allocates nothing (operator new is replaced in the benchmark binary only).
#pragma once

#include <cstddef>

namespace keygate::perf {

extern thread_local size_t t_allocations;

}  // namespace keygate::perf
