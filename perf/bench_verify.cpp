// verify() on a hit, a miss and a malformed key; index lookup at 1 k, 1 M and 10 M keys.
// Each benchmark also reports the heap allocations it made per iteration (must be 0).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/heap.hpp"
#include "core/state_machine.hpp"
#include "core/verify.hpp"
#include "perf/alloc_counter.hpp"
#include "perf/bench_dataset.hpp"

using namespace keygate;
using namespace keygate::core;
using keygate::perf::Dataset;
using keygate::perf::dataset;

// The server's heap (core/heap.hpp): set before main() so the records the lookups read sit
// on the same pages as in `keygate serve`.
[[maybe_unused]] static const bool heap_huge_pages = use_huge_pages_for_heap();

namespace {

// A fresh organization (Google Benchmark calls each benchmark function several times).
std::string fresh_key(Dataset& d) {
  static int n = 0;
  Outcome o =
      d.sm.execute(CreateOrganization{"bench", "bench-" + std::to_string(n++)}, 1'700'000'000'000);
  d.sm.publish();
  if (o.error) throw std::runtime_error(o.error.message);
  return o.revealed_key;
}

void report_allocations(benchmark::State& state, size_t before) {
  state.counters["allocs/op"] = benchmark::Counter(
      static_cast<double>(perf::t_allocations - before) / static_cast<double>(state.iterations()));
}

}  // namespace

static void BM_VerifyHit(benchmark::State& state) {
  // A real key (generated, checksummed) among 1 M others.
  Dataset& d = dataset(1'000'000);
  const std::string key = fresh_key(d);
  const RateDefaults limits{{0, 0}, {0, 0}};
  VerifyRequest req{key, bit(Scope::api_keys_read)};
  const size_t before = perf::t_allocations;
  for (auto _ : state) {
    ReadSection rs;
    VerifyResult r = verify(d.index, req, limits, 1'800'000'000'000, 1);
    benchmark::DoNotOptimize(r);
    if (r.code != VerifyCode::valid) {
      state.SkipWithError(std::string("not valid: ").append(to_string(r.code)).c_str());
      break;
    }
  }
  report_allocations(state, before);
}
BENCHMARK(BM_VerifyHit);

static void BM_VerifyHitWithRateLimit(benchmark::State& state) {
  Dataset& d = dataset(1'000'000);
  const std::string key = fresh_key(d);
  const RateDefaults limits{{1'000'000'000, 1'000'000'000}, {0, 0}};
  VerifyRequest req{key};
  const size_t before = perf::t_allocations;
  for (auto _ : state) {
    ReadSection rs;
    benchmark::DoNotOptimize(verify(d.index, req, limits, 1'800'000'000'000, monotonic_ns()));
  }
  report_allocations(state, before);
}
BENCHMARK(BM_VerifyHitWithRateLimit);

// A verification's cost in a fleet (issue 35's A/B): arg 0, a cluster node without Redis
// (its fair share of 3 nodes); arg 1, with --redis: the whole limit, and each hit recorded
// for the exchange, which a thread drains (every millisecond: at the rate this loop runs,
// 25 ms as cluster/fleet_counters.cpp waits would fill a ring and measure its dropping).
static void BM_VerifyHitInAFleet(benchmark::State& state) {
  Dataset& d = dataset(1'000'000);
  const std::string key = fresh_key(d);
  const std::atomic<uint32_t> nodes{3};
  const std::atomic<bool> shared{true};
  HitLog hits;
  RateDefaults limits{{1'000'000'000, 1'000'000'000}, {0, 0}};
  limits.nodes = &nodes;
  std::atomic<bool> done{false};
  std::thread drainer;
  if (state.range(0) == 1) {
    limits.shared = &shared;
    limits.hits = &hits;
    drainer = std::thread([&] {
      std::vector<Id> out;
      while (!done.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        out.clear();
        hits.drain(out);
      }
    });
  }
  VerifyRequest req{key};
  {
    ReadSection rs;
    verify(d.index, req, limits, 1'800'000'000'000, monotonic_ns());  // the thread's ring made
  }
  const size_t before = perf::t_allocations;
  for (auto _ : state) {
    ReadSection rs;
    benchmark::DoNotOptimize(verify(d.index, req, limits, 1'800'000'000'000, monotonic_ns()));
  }
  report_allocations(state, before);
  done = true;
  if (drainer.joinable()) drainer.join();
  state.counters["dropped"] = static_cast<double>(hits.dropped());
}
BENCHMARK(BM_VerifyHitInAFleet)->Arg(0)->Arg(1);

static void BM_VerifyMiss(benchmark::State& state) {
  Dataset& d = dataset(1'000'000);
  const std::string key = generate_key(KeyType::secret, Environment::live);  // well-formed, unknown
  VerifyRequest req{key};
  const RateDefaults limits;
  const size_t before = perf::t_allocations;
  for (auto _ : state) {
    ReadSection rs;
    benchmark::DoNotOptimize(verify(d.index, req, limits, 1'800'000'000'000, 1));
  }
  report_allocations(state, before);
}
BENCHMARK(BM_VerifyMiss);

static void BM_VerifyMalformed(benchmark::State& state) {
  Dataset& d = dataset(1'000);
  std::string key = generate_key(KeyType::secret, Environment::live);
  key[20] = key[20] == 'a' ? 'b' : 'a';  // checksum fails
  VerifyRequest req{key};
  const RateDefaults limits;
  const size_t before = perf::t_allocations;
  for (auto _ : state) {
    ReadSection rs;
    benchmark::DoNotOptimize(verify(d.index, req, limits, 1'800'000'000'000, 1));
  }
  report_allocations(state, before);
}
BENCHMARK(BM_VerifyMalformed);

static void BM_Sha256OfAKey(benchmark::State& state) {
  const std::string key = generate_key(KeyType::secret, Environment::live);
  for (auto _ : state) benchmark::DoNotOptimize(hash_key(key));
}
BENCHMARK(BM_Sha256OfAKey);

// Index lookups by hash, and the read of the record found that every verification makes
// next (so that designs which keep the hash in the slot or in the record compare fairly),
// cycling through up to 1,000,000 present keys spread over the whole set in a shuffled
// order: at 1 M and 10 M keys almost every lookup misses the caches, as with real traffic.
static void BM_IndexLookup(benchmark::State& state) {
  Dataset& d = dataset(static_cast<size_t>(state.range(0)));
  std::vector<KeyHash> hashes = d.sample;
  std::mt19937_64 rng(42);
  std::shuffle(hashes.begin(), hashes.end(), rng);
  size_t i = 0;
  const size_t before = perf::t_allocations;
  for (auto _ : state) {
    ReadSection rs;
    KeySlot* s = d.index.find_key(hashes[i]);
    // What every verification reads next: the record's first line (revocation, expiry).
    benchmark::DoNotOptimize(s->load()->revoked_ms);
    if (++i == hashes.size()) i = 0;
  }
  report_allocations(state, before);
  state.counters["keys"] = static_cast<double>(d.index.key_count());
  // Names are empty here, origins absent: the floor of a key's memory, not a typical one.
  state.counters["B/key"] = d.resident_per_key;
}
BENCHMARK(BM_IndexLookup)
    ->Arg(1'000)
    ->Arg(1'000'000)
    ->Arg(10'000'000)
    ->Unit(benchmark::kNanosecond);

// Two threads verifying with the rate limiter on, which writes the key's slot on every
// call: the same hot key from both (its bucket's line must bounce between the cores; what
// else sits on that line bounces with it), and two keys created one after the other
// (neighbouring slots: if their slots share a cache line, each thread's writes evict the
// other's hash and record pointer: false sharing). perf/RESULTS.md compares slot layouts.
namespace {
struct Neighbours {
  Dataset* d;
  std::vector<std::string> keys;  // two keys created one after the other: neighbouring slots
};

// Built once, before either thread verifies (a function-local static is initialised once).
const Neighbours& two_neighbours() {
  static const Neighbours n = [] {
    Dataset& d = dataset(1'000'000);
    std::vector<std::string> k;
    k.push_back(fresh_key(d));
    Id org;
    {
      ReadSection rs;
      org = d.index.find_key(hash_key(k[0]))->load()->organization_id;
    }
    Outcome o = d.sm.execute(CreateApiKey{org, "neighbour"}, 1'700'000'000'000);
    d.sm.publish();
    if (o.error) throw std::runtime_error(o.error.message);
    k.push_back(o.revealed_key);
    return Neighbours{&d, std::move(k)};
  }();
  return n;
}

void verify_loop(benchmark::State& state, const std::string& key) {
  Dataset& d = *two_neighbours().d;
  RcuThread rcu;
  const RateDefaults limits{{1'000'000'000, 1'000'000'000}, {0, 0}};
  VerifyRequest req{key};
  for (auto _ : state) {
    ReadSection rs;
    benchmark::DoNotOptimize(verify(d.index, req, limits, 1'800'000'000'000, monotonic_ns()));
  }
}
}  // namespace

static void BM_VerifySameKeyTwoThreads(benchmark::State& state) {
  verify_loop(state, two_neighbours().keys[0]);
}
BENCHMARK(BM_VerifySameKeyTwoThreads)->Threads(2)->UseRealTime();

static void BM_VerifyNeighbourKeysTwoThreads(benchmark::State& state) {
  verify_loop(state, two_neighbours().keys[static_cast<size_t>(state.thread_index()) % 2]);
}
BENCHMARK(BM_VerifyNeighbourKeysTwoThreads)->Threads(2)->UseRealTime();
