#include "persistence/segment.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "persistence/record.hpp"
#include "persistence/store.hpp"

using namespace keygate::persistence;

namespace {

std::string records(int n, char fill = 'r') {
  std::string out;
  for (int i = 0; i < n; ++i)
    append_record(out, RecordType::organization, std::string(20 + i, fill));
  return out;
}

uint64_t file_size(const std::string& p) {
  return std::filesystem::file_size(p);
}

}  // namespace

TEST(Segment, CreateLeavesAWholeHeaderUnderTheFinalNameAndNoTemporaryFile) {
  const std::string path = temp_dir();
  {
    DataDir dir(path);
    Segment s;
    std::string error;
    ASSERT_TRUE(Segment::create(dir, 7, s, error)) << error;
    EXPECT_EQ(file_size(s.path()), kFileHeader);
    EXPECT_FALSE(std::filesystem::exists(s.path() + ".tmp"));
    std::ifstream in(s.path(), std::ios::binary);
    char magic[8];
    in.read(magic, 8);
    EXPECT_EQ(std::string(magic, 8), std::string(kSegmentMagic, 8));
    EXPECT_EQ(s.first_seq(), 7u);
    EXPECT_EQ(s.next_seq(), 7u);
    EXPECT_FALSE(s.dirty());
  }
  std::filesystem::remove_all(path);
}

TEST(Segment, AppendIsDirtyUntilSyncMakesItDurable) {
  const std::string path = temp_dir();
  {
    DataDir dir(path);
    Segment s;
    std::string error;
    ASSERT_TRUE(Segment::create(dir, 0, s, error));
    const std::string batch = records(3);
    ASSERT_TRUE(s.append(batch, 3, error)) << error;
    EXPECT_TRUE(s.dirty());
    EXPECT_EQ(s.size(), kFileHeader + batch.size());
    EXPECT_EQ(s.next_seq(), 3u);
    ASSERT_TRUE(s.sync(error)) << error;
    EXPECT_FALSE(s.dirty());
    EXPECT_EQ(file_size(s.path()), s.size());
  }
  std::filesystem::remove_all(path);
}

// What reopen() does after a failed fdatasync: the file goes back to what was durable, and
// is verified before it is written to again.
TEST(Segment, ReopenCutsBackToTheDurableSizeAndVerifiesWhatIsLeft) {
  const std::string path = temp_dir();
  {
    DataDir dir(path);
    Segment s;
    std::string error;
    ASSERT_TRUE(Segment::create(dir, 0, s, error));
    ASSERT_TRUE(s.append(records(2), 2, error));
    ASSERT_TRUE(s.sync(error));
    const uint64_t durable = s.size();
    ASSERT_TRUE(s.append(records(4, 'x'), 4, error));  // never synced
    ASSERT_TRUE(s.reopen(error)) << error;
    EXPECT_EQ(s.size(), durable);
    EXPECT_EQ(file_size(s.path()), durable);
    EXPECT_EQ(s.next_seq(), 2u);
    EXPECT_FALSE(s.dirty());
    ASSERT_TRUE(s.append(records(1), 1, error));  // and appends go on from there
    EXPECT_EQ(s.next_seq(), 3u);
  }
  std::filesystem::remove_all(path);
}

TEST(Segment, ReopenRefusesAFileDamagedBelowItsDurableSize) {
  const std::string path = temp_dir();
  {
    DataDir dir(path);
    Segment s;
    std::string error;
    ASSERT_TRUE(Segment::create(dir, 0, s, error));
    ASSERT_TRUE(s.append(records(2), 2, error));
    ASSERT_TRUE(s.sync(error));
    {
      std::fstream f(s.path(), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(kFileHeader + 12));  // inside the first record's payload
      f.put('!');
    }
    EXPECT_FALSE(s.reopen(error));
    EXPECT_NE(error.find("damage at offset 16"), std::string::npos) << error;
    EXPECT_FALSE(s.usable());
  }
  std::filesystem::remove_all(path);
}
