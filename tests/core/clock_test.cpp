#include "core/clock.hpp"

#include <gtest/gtest.h>

using namespace keygate::core;

TEST(Clock, Rfc3339RoundTripsAtSecondPrecision) {
  EXPECT_EQ(format_rfc3339(1'795'876'200'000), "2026-11-28T14:30:00Z");
  EXPECT_EQ(parse_rfc3339("2026-11-28T14:30:00Z"), 1'795'876'200'000u);
  EXPECT_EQ(parse_rfc3339("2026-11-28T15:30:00.250+01:00"), 1'795'876'200'250u);
}

// The examples of RFC 3339 section 5.8 that keygate can represent, and neighbours of the
// limits: each must read as the Unix time given.
struct Valid {
  const char* text;
  uint64_t unix_ms;
};
constexpr Valid kValid[] = {
    {"1985-04-12T23:20:50.52Z", 482'196'050'520},    // RFC 3339 5.8
    {"1996-12-19T16:39:57-08:00", 851'042'397'000},  // RFC 3339 5.8
    {"1970-01-01T00:00:00Z", 0},
    {"2028-02-29T00:00:00Z", 1'835'395'200'000},  // a leap year's 29 February
    {"2000-02-29T12:00:00Z", 951'825'600'000},    // divisible by 400: leap
    {"2026-12-31T23:59:59.999Z", 1'798'761'599'999},
    {"2026-11-28t14:30:00z", 1'795'876'200'000},            // T and Z in lower case (5.6, note)
    {"2026-11-28T14:30:00.123456789Z", 1'795'876'200'123},  // past the millisecond: dropped
    {"2026-11-29T14:29:00+23:59", 1'795'876'200'000},
    {"2026-11-27T14:31:00-23:59", 1'795'876'200'000},
    {"2026-11-28T14:30:00-00:00", 1'795'876'200'000},  // "unknown local offset"
};

TEST(Clock, Rfc3339ValidTimesReadAsTheirUnixTime) {
  for (const auto& v : kValid) {
    const auto got = parse_rfc3339(v.text);
    ASSERT_TRUE(got.has_value()) << v.text << ": " << got.error();
    EXPECT_EQ(*got, v.unix_ms) << v.text;
  }
}

// Times that are malformed or do not exist, each with the words its error must contain.
struct Invalid {
  const char* text;
  const char* says;
};
constexpr Invalid kInvalid[] = {
    {"2026-11-28", "not an RFC 3339 time"},
    {"tomorrow", "not an RFC 3339 time"},
    {"2026-11-28 14:30:00Z", "not an RFC 3339 time"},  // RFC 3339 allows a space; the API does not
    {"2026-11-28T14:30:00", "no time zone"},
    {"2026-11-28T14:30:00Zjunk", "after the time zone"},
    {"2026-13-28T14:30:00Z", "month 13"},
    {"2026-00-28T14:30:00Z", "month 00"},
    {"2027-02-31T00:00:00Z", "day 31, but 2027-02 has 28 days"},
    {"2027-02-29T00:00:00Z", "day 29, but 2027-02 has 28 days"},  // not a leap year
    {"2100-02-29T00:00:00Z", "day 29, but 2100-02 has 28 days"},  // divisible by 100, not 400
    {"2026-04-31T00:00:00Z", "day 31, but 2026-04 has 30 days"},
    {"2026-11-00T00:00:00Z", "day 00"},
    {"2026-11-28T24:00:00Z", "hour 24"},
    {"2026-11-28T14:60:00Z", "minute 60"},
    {"2026-11-28T14:30:61Z", "second 61"},
    {"1990-12-31T23:59:60Z", "leap second"},  // RFC 3339 5.8: valid there, not representable here
    {"1990-12-31T15:59:60-08:00", "leap second"},  // RFC 3339 5.8
    {"2026-11-28T14:30:00+99:00", "offset +99:00"},
    {"2026-11-28T14:30:00+24:00", "offset +24:00"},
    {"2026-11-28T14:30:00-01:60", "offset -01:60"},
    {"2026-11-28T14:30:00+0100", "not +HH:MM"},
    {"2026-11-28T14:30:00.Z", "'.' without digits"},
    {"1937-01-01T12:00:27.87+00:20", "before 1970"},  // RFC 3339 5.8
    {"1969-12-31T23:59:59Z", "before 1970"},
};

TEST(Clock, Rfc3339ImpossibleTimesAreRefusedSayingWhy) {
  for (const auto& v : kInvalid) {
    const auto got = parse_rfc3339(v.text);
    ASSERT_FALSE(got.has_value()) << v.text << " was accepted as " << *got;
    EXPECT_NE(got.error().find(v.says), std::string::npos) << v.text << ": " << got.error();
  }
}
