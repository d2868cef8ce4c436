#include "persistence/journal.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "persistence/store.hpp"

using namespace keygate;
using namespace keygate::persistence;

namespace {

uint64_t fsyncs(const JournalStats& st) {
  uint64_t n = 0;
  for (const auto& b : st.fsync_buckets) n += b.load();
  return n;
}

}  // namespace

// Group commit (DESIGN rule 3): concurrent writers share fdatasyncs, and each gets its own
// outcome.
TEST(Journal, ConcurrentSubmissionsShareTheirFsyncs) {
  const std::string path = temp_dir();
  {
    Store s(path);
    const core::Id org = s.run(core::CreateOrganization{"A", "a"}).org->id;
    constexpr int kThreads = 8, kEach = 40;
    std::vector<std::thread> writers;
    std::atomic<int> failed{0};
    for (int t = 0; t < kThreads; ++t)
      writers.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i)
          if (!s.run(core::CreateApiKey{org, "k" + std::to_string(t) + "-" + std::to_string(i)})
                   .key)
            ++failed;
      });
    for (auto& w : writers) w.join();
    EXPECT_EQ(failed.load(), 0);
    const JournalStats& st = s.journal->stats();
    EXPECT_EQ(st.records.load(),
              1u + kThreads * kEach);  // one record (a group with its event) per command
    EXPECT_LT(st.batches.load(), 1u + kThreads * kEach);  // some batches held several writers
    EXPECT_EQ(fsyncs(st), st.batches.load());             // one fdatasync per batch (always)
    EXPECT_EQ(s.index->key_count(), 1u + kThreads * kEach);
  }
  std::filesystem::remove_all(path);
}

TEST(Journal, ARefusedCommandWritesNothingAndLeavesItsBatchAlone) {
  const std::string path = temp_dir();
  {
    Store s(path);
    ASSERT_FALSE(s.run(core::CreateOrganization{"A", "a"}).error);
    const uint64_t records = s.journal->stats().records.load();
    const core::Outcome taken = s.run(core::CreateOrganization{"Again", "a"});
    EXPECT_EQ(taken.error.code, core::ErrorCode::slug_taken);
    EXPECT_EQ(s.journal->stats().records.load(), records);
    EXPECT_FALSE(s.run(core::CreateOrganization{"B", "b"}).error);
    EXPECT_EQ(s.index->org_count(), 2u);
  }
  std::filesystem::remove_all(path);
}

// --fsync=everysec: acknowledged at once, synced within about a second, and a clean stop
// syncs what is pending.
TEST(Journal, EverysecSyncsWithinASecondAndOnStop) {
  const std::string path = temp_dir();
  {
    JournalOptions o;
    o.fsync = FsyncMode::everysec;
    Store s(path, o);
    ASSERT_FALSE(s.run(core::CreateOrganization{"A", "a"}).error);
    EXPECT_EQ(fsyncs(s.journal->stats()), 0u);  // acknowledged before any fdatasync
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (fsyncs(s.journal->stats()) == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(fsyncs(s.journal->stats()), 1u);
    ASSERT_FALSE(s.run(core::CreateOrganization{"B", "b"}).error);
  }  // stop(): the pending record is synced
  Store again(path);
  EXPECT_EQ(again.index->org_count(), 2u);
  std::filesystem::remove_all(path);
}
