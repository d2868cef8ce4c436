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
