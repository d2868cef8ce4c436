#include "core/hit_log.hpp"

#include <gtest/gtest.h>

#include <map>
#include <thread>

namespace keygate::core {
namespace {

TEST(HitLog, EveryHitOfEveryThreadIsDrainedOnce) {
  HitLog log(1 << 10);
  std::atomic<bool> done{false};
  std::map<uint64_t, int> seen;
  std::vector<Id> out;
  std::thread drainer([&] {
    while (!done.load()) {
      out.clear();
      log.drain(out);
      for (const Id& id : out) ++seen[id.lo];
    }
  });
  std::vector<std::thread> writers;
  for (uint64_t t = 0; t < 3; ++t)
    writers.emplace_back([&, t] {
      for (uint64_t i = 0; i < 100'000; ++i) {
        log.record(Id{t, i % 7});
        if (i % 512 == 0) std::this_thread::yield();  // let the drainer keep up
      }
    });
  for (auto& w : writers) w.join();
  done = true;
  drainer.join();
  out.clear();
  log.drain(out);
  for (const Id& id : out) ++seen[id.lo];
  int total = 0;
  for (const auto& [k, n] : seen) total += n;
  EXPECT_EQ(static_cast<uint64_t>(total) + log.dropped(), 300'000u);
}

TEST(HitLog, AFullRingDropsAndCountsInsteadOfWaiting) {
  HitLog log(4);
  for (uint64_t i = 0; i < 10; ++i) log.record(Id{1, i});
  EXPECT_EQ(log.dropped(), 6u);
  std::vector<Id> out;
  log.drain(out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[3].lo, 3u) << "the oldest kept, in order";
  log.record(Id{1, 99});  // room again once drained
  out.clear();
  log.drain(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].lo, 99u);
}

}  // namespace
}  // namespace keygate::core
