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

// Fixed vectors: the ULID specification's example, every bit at the edges of the groups
// format_id writes from one word, and all ones.
TEST(Ids, FormatMatchesKnownValuesAtEveryGroupEdge) {
  const auto fmt = [](uint64_t hi, uint64_t lo) { return to_string(IdKind::api_key, Id{hi, lo}); };
  EXPECT_EQ(fmt(0x01563e3ab5d3d676, 0x4c61efb99302bd5b), "key_01ARZ3NDEKTSV4RRFFQ69G5FAV");
  EXPECT_EQ(fmt(0, uint64_t{1} << 59), "key_00000000000000G00000000000");
  EXPECT_EQ(fmt(0, uint64_t{1} << 60), "key_00000000000001000000000000");
  EXPECT_EQ(fmt(uint64_t{1} << 55, 0), "key_00G00000000000000000000000");
  EXPECT_EQ(fmt(uint64_t{1} << 56, 0), "key_01000000000000000000000000");
  EXPECT_EQ(fmt(uint64_t{1} << 60, 0), "key_0G000000000000000000000000");
  EXPECT_EQ(fmt(uint64_t{1} << 61, 0), "key_10000000000000000000000000");
  EXPECT_EQ(fmt(uint64_t{1} << 63, 0), "key_40000000000000000000000000");
  EXPECT_EQ(fmt(~uint64_t{0}, ~uint64_t{0}), "key_7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
  EXPECT_EQ(to_string(IdKind::certificate, Id{0, 31}), "cert_0000000000000000000000000Z");
}

TEST(Ids, ParseRoundTripsAndRejectsOtherKindsAndShapes) {
  IdGenerator g;
  const Id id = g.next(1'700'000'000'000);
  EXPECT_EQ(parse_id(IdKind::organization, to_string(IdKind::organization, id)), id);
  EXPECT_FALSE(parse_id(IdKind::api_key, to_string(IdKind::organization, id)));
  EXPECT_FALSE(parse_id(IdKind::organization, "org_"));
  EXPECT_FALSE(
      parse_id(IdKind::organization, "org_01M81RKQRM0AXC52V8F5VHBJFU"));  // U is not Crockford
  EXPECT_FALSE(
      parse_id(IdKind::organization, "org_81M81RKQRM0AXC52V8F5VHBJF0"));  // overflows 128 bits
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
