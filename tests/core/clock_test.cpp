#include "core/clock.hpp"

#include <gtest/gtest.h>

using namespace keygate::core;

TEST(Clock, Rfc3339RoundTripsAtSecondPrecision) {
  EXPECT_EQ(format_rfc3339(1'795'876'200'000), "2026-11-28T14:30:00Z");
  uint64_t ms = 0;
  ASSERT_TRUE(parse_rfc3339("2026-11-28T14:30:00Z", ms));
  EXPECT_EQ(ms, 1'795'876'200'000u);
  ASSERT_TRUE(parse_rfc3339("2026-11-28T15:30:00.250+01:00", ms));
  EXPECT_EQ(ms, 1'795'876'200'250u);
}

TEST(Clock, MalformedTimesAreRejected) {
  uint64_t ms;
  EXPECT_FALSE(parse_rfc3339("2026-11-28", ms));
  EXPECT_FALSE(parse_rfc3339("2026-11-28T14:30:00", ms));  // no zone
  EXPECT_FALSE(parse_rfc3339("2026-13-28T14:30:00Z", ms));
  EXPECT_FALSE(parse_rfc3339("2026-11-28T14:30:00Zjunk", ms));
  EXPECT_FALSE(parse_rfc3339("tomorrow", ms));
}
