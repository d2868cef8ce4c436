#include "core/status_counts.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

using namespace keygate::core;

namespace {

std::unique_ptr<ApiKey> key(uint64_t expires = 0, uint64_t rotated = 0, uint64_t grace = 0,
                            uint64_t revoked = 0) {
  auto k = std::make_unique<ApiKey>();
  k->expires_ms = expires;
  k->rotated_ms = rotated;
  k->grace_expires_ms = grace;
  k->revoked_ms = revoked;
  return k;
}

// What a walk over every key would count at `now`: the definition the counters must meet.
KeyStatusCounts walk(const std::vector<std::unique_ptr<ApiKey>>& keys, uint64_t now) {
  KeyStatusCounts c;
  for (const auto& k : keys) {
    switch (k->status_at(now)) {
      case KeyStatus::active:
        ++c.active;
        break;
      case KeyStatus::rotating:
        ++c.rotating;
        break;
      case KeyStatus::expired:
        ++c.expired;
        break;
      case KeyStatus::revoked:
        ++c.revoked;
        break;
    }
  }
  return c;
}

void expect_counts(const KeyStatusCounts& got, const KeyStatusCounts& want, const char* when) {
  EXPECT_EQ(got.active, want.active) << when;
  EXPECT_EQ(got.rotating, want.rotating) << when;
  EXPECT_EQ(got.expired, want.expired) << when;
  EXPECT_EQ(got.revoked, want.revoked) << when;
}

}  // namespace

TEST(StatusCounts, KeysMoveToExpiredWhenTheClockPassesTheirEnd) {
  StatusCounts counts;
  counts.advance(1'000);
  auto plain = key();
  auto expiring = key(5'000);
  auto rotating = key(0, 900, 3'000);
  auto revoked = key(4'000, 0, 0, 950);
  for (const ApiKey* k : {plain.get(), expiring.get(), rotating.get(), revoked.get()})
    counts.replace(nullptr, k);
  expect_counts(counts.keys(), {2, 1, 0, 1}, "at 1 s");
  counts.advance(3'000);  // the grace period ends: rotating -> expired
  expect_counts(counts.keys(), {2, 0, 1, 1}, "at 3 s");
  counts.advance(4'999);
  expect_counts(counts.keys(), {2, 0, 1, 1}, "just before 5 s");
  counts.advance(5'000);
  expect_counts(counts.keys(), {1, 0, 2, 1}, "at 5 s");
  counts.advance(2'000);  // time does not go back
  expect_counts(counts.keys(), {1, 0, 2, 1}, "after an earlier time");
}

TEST(StatusCounts, AVersionReplacedBeforeItsEndIsNeverCountedAsExpired) {
  StatusCounts counts;
  counts.advance(1'000);
  auto first = key(10'000);
  counts.replace(nullptr, first.get());
  auto revoked = key(10'000, 0, 0, 2'000);  // revoked before it expired
  counts.replace(first.get(), revoked.get());
  counts.advance(20'000);
  expect_counts(counts.keys(), {0, 0, 0, 1}, "revoked, then its old expiry passes");
}

TEST(StatusCounts, OrganizationsAreCountedByStatus) {
  StatusCounts counts;
  Organization a, b;
  counts.replace(nullptr, &a);
  counts.replace(nullptr, &b);
  Organization suspended = b;
  suspended.status = OrgStatus::suspended;
  counts.replace(&b, &suspended);
  EXPECT_EQ(counts.organizations().active, 1u);
  EXPECT_EQ(counts.organizations().suspended, 1u);
}

// Random versions, replacements and clock steps: after every step the counters equal a
// walk over the current versions at the counters' clock. Many replacements of far-future
// ends also exercise the compaction of cancelled ends.
TEST(StatusCounts, MatchTheWalkOverEveryKeyThroughRandomChanges) {
  std::mt19937_64 rng(42);
  StatusCounts counts;
  std::vector<std::unique_ptr<ApiKey>> current;
  std::vector<std::unique_ptr<ApiKey>> retired;  // keep replaced versions alive, as RCU does
  uint64_t clock = 1'000'000;
  counts.advance(clock);
  auto random_key = [&] {
    auto pick = [&](uint64_t span) { return clock - 1'000 + rng() % span; };
    switch (rng() % 5) {
      case 0:
        return key();
      case 1:
        return key(pick(50'000));
      case 2:
        return key(0, clock, pick(20'000));
      case 3:
        return key(pick(80'000), clock, pick(20'000));
      default:
        return key(rng() % 2 ? pick(80'000) : 0, 0, 0, clock);
    }
  };
  for (int step = 0; step < 60'000; ++step) {
    const uint64_t r = rng() % 10;
    if (r < 4 || current.empty()) {
      current.push_back(random_key());
      counts.replace(nullptr, current.back().get());
    } else if (r < 8) {
      auto& slot = current[rng() % current.size()];
      auto next = random_key();
      counts.replace(slot.get(), next.get());
      retired.push_back(std::move(slot));
      slot = std::move(next);
    } else {
      clock += rng() % 3'000;
      counts.advance(clock);
    }
    if (step % 997 == 0) {
      const KeyStatusCounts want = walk(current, clock);
      const KeyStatusCounts got = counts.keys();
      ASSERT_EQ(got.active, want.active) << "step " << step;
      ASSERT_EQ(got.rotating, want.rotating) << "step " << step;
      ASSERT_EQ(got.expired, want.expired) << "step " << step;
      ASSERT_EQ(got.revoked, want.revoked) << "step " << step;
    }
  }
  expect_counts(counts.keys(), walk(current, clock), "at the end");
}
