#include "persistence/record.hpp"

#include <gtest/gtest.h>

#include "persistence/crc32c.hpp"

using namespace keygate::persistence;

namespace {
std::string three_records() {
  std::string s;
  append_record(s, RecordType::organization, "first");
  append_record(s, RecordType::api_key, std::string(100, 'x'));
  append_record(s, RecordType::organization, "");
  return s;
}
}  // namespace

TEST(Crc32c, MatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
}

TEST(Record, RoundTripsAndStaysEightByteAligned) {
  const std::string s = three_records();
  EXPECT_EQ(s.size() % 8, 0u);
  RecordView r;
  size_t off = 0;
  ASSERT_EQ(read_record(s, off, r), ReadStatus::ok);
  EXPECT_EQ(r.type, RecordType::organization);
  EXPECT_EQ(r.payload, "first");
  off += r.size;
  EXPECT_EQ(off % 8, 0u);
  ASSERT_EQ(read_record(s, off, r), ReadStatus::ok);
  EXPECT_EQ(r.payload, std::string(100, 'x'));
  off += r.size;
  ASSERT_EQ(read_record(s, off, r), ReadStatus::ok);
  EXPECT_EQ(r.payload, "");
  off += r.size;
  EXPECT_EQ(read_record(s, off, r), ReadStatus::end);
}

TEST(Record, AShortHeaderIsBad) {
  std::string s = three_records();
  RecordView r;
  EXPECT_EQ(read_record(s.substr(0, 5), 0, r), ReadStatus::bad);
}

TEST(Record, AShortPayloadIsBad) {
  std::string s = three_records();
  RecordView r;
  EXPECT_EQ(read_record(s.substr(0, 14), 0, r), ReadStatus::bad);
}

TEST(Record, ABadCrcAtTheTailIsATornWrite) {
  std::string s = three_records();
  RecordView r;
  size_t last = 0;
  for (size_t off = 0; read_record(s, off, r) == ReadStatus::ok; off += r.size) last = off;
  s[last + 4] ^= 1;  // the last record's CRC
  EXPECT_EQ(read_record(s, last, r), ReadStatus::bad);
  EXPECT_FALSE(valid_record_after(s, last));
}

TEST(Record, ABadCrcInTheMiddleIsCorruption) {
  std::string s = three_records();
  s[12] ^= 0x40;  // the first record's payload
  RecordView r;
  EXPECT_EQ(read_record(s, 0, r), ReadStatus::bad);
  EXPECT_TRUE(valid_record_after(s, 0));
}

TEST(Record, AZeroFilledTailIsNotARecord) {
  std::string s = three_records();
  const size_t end = s.size();
  s.append(64, '\0');
  RecordView r;
  EXPECT_EQ(read_record(s, end, r), ReadStatus::bad);
  EXPECT_FALSE(valid_record_after(s, end));
}
