// verify() on a hit, a miss and a malformed key; index lookup at 1 k, 1 M and 10 M keys.
// Each benchmark also reports the heap allocations it made per iteration (must be 0).
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <map>
#include <stdexcept>
#include <memory>
#include <new>
#include <vector>

#include "core/heap.hpp"
#include "core/state_machine.hpp"
#include "core/verify.hpp"
#include "perf/alloc_counter.hpp"

using namespace keygate;
using namespace keygate::core;

// The server's heap (core/heap.hpp): set before main() so the records the lookups read sit
// on the same pages as in `keygate serve`.
[[maybe_unused]] static const bool heap_huge_pages = use_huge_pages_for_heap();

namespace {

// An index with `n` keys in organizations of 1,000, built straight through apply().
struct Dataset {
  static constexpr size_t kSample = 1'000'000;
  RcuThread rcu;
  Index index;
  StateMachine sm{index};
  std::vector<KeyHash> sample;  // up to 1 M hashes spread evenly over the whole set
  double resident_per_key = 0;  // resident bytes the index and records grew by, per key

  explicit Dataset(size_t n) {
    sample.reserve(std::min(n, kSample));
    const size_t rss_before = resident_bytes();
    IdGenerator ids;
    Id org;
    const size_t every = n > kSample ? n / kSample : 1;
    for (size_t i = 0; i < n; ++i) {
      if (i % 1000 == 0) {
        auto o = std::make_unique<Organization>();
        o->id = org = ids.next(1'700'000'000'000);
        o->slug = o->name = "org" + std::to_string(i);
        sm.apply(std::move(o));
      }
      auto k = std::make_unique<ApiKey>();
      k->id = ids.next(1'700'000'000'000);
      k->organization_id = org;
      // Distinct, valid-looking values without the CSPRNG cost: only the hash matters here.
      std::string v = "sk_live_" + std::to_string(1'000'000'000'000ull + i);
      v.resize(40, 'x');
      char sum[8];
      std::snprintf(sum, sizeof sum, "%06u", crc32(v) % 1'000'000);
      v.append(sum);
      const KeyHash hash = hash_key(v);
      k->scopes = kAllScopes;
      k->name = "load " + std::to_string(i);  // as perf/dataset.cpp names them
      if (i % every == 0 && sample.size() < kSample) sample.push_back(hash);
      sm.apply(hash, std::move(k));
    }
    index.reclaim();
    const size_t grown = resident_bytes() - rss_before - sample.capacity() * sizeof(KeyHash);
    resident_per_key = static_cast<double>(grown) / static_cast<double>(n);
  }

  static size_t resident_bytes() {
    unsigned long pages = 0, resident = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%lu %lu", &pages, &resident) != 2) resident = 0;
      std::fclose(f);
    }
    return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  }
};

// A fresh organization (Google Benchmark calls each benchmark function several times).
std::string fresh_key(Dataset& d) {
  static int n = 0;
  Outcome o = d.sm.execute(CreateOrganization{"bench", "bench-" + std::to_string(n++)}, 1'700'000'000'000);
  d.sm.publish();
  if (o.error) throw std::runtime_error(o.error.message);
  return o.revealed_key;
}

Dataset& dataset(size_t n) {
  static std::map<size_t, std::unique_ptr<Dataset>> sets;
  auto& d = sets[n];
  if (!d) d = std::make_unique<Dataset>(n);
  return *d;
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
BENCHMARK(BM_IndexLookup)->Arg(1'000)->Arg(1'000'000)->Arg(10'000'000)->Unit(benchmark::kNanosecond);
