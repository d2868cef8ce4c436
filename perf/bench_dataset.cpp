#include "perf/bench_dataset.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "core/key_format.hpp"

namespace keygate::perf {

using namespace keygate::core;

Dataset::Dataset(size_t n) {
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

size_t Dataset::resident_bytes() {
  unsigned long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%lu %lu", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

Dataset& dataset(size_t n) {
  static std::map<size_t, std::unique_ptr<Dataset>> sets;
  auto& d = sets[n];
  if (!d) d = std::make_unique<Dataset>(n);
  return *d;
}

}  // namespace keygate::perf
