// The microbenchmarks' data set: an index with `n` keys in organizations of 1,000, built
// straight through StateMachine::apply(), shared by the benchmarks of one run.
#pragma once

#include <cstddef>
#include <vector>

#include "core/index.hpp"
#include "core/state_machine.hpp"

namespace keygate::perf {

struct Dataset {
  static constexpr size_t kSample = 1'000'000;
  core::RcuThread rcu;
  core::Index index;
  core::StateMachine sm{index};
  std::vector<core::KeyHash> sample;  // up to 1 M hashes spread evenly over the whole set
  double resident_per_key = 0;        // resident bytes the index and records grew by, per key

  explicit Dataset(size_t n);
  static size_t resident_bytes();
};

// The data set of `n` keys, built on first use and kept for the rest of the run.
Dataset& dataset(size_t n);

}  // namespace keygate::perf
