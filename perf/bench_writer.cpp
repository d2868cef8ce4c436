// The one writer's cost per command as the number of organizations grows (issue 34: a
// write must not cost O(organizations)). Cluster mode executes a batch, sends it to etcd
// and then discards what it staged (the watch publishes it); a single node publishes. Each
// iteration executes one key creation in one organization among N, then discards it, or
// publishes it.
//
//   build/bench/perf/keygate_bench_writer --benchmark_filter=Writer
#include <benchmark/benchmark.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/state_machine.hpp"

using namespace keygate;

namespace {

struct Organizations {
  core::RcuThread rcu;
  core::Index index;
  core::StateMachine sm{index};
  std::vector<core::Id> ids;
  explicit Organizations(int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      core::Outcome o = sm.execute(
          core::CreateOrganization{"org " + std::to_string(i), "org-" + std::to_string(i)},
          1'800'000'000'000);
      if (o.error) throw std::runtime_error(o.error.message);
      ids.push_back(o.org->id);
      if (i % 1024 == 1023) sm.publish();
    }
    sm.publish();
  }
};

// range(0): organizations; range(1): 0 discards what was staged (cluster mode), 1 publishes.
void Writer(benchmark::State& state) {
  Organizations orgs(state.range(0));
  const bool publish = state.range(1) != 0;
  size_t i = 0;
  for (auto _ : state) {
    core::CreateApiKey c;
    c.org = orgs.ids[i++ % orgs.ids.size()];
    c.name = "k";
    core::Outcome o = orgs.sm.execute(c, 1'800'000'000'000);
    benchmark::DoNotOptimize(o);
    publish ? orgs.sm.publish() : orgs.sm.discard();
  }
  state.SetLabel(publish ? "execute+publish" : "execute+discard");
}
BENCHMARK(Writer)
    ->ArgsProduct({{1'000, 100'000}, {0, 1}})
    ->ArgNames({"organizations", "publish"})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
