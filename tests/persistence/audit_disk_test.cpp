// The audit events of a snapshot, read from its file (persistence/audit_disk.hpp): every
// page reads the same as it would with every event in memory, before and after a restart,
// with newer events in memory beside them; memory is left holding what came after.
#include "persistence/audit_disk.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/state_machine.hpp"
#include "persistence/recovery.hpp"
#include "persistence/snapshot.hpp"
#include "persistence/store.hpp"

using namespace keygate;
using namespace keygate::persistence;
using core::AuditEvent;
using core::AuditLog;
using core::AuditPage;
using core::AuditQuery;
using core::AuditType;
using core::Id;

namespace {

constexpr uint64_t kT0 = 1'800'000'000'000;  // ms
const Id kOrgs[] = {Id{1, 1}, Id{2, 2}, Id{3, 3}, Id{4, 4}};

// Event n of `org`, n seconds after kT0: key created or deleted by turns, about key n % 50.
AuditEvent event(Id org, uint64_t n) {
  AuditEvent e;
  e.id = Id{(kT0 + n * 1000) << 16, n};
  e.organization_id = org;
  e.type = n % 2 ? AuditType::api_key_deleted : AuditType::api_key_created;
  e.resources = {Id{100, n % 50}};
  e.payload = R"({"id":"key_)" + std::to_string(n) + R"(","data":"padding to a real size"})";
  return e;
}

void put_orgs(core::Index& index) {
  for (const Id& id : kOrgs) {
    auto o = std::make_unique<core::Organization>();
    o->id = id;
    o->name = o->slug = "org" + std::to_string(id.lo);
    index.put(std::move(o));
  }
}

std::string describe(const AuditPage& p) {
  std::string out;
  for (const auto& e : p.events)
    out += std::to_string(e.id.lo) + "/" + e.payload.substr(0, 14) + " ";
  out += p.has_more ? "more" : "end";
  if (p.resume) out += " resume " + std::to_string(p.resume->lo);
  return out;
}

// Every way of paging `org`, in `got` and in `want`, must read the same.
void expect_same_pages(const AuditLog& got, const AuditLog& want, Id org) {
  std::vector<AuditQuery> queries;
  for (size_t limit : {1u, 7u, 100u}) {
    AuditQuery q;
    q.limit = limit;
    queries.push_back(q);
    q.types = {AuditType::api_key_deleted};
    queries.push_back(q);
    q.types.clear();
    q.resources = {Id{100, 7}};
    queries.push_back(q);
    q.resources.clear();
    q.from_s = static_cast<int64_t>(kT0 / 1000 + 90);
    q.to_s = static_cast<int64_t>(kT0 / 1000 + 350);
    queries.push_back(q);
  }
  for (AuditQuery q : queries) {
    // Forward to the end with `after`, then back to the start with `before`.
    for (int pages = 0;; ++pages) {
      const AuditPage a = got.page(org, q), b = want.page(org, q);
      ASSERT_EQ(describe(a), describe(b)) << "limit " << q.limit << " page " << pages;
      if (!a.has_more || a.events.empty()) break;
      q.after = a.events.back().id;
    }
    if (!q.after) continue;
    q.before = q.after;
    q.after.reset();
    for (int pages = 0;; ++pages) {
      const AuditPage a = got.page(org, q), b = want.page(org, q);
      ASSERT_EQ(describe(a), describe(b)) << "back, limit " << q.limit << " page " << pages;
      if (!a.has_more || a.events.empty()) break;
      q.before = a.events.front().id;
    }
  }
}

// An index whose organization kOrgs[0] had events 1..n, all of them now in snapshot 1 of a
// scratch directory and read from it.
struct OnDisk {
  std::string path = temp_dir();
  DataDir dir{path};
  core::RcuThread rcu;
  core::Index index;

  explicit OnDisk(uint64_t n) {
    put_orgs(index);
    for (uint64_t i = 1; i <= n; ++i) index.audit().insert(event(kOrgs[0], i));
    snapshot(1);
  }
  ~OnDisk() { std::filesystem::remove_all(path); }
  // Writes snapshot `seq` and reads its events from it: what it held.
  size_t snapshot(uint64_t seq) {
    SnapshotInfo info;
    std::string error;
    EXPECT_TRUE(write_snapshot(dir, index, seq, 0, info, error)) << error;
    const size_t held = info.audit ? info.audit->size() : 0;
    publish_audit(index, info);
    return held;
  }
};

}  // namespace

TEST(AuditDisk, PagesReadFromASnapshotAreThoseOfMemoryAndMemoryKeepsOnlyWhatCameAfter) {
  const std::string path = temp_dir();
  DataDir dir(path);
  core::RcuThread rcu;
  core::Index index;
  put_orgs(index);
  AuditLog all;  // the reference: every event in memory
  // 1,000 events, 130 (two marks and a bit), one, none.
  const uint64_t counts[] = {1000, 130, 1, 0};
  for (size_t o = 0; o < 4; ++o)
    for (uint64_t n = 1; n <= counts[o]; ++n) {
      index.audit().insert(event(kOrgs[o], n));
      all.insert(event(kOrgs[o], n));
    }
  const size_t before = index.audit().memory_bytes();
  SnapshotInfo info;
  std::string error;
  ASSERT_TRUE(write_snapshot(dir, index, 1, 0, info, error)) << error;
  ASSERT_NE(info.audit, nullptr);
  EXPECT_EQ(info.audit_from_memory.size(), 1131u);
  publish_audit(index, info);
  EXPECT_EQ(index.audit().memory_bytes(), 0u) << "every event is read from the file now";
  ASSERT_NE(index.audit().disk(), nullptr);
  EXPECT_EQ(index.audit().disk()->size(), 1131u);
  EXPECT_LT(index.audit().disk()->memory_bytes() * 50, before) << "its index is small";
  for (const Id& org : kOrgs) expect_same_pages(index.audit(), all, org);

  // Newer events in memory beside the disk's, and one older than some of them (a cluster
  // node's clock behind): merged by id.
  for (uint64_t n = 1001; n <= 1040; ++n) {
    index.audit().insert(event(kOrgs[0], n));
    all.insert(event(kOrgs[0], n));
  }
  index.audit().insert(event(kOrgs[1], 5000));
  all.insert(event(kOrgs[1], 5000));
  AuditEvent late = event(kOrgs[1], 64);
  late.id.lo = 100'064;  // within the disk's ids, not one of them
  index.audit().insert(late);
  all.insert(late);
  index.audit().insert(event(kOrgs[0], 500));  // one the disk holds: counted once
  for (const Id& org : kOrgs) expect_same_pages(index.audit(), all, org);

  // A restart reads the same snapshot's events from the file again.
  {
    core::Index again;
    core::StateMachine sm(again);
    const RecoveryReport rep = recover(dir, sm, RecoverMode::start);
    ASSERT_TRUE(rep.snapshot_loaded);
    EXPECT_EQ(again.audit().memory_bytes(), 0u);
    AuditLog snapshot_only;
    for (size_t o = 0; o < 4; ++o)
      for (uint64_t n = 1; n <= counts[o]; ++n) snapshot_only.insert(event(kOrgs[o], n));
    for (const Id& org : kOrgs) expect_same_pages(again.audit(), snapshot_only, org);
  }
  std::filesystem::remove_all(path);
}

// A byte changed under a reader is an error, never a wrong event.
TEST(AuditDisk, ADamagedRecordOnDiskIsAnErrorNotAWrongPage) {
  OnDisk d(300);
  {
    const std::string file = d.dir.file(snapshot_name(1));
    const auto size = std::filesystem::file_size(file);
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size - 200));  // within the last event's record
    f.put('\x7f');
  }
  AuditQuery q;
  q.limit = 5;
  EXPECT_THROW(d.index.audit().page(kOrgs[0], q), std::runtime_error);
}

// The journal takes a snapshot when memory holds --audit-memory-bytes of events, and they
// leave memory; every one is still listed. Writes pause while each snapshot is written, so
// that what memory holds after it is exactly what the snapshot could not take: nothing.
TEST(AuditDisk, TheJournalSnapshotsWhenAuditEventsFillTheirMemory) {
  const std::string path = temp_dir();
  JournalOptions o;
  o.fsync = FsyncMode::everysec;
  o.audit_memory_bytes = 256 << 10;
  Store s(path, o);
  const Id org = s.run(core::CreateOrganization{"A", "a"}).org->id;
  int keys = 0;
  for (int round = 0; round < 3; ++round) {
    const uint64_t snapshots = s.journal->stats().snapshots.load();
    while (s.index->audit().memory_bytes() <= o.audit_memory_bytes) {
      s.run(core::CreateApiKey{org, "k" + std::to_string(keys++)});
      ASSERT_LT(keys, 100'000);
    }
    EXPECT_LE(s.index->audit().memory_bytes(), o.audit_memory_bytes + 4096) << "one event over";
    for (int i = 0; i < 500 && s.journal->stats().snapshots.load() == snapshots; ++i)
      usleep(10'000);
    ASSERT_GT(s.journal->stats().snapshots.load(), snapshots) << "round " << round;
    EXPECT_EQ(s.index->audit().memory_bytes(), 0u) << "round " << round;
  }
  ASSERT_NE(s.index->audit().disk(), nullptr);
  AuditQuery q;
  q.limit = 100;
  size_t listed = 0;
  for (;;) {
    const AuditPage p = s.index->audit().page(org, q);
    listed += p.events.size();
    if (!p.has_more) break;
    q.after = p.events.back().id;
  }
  EXPECT_EQ(listed, keys + 2u) << "the organization's two events and one a key";
  std::filesystem::remove_all(path);
}

// Cluster mode: etcd dropped an event the snapshot holds (past the retention). It is gone
// from pages at once, and the next snapshot leaves it out.
TEST(AuditDisk, AnEventErasedFromTheDiskIsHiddenAndLeftOutOfTheNextSnapshot) {
  OnDisk d(200);
  AuditLog want;
  for (uint64_t n = 1; n <= 200; ++n)
    if (n != 3 && n != 150) want.insert(event(kOrgs[0], n));
  d.index.audit().erase(kOrgs[0], event(kOrgs[0], 3).id);
  d.index.audit().erase(kOrgs[0], event(kOrgs[0], 150).id);
  expect_same_pages(d.index.audit(), want, kOrgs[0]);
  EXPECT_EQ(d.snapshot(2), 198u);
  expect_same_pages(d.index.audit(), want, kOrgs[0]);
}

// Cluster mode: etcd dropped a value of several events and the watch named only the first
// (cluster/README.md, "Data layout"). The retention's floor leaves every event older than
// it out of the pages, the disk's and memory's alike, and memory drops its own.
TEST(AuditDisk, EventsUnderTheRetentionFloorAreLeftOutOfPagesOnDiskAndInMemory) {
  OnDisk d(200);
  for (uint64_t n = 201; n <= 260; ++n) d.index.audit().insert(event(kOrgs[0], n));
  AuditLog want;
  for (uint64_t n = 121; n <= 260; ++n) want.insert(event(kOrgs[0], n));
  // The floor at event 121's millisecond: 1..120 (on disk) go.
  d.index.audit().set_floor(event(kOrgs[0], 121).id.millis());
  expect_same_pages(d.index.audit(), want, kOrgs[0]);
  // Past what the disk holds: memory drops what is under it, and pages leave out the rest.
  const size_t bytes = d.index.audit().memory_bytes();
  d.index.audit().set_floor(event(kOrgs[0], 231).id.millis());
  EXPECT_LT(d.index.audit().memory_bytes(), bytes);
  AuditLog newer;
  for (uint64_t n = 231; n <= 260; ++n) newer.insert(event(kOrgs[0], n));
  expect_same_pages(d.index.audit(), newer, kOrgs[0]);
  // The floor never moves back; an event under it that arrives late is not listed either.
  d.index.audit().set_floor(event(kOrgs[0], 10).id.millis());
  d.index.audit().insert(event(kOrgs[0], 100));
  expect_same_pages(d.index.audit(), newer, kOrgs[0]);
}
