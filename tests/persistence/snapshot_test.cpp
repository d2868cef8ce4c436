#include "persistence/snapshot.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "persistence/store.hpp"

using namespace keygate;
using namespace keygate::persistence;

TEST(Snapshot, HoldsEveryRecordAndRecoveryFromItAloneRebuildsTheSameState) {
  const std::string path = temp_dir();
  core::Id suspended, revoked;
  uint64_t seq = 0;
  {
    Store s(path);
    const core::Id a = s.run(core::CreateOrganization{"A", "a"}).org->id;
    suspended = s.run(core::CreateOrganization{"B", "b"}).org->id;
    ASSERT_FALSE(
        s.run(core::UpdateOrganization{suspended, {}, {}, core::OrgStatus::suspended}).error);
    revoked = s.run(core::CreateApiKey{a, "gone"}).key->id;
    ASSERT_FALSE(s.run(core::RevokeApiKey{a, revoked}).error);
    seq = s.journal->stats().records.load();
    SnapshotInfo info;
    std::string error;
    ASSERT_TRUE(write_snapshot(*s.dir, *s.index, seq, 0, info, error)) << error;
    // Two organizations, their first keys, the revoked key, and the seven audit events.
    EXPECT_EQ(info.records, 12u);
    EXPECT_EQ(info.bytes, std::filesystem::file_size(path + "/" + snapshot_name(seq)));
    for (auto& e : std::filesystem::directory_iterator(path))
      EXPECT_NE(e.path().extension(), ".tmp") << e.path();  // published whole
  }
  // Without the log, the snapshot alone gives back the same state.
  for (auto& e : std::filesystem::directory_iterator(path))
    if (e.path().extension() == ".kgl") std::filesystem::remove(e.path());
  Store again(path);
  EXPECT_TRUE(again.report.snapshot_loaded);
  EXPECT_EQ(again.index->org_count(), 2u);
  EXPECT_EQ(again.index->key_count(), 3u);
  core::ReadSection rs;
  EXPECT_EQ(again.index->find_org(suspended)->load()->status, core::OrgStatus::suspended);
  EXPECT_NE(again.index->find_key(revoked)->load()->revoked_ms, 0u);
  EXPECT_EQ(again.index->counts().keys().revoked, 1u);
  std::filesystem::remove_all(path);
}

TEST(Snapshot, RemoveCoveredDeletesOlderSegmentsAndSnapshotsOnly) {
  const std::string path = temp_dir();
  {
    DataDir dir(path);
    for (const std::string& name :
         {segment_name(0), segment_name(10), segment_name(20), snapshot_name(10)})
      std::ofstream(dir.file(name)) << "x";
    std::ofstream(dir.file(snapshot_name(20))) << "x";
    remove_covered(dir, 20);
    EXPECT_FALSE(std::filesystem::exists(dir.file(segment_name(0))));
    EXPECT_FALSE(std::filesystem::exists(dir.file(segment_name(10))));
    EXPECT_FALSE(std::filesystem::exists(dir.file(snapshot_name(10))));
    EXPECT_TRUE(
        std::filesystem::exists(dir.file(segment_name(20))));  // the log from the snapshot on
    EXPECT_TRUE(std::filesystem::exists(dir.file(snapshot_name(20))));
  }
  std::filesystem::remove_all(path);
}
