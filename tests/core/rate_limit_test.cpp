#include "core/rate_limit.hpp"

#include <gtest/gtest.h>

using namespace keygate::core;

TEST(RateLimit, AllowsABurstThenDeniesWithRetryAfter) {
  std::atomic<uint64_t> tat{0};
  const RateLimit rl{10, 5};
  const uint64_t t0 = 1'000'000'000'000;
  for (uint32_t i = 0; i < 5; ++i) {
    RateDecision d = take_token(tat, rl, t0);
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.limit, 5u);
    EXPECT_EQ(d.remaining, 4 - i);
  }
  RateDecision denied = take_token(tat, rl, t0);
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.remaining, 0u);
  EXPECT_GE(denied.retry_after_s, 1u);
}

TEST(RateLimit, RefillsAtTheConfiguredRate) {
  std::atomic<uint64_t> tat{0};
  const RateLimit rl{10, 1};  // one token every 100 ms
  const uint64_t t0 = 1'000'000'000'000;
  EXPECT_TRUE(take_token(tat, rl, t0).allowed);
  EXPECT_FALSE(take_token(tat, rl, t0 + 50'000'000).allowed);
  EXPECT_TRUE(take_token(tat, rl, t0 + 100'000'000).allowed);
}

TEST(RateLimit, ADeniedRequestDoesNotConsume) {
  std::atomic<uint64_t> tat{0};
  const RateLimit rl{10, 1};
  const uint64_t t0 = 1'000'000'000'000;
  EXPECT_TRUE(take_token(tat, rl, t0).allowed);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(take_token(tat, rl, t0 + 1).allowed);
  EXPECT_TRUE(take_token(tat, rl, t0 + 100'000'000).allowed);
}

TEST(RateLimit, ZeroMeansUnlimited) {
  std::atomic<uint64_t> tat{0};
  for (int i = 0; i < 1000; ++i) {
    RateDecision d = take_token(tat, RateLimit{0, 0}, 1);
    ASSERT_TRUE(d.allowed);
    EXPECT_FALSE(d.limited);
  }
}

// Cluster mode without a shared count: each of n nodes holds burst / n and refills at
// rate / n, so n nodes together never admit more than one node with the whole limit.
TEST(RateLimit, ANodesFairShareIsOneNthOfTheBurstAndTheRate) {
  const RateLimit rl{100, 100};
  const uint64_t t0 = 1'000'000'000'000;
  std::atomic<uint64_t> tat{0};
  uint32_t allowed = 0;
  for (int i = 0; i < 200; ++i) allowed += take_token(tat, rl, 3, t0).allowed;
  EXPECT_EQ(allowed, 33u) << "100 / 3";
  EXPECT_EQ(take_token(tat, rl, 3, t0).limit, 33u);
  // One second later: 33 more (a token every 30 ms), not 100.
  allowed = 0;
  for (int i = 0; i < 200; ++i) allowed += take_token(tat, rl, 3, t0 + 1'000'000'000).allowed;
  EXPECT_EQ(allowed, 33u);
  // Three nodes at once, a second: 3 x 66 <= one node's 200.
  std::atomic<uint64_t> a{0}, b{0}, c{0};
  uint32_t all = 0;
  for (uint64_t ms = 0; ms <= 1000; ++ms)
    for (std::atomic<uint64_t>* t : {&a, &b, &c})
      for (int i = 0; i < 5; ++i) all += take_token(*t, rl, 3, t0 + ms * 1'000'000).allowed;
  EXPECT_LE(all, 200u);
  EXPECT_GE(all, 195u);
  // A burst smaller than the nodes rounds up to one each; one node is the whole limit;
  // zero stays unlimited.
  std::atomic<uint64_t> small{0};
  EXPECT_EQ(take_token(small, RateLimit{10, 2}, 3, t0).limit, 1u);
  std::atomic<uint64_t> one{0};
  EXPECT_EQ(take_token(one, rl, 1, t0).limit, 100u);
  EXPECT_FALSE(take_token(one, RateLimit{0, 0}, 3, t0).limited);
}
