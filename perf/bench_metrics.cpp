// GET /metrics rendering at 1 k and 10 M keys. A scrape runs on a reactor thread, so its
// cost is time that thread does not verify: it must not grow with the number of keys
// (the counts by status are kept by the writer, core/status_counts.hpp).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "handlers/metrics.hpp"
#include "perf/bench_dataset.hpp"
#include "persistence/data_dir.hpp"
#include "persistence/journal.hpp"

using namespace keygate;

static void BM_MetricsRender(benchmark::State& state) {
  perf::Dataset& d = perf::dataset(static_cast<size_t>(state.range(0)));
  // A real journal on an empty scratch directory, for the storage figures it reports.
  char tmpl[] = "/tmp/keygate-bench-metrics-XXXXXX";
  const std::string root = mkdtemp(tmpl);
  {
    persistence::DataDir dir(root + "/data");
    persistence::RecoveryReport none;
    persistence::Journal journal(dir, d.sm, none, {});
    handlers::Metrics metrics;
    metrics.set_routes(
        {"GET /v1/auth", "POST /v1/keys/verify", "GET /metrics", "POST /v1/organizations"});
    size_t bytes = 0;
    for (auto _ : state) {
      std::string text = metrics.render(d.index, journal, 64);
      bytes = text.size();
      benchmark::DoNotOptimize(text);
    }
    state.counters["keys"] = static_cast<double>(d.index.key_count());
    state.counters["bytes"] = static_cast<double>(bytes);
  }
  std::filesystem::remove_all(root);
}
BENCHMARK(BM_MetricsRender)->Arg(1'000)->Arg(10'000'000)->Unit(benchmark::kMicrosecond);
