// Anonymous sign-ups per client address (handlers/signup_limit.hpp, docs/security.md):
// a bucket of `per_hour` per address, and a flood from more addresses than are tracked is
// refused rather than tracked without bound.
#include "handlers/signup_limit.hpp"

#include <gtest/gtest.h>

#include <cstring>

using keygate::handlers::SignupLimit;

namespace {
SignupLimit::Address address(uint32_t n) {
  SignupLimit::Address a{};
  std::memcpy(a.data() + 12, &n, 4);
  return a;
}
constexpr uint64_t kHourNs = 3'600'000'000'000ull;
}  // namespace

TEST(SignupLimit, EachAddressHasItsOwnBucketThatRefills) {
  SignupLimit limit(3);
  const uint64_t t0 = kHourNs;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limit.take(address(1), t0).allowed);
  const auto refused = limit.take(address(1), t0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_GE(refused.retry_after_s, 1u);
  EXPECT_TRUE(limit.take(address(2), t0).allowed) << "another address";
  EXPECT_TRUE(limit.take(address(1), t0 + kHourNs / 3 + 1).allowed) << "one more after 20 min";
  EXPECT_TRUE(SignupLimit(0).take(address(1), t0).allowed) << "0: no limit";
}

TEST(SignupLimit, MoreAddressesThanAreTrackedAreRefusedUntilBucketsRefill) {
  SignupLimit limit(1);
  const uint64_t t0 = kHourNs;
  for (uint32_t i = 0; i < SignupLimit::kMaxAddresses; ++i)
    ASSERT_TRUE(limit.take(address(i), t0).allowed);
  EXPECT_FALSE(limit.take(address(SignupLimit::kMaxAddresses), t0).allowed)
      << "every tracked address is still limited: a new one is refused";
  EXPECT_TRUE(limit.take(address(SignupLimit::kMaxAddresses), t0 + 2 * kHourNs).allowed)
      << "once buckets are full again, their addresses are forgotten";
}
