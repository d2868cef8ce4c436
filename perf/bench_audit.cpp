// The audit log's page cost at 1 k, 1 M and 10 M events (docs/api.md §8): a page of 100
// must cost the same at any size. All events are in one organization, the worst case for
// the per-organization sequence; pages are taken at the newest end, from a cursor in the
// middle (OpenAI's `after`), and inside a time window in the middle (`effective_at`).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "core/audit.hpp"
#include "core/index.hpp"
#include "persistence/snapshot.hpp"

using namespace keygate;

namespace {

constexpr core::Id kOrg{1, 1};
constexpr uint64_t kT0 = 1'800'000'000'000;  // ms

double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  double pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

std::map<size_t, double> bytes_per_event;

// One log per size, built once: 10 M events take a few seconds and a few GB.
core::AuditLog& log_of(size_t n) {
  static std::map<size_t, std::unique_ptr<core::AuditLog>> logs;
  auto& slot = logs[n];
  if (!slot) {
    const double before = resident_bytes();
    slot = std::make_unique<core::AuditLog>();
    for (size_t i = 0; i < n; ++i) {
      core::AuditEvent e;
      e.id = core::Id{(kT0 + i * 10) << 16, i};  // 100 events a second
      e.organization_id = kOrg;
      e.type = i % 3 ? core::AuditType::api_key_created : core::AuditType::api_key_deleted;
      e.actor = {core::ActorKind::api_key, core::Id{7, 7}};
      e.resources = {core::Id{9, i}};
      e.payload =
          R"({"id":"key_01JABCDEFGHJKMNPQRSTVWXYZ0","data":{"scopes":["api_keys:read"],"name":"svc","type":"secret","environment":"live"}})";
      slot->insert(std::move(e));
    }
    bytes_per_event[n] = (resident_bytes() - before) / static_cast<double>(n);
  }
  return *slot;
}

void BM_AuditPageNewest(benchmark::State& state) {
  core::AuditLog& log = log_of(static_cast<size_t>(state.range(0)));
  core::AuditQuery q;
  q.limit = 100;
  for (auto _ : state) benchmark::DoNotOptimize(log.page(kOrg, q));
  state.counters["events"] = static_cast<double>(log.size());
  state.counters["bytes_per_event"] = bytes_per_event[static_cast<size_t>(state.range(0))];
}

void BM_AuditPageAfterCursor(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  core::AuditLog& log = log_of(n);
  core::AuditQuery q;
  q.limit = 100;
  q.after = core::Id{(kT0 + n / 2 * 10) << 16, n / 2};
  for (auto _ : state) benchmark::DoNotOptimize(log.page(kOrg, q));
}

void BM_AuditPageTimeWindowAndType(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  core::AuditLog& log = log_of(n);
  core::AuditQuery q;
  q.limit = 100;
  q.from_s = static_cast<int64_t>((kT0 + n / 4 * 10) / 1000);
  q.to_s = static_cast<int64_t>((kT0 + n / 2 * 10) / 1000);
  q.types = {core::AuditType::api_key_deleted};  // one event in three
  for (auto _ : state) benchmark::DoNotOptimize(log.page(kOrg, q));
}

}  // namespace

BENCHMARK(BM_AuditPageNewest)->Arg(1'000)->Arg(1'000'000)->Arg(10'000'000);
BENCHMARK(BM_AuditPageAfterCursor)->Arg(1'000)->Arg(1'000'000)->Arg(10'000'000);
BENCHMARK(BM_AuditPageTimeWindowAndType)->Arg(1'000)->Arg(1'000'000)->Arg(10'000'000);

// The same pages when the events are in the latest snapshot, read from its file
// (persistence/audit_disk.hpp): memory holds none of them. The file is in the page cache,
// as a busy server's latest snapshot is.
namespace {

core::Index& snapshot_index_of(size_t n) {
  static std::map<size_t, std::unique_ptr<core::Index>> indexes;
  auto& slot = indexes[n];
  if (!slot) {
    static core::RcuThread rcu;
    slot = std::make_unique<core::Index>();
    auto o = std::make_unique<core::Organization>();
    o->id = kOrg;
    o->name = o->slug = "bench";
    slot->put(std::move(o));
    core::AuditLog& from = log_of(n);
    from.for_each(0, [&](const core::AuditEvent& e, bool) { slot->audit().insert(e); });
    char tmpl[] = "/tmp/keygate-bench-audit-XXXXXX";
    const persistence::DataDir dir(::mkdtemp(tmpl));
    persistence::SnapshotInfo info;
    std::string error;
    if (!persistence::write_snapshot(dir, *slot, 1, 0, info, error)) std::abort();
    persistence::publish_audit(*slot, info);
    std::filesystem::remove_all(dir.path());  // the open file stays readable
  }
  return *slot;
}

void BM_AuditPageFromSnapshotNewest(benchmark::State& state) {
  core::Index& index = snapshot_index_of(static_cast<size_t>(state.range(0)));
  core::AuditQuery q;
  q.limit = 100;
  for (auto _ : state) benchmark::DoNotOptimize(index.audit().page(kOrg, q));
  state.counters["memory_bytes"] = static_cast<double>(index.audit().memory_bytes());
  state.counters["index_bytes_per_event"] =
      static_cast<double>(index.audit().disk()->memory_bytes()) /
      static_cast<double>(state.range(0));
}

void BM_AuditPageFromSnapshotAfterCursor(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  core::Index& index = snapshot_index_of(n);
  core::AuditQuery q;
  q.limit = 100;
  q.after = core::Id{(kT0 + n / 2 * 10) << 16, n / 2};
  for (auto _ : state) benchmark::DoNotOptimize(index.audit().page(kOrg, q));
}

// A filter that never matches walks the most a page may (AuditLog::kMaxScan events).
void BM_AuditPageFromSnapshotRareFilter(benchmark::State& state) {
  core::Index& index = snapshot_index_of(static_cast<size_t>(state.range(0)));
  core::AuditQuery q;
  q.limit = 100;
  q.types = {core::AuditType::project_archived};
  for (auto _ : state) benchmark::DoNotOptimize(index.audit().page(kOrg, q));
}

}  // namespace

BENCHMARK(BM_AuditPageFromSnapshotNewest)->Arg(1'000'000);
BENCHMARK(BM_AuditPageFromSnapshotAfterCursor)->Arg(1'000'000);
BENCHMARK(BM_AuditPageFromSnapshotRareFilter)->Arg(1'000'000);
