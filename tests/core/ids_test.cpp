#include "core/ids.hpp"

#include <gtest/gtest.h>

#include <set>

using namespace keygate::core;

TEST(Ids, FormatHasPrefixAnd26CrockfordCharacters) {
  IdGenerator g;
  const std::string s = to_string(IdKind::api_key, g.next(1'700'000'000'000));
  EXPECT_EQ(s.substr(0, 4), "key_");
  ASSERT_EQ(s.size(), 30u);
  EXPECT_EQ(s.find_first_not_of("0123456789ABCDEFGHJKMNPQRSTVWXYZ", 4), std::string::npos);
}

TEST(Ids, ParseRoundTripsAndRejectsOtherKindsAndShapes) {
  IdGenerator g;
  const Id id = g.next(1'700'000'000'000);
  EXPECT_EQ(parse_id(IdKind::organization, to_string(IdKind::organization, id)), id);
  EXPECT_FALSE(parse_id(IdKind::api_key, to_string(IdKind::organization, id)));
  EXPECT_FALSE(parse_id(IdKind::organization, "org_"));
  EXPECT_FALSE(parse_id(IdKind::organization, "org_01M81RKQRM0AXC52V8F5VHBJFU"));  // U is not Crockford
  EXPECT_FALSE(parse_id(IdKind::organization, "org_81M81RKQRM0AXC52V8F5VHBJF0"));  // overflows 128 bits
}

TEST(Ids, CarryTheirMillisecondAndSortByCreation) {
  IdGenerator g;
  const Id a = g.next(1000), b = g.next(1000), c = g.next(999), d = g.next(2000);
  EXPECT_EQ(a.millis(), 1000u);
  EXPECT_LT(a, b);  // monotonic within a millisecond
  EXPECT_LT(b, c);  // and when the clock goes back
  EXPECT_LT(c, d);
  EXPECT_LT(to_string(IdKind::api_key, a), to_string(IdKind::api_key, d));  // strings sort too
}

TEST(Ids, ObserveKeepsNewIdsAboveExistingOnes) {
  IdGenerator g;
  IdGenerator other;
  const Id existing = other.next(5000);
  g.observe(existing);
  EXPECT_GT(g.next(1000), existing);
}

TEST(Ids, ManyIdsAreUnique) {
  IdGenerator g;
  std::set<Id> seen;
  for (int i = 0; i < 10000; ++i) seen.insert(g.next(static_cast<uint64_t>(1000 + i / 100)));
  EXPECT_EQ(seen.size(), 10000u);
}
