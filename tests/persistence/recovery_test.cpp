#include "persistence/recovery.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/clock.hpp"
#include "core/verify.hpp"
#include "persistence/codec.hpp"
#include "persistence/crc32c.hpp"
#include "persistence/journal.hpp"
#include "persistence/record.hpp"
#include "persistence/snapshot.hpp"
#include "persistence/store.hpp"

using namespace keygate;
using namespace keygate::persistence;

namespace {

std::string segment_path(const std::string& dir, uint64_t seq) {
  return dir + "/" + segment_name(seq);
}

void flip_byte(const std::string& file, size_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.read(&c, 1);
  c ^= 0x5a;
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

// Recovers `path` into a fresh index as a starting server would: the StartupError's
// message, or "" when recovery accepted the directory.
std::string refusal(const std::string& path) {
  DataDir dir(path);
  core::RcuThread rcu;
  core::Index index;
  core::StateMachine sm(index);
  try {
    recover(dir, sm, RecoverMode::start);
  } catch (const StartupError& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST(Recovery, TheLogAloneRebuildsEverything) {
  const std::string path = temp_dir();
  core::Id org, key;
  {
    Store s(path);
    auto o = s.run(core::CreateOrganization{"A", "a"});
    org = o.org->id;
    key = s.run(core::CreateApiKey{org, "k"}).key->id;
    ASSERT_FALSE(s.run(core::RevokeApiKey{org, key}).error);
  }
  Store again(path);
  EXPECT_EQ(again.report.log_records, 3u);  // one record (a group) per command
  core::ReadSection rs;
  ASSERT_NE(again.index->find_key(key), nullptr);
  EXPECT_NE(again.index->find_key(key)->load()->revoked_ms, 0u);
  std::filesystem::remove_all(path);
}

TEST(Recovery, SnapshotPlusTheLogAfterIt) {
  const std::string path = temp_dir();
  core::Id org;
  {
    Store s(path);
    org = s.run(core::CreateOrganization{"A", "a"}).org->id;
    s.journal->request_snapshot();
    // One log record so far: the organization, its first key and their two audit events,
    // as one group.
    for (int i = 0; i < 50 && !std::filesystem::exists(path + "/" + snapshot_name(1)); ++i)
      usleep(20000);
    ASSERT_TRUE(std::filesystem::exists(path + "/" + snapshot_name(1)));
    s.run(core::CreateApiKey{org, "after"});
  }
  EXPECT_FALSE(std::filesystem::exists(segment_path(path, 0)));  // covered by the snapshot, removed
  Store again(path);
  EXPECT_TRUE(again.report.snapshot_loaded);
  EXPECT_EQ(again.report.snapshot_records, 4u);  // each of them on its own
  EXPECT_EQ(again.report.log_records, 1u);
  EXPECT_EQ(again.index->key_count(), 2u);
  std::filesystem::remove_all(path);
}

TEST(Recovery, ATornTailIsCutWithAWarning) {
  const std::string path = temp_dir();
  {
    Store s(path);
    s.run(core::CreateOrganization{"A", "a"});
  }
  const std::string seg = segment_path(path, 0);
  const auto good = std::filesystem::file_size(seg);
  {
    std::ofstream f(seg, std::ios::app | std::ios::binary);
    f.write("\x40\x00\x00\x00\x12\x34", 6);  // half a header: a crash mid-append
  }
  Store again(path);
  ASSERT_EQ(again.report.warnings.size(), 1u);
  EXPECT_NE(again.report.warnings[0].find("torn"), std::string::npos);
  EXPECT_EQ(std::filesystem::file_size(seg), good);
  EXPECT_EQ(again.index->org_count(), 1u);
  std::filesystem::remove_all(path);
}

// A crash between creating the newest segment and writing its header (an empty file, or
// part of a header) lost nothing: the segment is removed with a warning, a new one takes its
// place, and writing goes on. A whole segment with a damaged header is still refused.
TEST(Recovery, ANewestSegmentWhoseCreationWasTornIsRemovedWithAWarning) {
  for (const size_t bytes : {size_t{0}, size_t{10}, kFileHeader}) {
    SCOPED_TRACE(bytes);
    const std::string path = temp_dir();
    uint64_t next = 0;
    {
      Store s(path);
      s.run(core::CreateOrganization{"A", "a"});
    }
    {
      Store s(path);
      next = s.report.next_seq;
    }
    const std::string seg = segment_path(path, next);
    {
      std::ofstream f(seg, std::ios::binary);
      f << std::string(bytes, '\x7f');  // not the magic
    }
    {  // keygate check (offline) reports it and changes nothing
      DataDir dir(path);
      core::RcuThread rcu;
      core::Index index;
      core::StateMachine sm(index);
      RecoveryReport r = recover(dir, sm, RecoverMode::check);
      ASSERT_EQ(r.warnings.size(), 1u);
      EXPECT_NE(r.warnings[0].find("being created"), std::string::npos) << r.warnings[0];
      EXPECT_EQ(std::filesystem::file_size(seg), bytes);
    }
    core::Id org;
    {
      Store again(path);
      ASSERT_EQ(again.report.warnings.size(), 1u);
      EXPECT_NE(again.report.warnings[0].find("removed"), std::string::npos)
          << again.report.warnings[0];
      EXPECT_EQ(again.report.next_seq, next);
      ASSERT_EQ(again.index->org_count(), 1u);
      EXPECT_EQ(std::filesystem::file_size(seg), kFileHeader);  // created anew, whole
      org = again.run(core::CreateOrganization{"B", "b"}).org->id;
    }
    Store last(path);
    EXPECT_TRUE(last.report.warnings.empty());
    EXPECT_EQ(last.index->org_count(), 2u);
    std::filesystem::remove_all(path);
  }
  // Past the header's length the same damage is not a torn creation.
  const std::string path = temp_dir();
  {
    Store s(path);
    s.run(core::CreateOrganization{"A", "a"});
  }
  flip_byte(segment_path(path, 0), 0);
  EXPECT_NE(refusal(path).find("bad header"), std::string::npos);
  std::filesystem::remove_all(path);
}

TEST(Recovery, CorruptionInTheMiddleRefusesToStartAndRepairCutsIt) {
  const std::string path = temp_dir();
  {
    Store s(path);
    auto org = s.run(core::CreateOrganization{"A", "a"}).org->id;
    s.run(core::CreateApiKey{org, "k1"});
    s.run(core::CreateApiKey{org, "k2"});
  }
  const std::string seg = segment_path(path, 0);
  flip_byte(seg, kFileHeader + kRecordHeader + 3);  // inside the first record
  const std::string why = refusal(path);
  EXPECT_NE(why.find("corrupt at offset 16"), std::string::npos) << why;
  EXPECT_NE(why.find(seg), std::string::npos) << why;
  {
    DataDir dir(path);
    const std::string did = repair(dir);
    EXPECT_NE(did.find("cut"), std::string::npos);
  }
  EXPECT_TRUE(std::filesystem::exists(seg + ".broken"));
  EXPECT_EQ(std::filesystem::file_size(seg), kFileHeader);
  Store again(path);  // starts, with what was before the damage (nothing)
  EXPECT_EQ(again.index->org_count(), 0u);
  std::filesystem::remove_all(path);
}

// The index keeps a key's hash in its slot, given once: a record that gives a key another
// hash, or gives a new key the hash of an existing one, was not written by keygate, and
// the server refuses to start on it.
TEST(Recovery, AKeyRecordThatChangesAKeysHashOrReusesAnotherKeysIsCorruption) {
  // And a key in a project its organization does not have: the project's record always
  // comes first.
  enum class Damage { changed_hash, reused_hash, missing_project };
  for (const Damage damage : {Damage::changed_hash, Damage::reused_hash, Damage::missing_project}) {
    const std::string path = temp_dir();
    core::ApiKey key;
    core::KeyHash hash;
    {
      Store s(path);
      auto org = s.run(core::CreateOrganization{"A", "a"}).org->id;
      auto created = s.run(core::CreateApiKey{org, "k"});
      key = *created.key;
      hash = core::hash_key(created.revealed_key);
    }
    std::string payload, record;
    switch (damage) {
      case Damage::reused_hash:
        key.id = core::IdGenerator().next(key.created_ms + 1);  // another key, the same hash
        encode(hash, key, 0, payload);
        break;
      case Damage::changed_hash:
        encode(core::hash_key("another value"), key, 0, payload);  // the same key, another hash
        break;
      case Damage::missing_project:
        key.project = 1;
        encode(hash, key, 0, payload);
        break;
    }
    append_record(record, RecordType::api_key, payload);
    // Valid records after it, more than the reader thread may hold in hand (BatchQueue:
    // about 14 batches of 1,024): it must stop, blocked or not, when the applier stops at
    // the damaged one.
    for (int i = 0; i < 20000; ++i) {
      core::Organization o;
      o.id = core::IdGenerator().next(1'700'000'000'000 + i);
      o.name = o.slug = "after" + std::to_string(i);
      payload.clear();
      encode(o, payload);
      append_record(record, RecordType::organization, payload);
    }
    {
      std::ofstream f(segment_path(path, 0), std::ios::app | std::ios::binary);
      f.write(record.data(), static_cast<std::streamsize>(record.size()));
    }
    // A new key is put without a lookup (Index::BulkLoad::log): its reuse of a value is
    // found when the log's new keys go into the tables, at the end, with no offset to give.
    const std::string why = refusal(path);
    EXPECT_NE(
        why.find(damage == Damage::reused_hash ? "two API keys with the same id or the same value"
                                               : "not valid"),
        std::string::npos)
        << "recovery of damage " << static_cast<int>(damage) << " said: '" << why << "'";
    std::filesystem::remove_all(path);
  }
}

TEST(Recovery, ADamagedSnapshotIsIgnoredWhenTheLogStillCoversEverything) {
  const std::string path = temp_dir();
  {
    Store s(path);
    s.run(core::CreateOrganization{"A", "a"});
  }
  {  // a snapshot that never got its footer
    std::ofstream f(path + "/" + snapshot_name(0), std::ios::binary);
    f.write(kSnapshotMagic, 8);
    uint64_t seq = 0;
    f.write(reinterpret_cast<const char*>(&seq), 8);
  }
  Store again(path);
  EXPECT_FALSE(again.report.snapshot_loaded);
  EXPECT_EQ(again.index->org_count(), 1u);
  std::filesystem::remove_all(path);
}

TEST(Recovery, ASecondProcessCannotOpenTheSameDirectory) {
  const std::string path = temp_dir();
  DataDir first(path);
  try {
    DataDir second(path);
    FAIL() << "two owners of one data directory";
  } catch (const StartupError& e) {
    EXPECT_NE(std::string(e.what()).find("another keygate process"), std::string::npos);
  }
  struct stat st;
  ASSERT_EQ(stat((path + "/LOCK").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::filesystem::remove_all(path);
}

// A snapshot several times the size of the window recovery maps at a time (MappedFile,
// 16 MiB), read with the lookahead that prefetches table entries and into tables sized
// from the first pass: every key comes back with its hash, organization and last use.
namespace {

// Writes snapshot-1.kgs of `keys` keys (an organization per 1,000) into `path` and nothing
// else; their hashes and ids in `hashes` and `ids`, key i last used at 1.7e12 + i seconds.
// Returns the snapshot's size in bytes.
uint64_t write_keys_snapshot(const std::string& path, size_t keys,
                             std::vector<core::KeyHash>& hashes, std::vector<core::Id>& ids) {
  core::RcuThread rcu;
  core::Index index;
  core::StateMachine sm(index);
  core::IdGenerator gen;
  core::Id org;
  for (size_t i = 0; i < keys; ++i) {
    if (i % 1000 == 0) {
      auto o = std::make_unique<core::Organization>();
      o->id = org = gen.next(1'700'000'000'000);
      o->slug = o->name = "org" + std::to_string(i);
      sm.apply(std::move(o));
    }
    auto k = std::make_unique<core::ApiKey>();
    k->id = gen.next(1'700'000'000'000);
    k->organization_id = org;
    k->scopes = core::kAllScopes;
    k->name = "key " + std::to_string(i);
    const core::KeyHash hash = core::hash_key("sk_live_window_test_" + std::to_string(i));
    hashes.push_back(hash);
    ids.push_back(k->id);
    EXPECT_TRUE(sm.try_apply(hash, std::move(k), 1'700'000'000'000 + i * 1000));  // seconds
  }
  DataDir dir(path);
  SnapshotInfo info;
  std::string error;
  EXPECT_TRUE(write_snapshot(dir, index, 1, 0, info, error)) << error;
  index.reclaim();
  return info.bytes;
}

// Replaces the version 2 footer of the snapshot `file` (`bytes` long) with `records` before
// it, then a footer counting `records` and `keys` (CRCs right: only the counts lie).
void replace_footer(const std::string& file, uint64_t bytes, const std::string& records_before,
                    uint64_t records, uint64_t keys) {
  std::filesystem::resize_file(file, bytes - 32);
  std::string payload, tail = records_before;
  payload.append(reinterpret_cast<const char*>(&records), 8);
  payload.append(reinterpret_cast<const char*>(&keys), 8);
  append_record(tail, RecordType::footer, payload);
  std::ofstream f(file, std::ios::app | std::ios::binary);
  f.write(tail.data(), static_cast<std::streamsize>(tail.size()));
}

}  // namespace

TEST(Recovery, ASnapshotLargerThanTheReadWindowLoadsEveryKey) {
  const std::string path = temp_dir();
  constexpr size_t kKeys = 300'000;  // ~200 bytes a record: ~60 MiB, over three windows
  std::vector<core::KeyHash> hashes;
  std::vector<core::Id> ids;
  ASSERT_GT(write_keys_snapshot(path, kKeys, hashes, ids), 3 * (size_t{16} << 20));
  DataDir dir(path);
  core::RcuThread rcu;
  core::Index index;
  core::StateMachine sm(index);
  const RecoveryReport rep = recover(dir, sm, RecoverMode::check);
  EXPECT_TRUE(rep.snapshot_loaded);
  EXPECT_EQ(rep.snapshot_records, kKeys + kKeys / 1000);
  EXPECT_EQ(index.key_count(), kKeys);
  EXPECT_EQ(index.org_count(), kKeys / 1000);
  core::ReadSection rs;
  for (size_t i = 0; i < kKeys; i += 997) {
    const core::KeySlot* by_hash = index.find_key(hashes[i]);
    ASSERT_NE(by_hash, nullptr) << i;
    EXPECT_EQ(by_hash, index.find_key(ids[i]));
    EXPECT_EQ(by_hash->last_used_ms(), 1'700'000'000'000 + i * 1000);
  }
  std::filesystem::remove_all(path);
}

// The footer (version 2) counts the records and, of them, the API keys, which recovery
// reads first to size the key tables once.
TEST(Recovery, ASnapshotsFooterCountsItsRecordsAndItsKeys) {
  const std::string path = temp_dir();
  std::vector<core::KeyHash> hashes;
  std::vector<core::Id> ids;
  const uint64_t bytes = write_keys_snapshot(path, 2500, hashes, ids);
  std::ifstream f(path + "/" + snapshot_name(1), std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_EQ(data.size(), bytes);
  RecordView footer;
  ASSERT_EQ(read_record(data, data.size() - 32, footer), ReadStatus::ok);
  EXPECT_EQ(footer.type, RecordType::footer);
  EXPECT_EQ(footer.version, 2);
  ASSERT_EQ(footer.payload.size(), 16u);
  uint64_t records, keys;
  std::memcpy(&records, footer.payload.data(), 8);
  std::memcpy(&keys, footer.payload.data() + 8, 8);
  EXPECT_EQ(records, 2503u);  // three organizations
  EXPECT_EQ(keys, 2500u);
  std::filesystem::remove_all(path);
}

// A snapshot another node sent is checked whole before anything is applied
// (cluster/peer_snapshot.hpp): every CRC, the footer, and every record a type and version
// this keygate reads. A newer keygate's record (a rolling upgrade) is refused there, not
// halfway through the load, where it would stop the node from starting at all.
TEST(Recovery, CheckSnapshotRefusesADamagedRecordAndOneFromANewerKeygate) {
  const std::string path = temp_dir();
  std::vector<core::KeyHash> hashes;
  std::vector<core::Id> ids;
  write_keys_snapshot(path, 100, hashes, ids);
  const std::string file = path + "/" + snapshot_name(1);
  std::string why;
  EXPECT_TRUE(check_snapshot(file, 1, why)) << why;
  EXPECT_FALSE(check_snapshot(file, 2, why));  // the header names another sequence number
  std::ifstream in(file, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  RecordView first;
  ASSERT_EQ(read_record(good, kFileHeader, first), ReadStatus::ok);
  auto write = [&](const std::string& bytes) { std::ofstream(file, std::ios::binary) << bytes; };

  std::string damaged = good;  // a byte of the first record's payload flipped
  damaged[kFileHeader + kRecordHeader + 3] ^= 0x40;
  write(damaged);
  EXPECT_FALSE(check_snapshot(file, 1, why));
  EXPECT_NE(why.find("damaged record at offset 16"), std::string::npos) << why;

  std::string newer = good;  // the first record at payload version 9, its CRC made to hold
  newer[kFileHeader + 9] = 9;
  const unsigned char tv[2] = {static_cast<unsigned char>(first.type), 9};
  const uint32_t crc = crc32c(first.payload.data(), first.payload.size(), crc32c(tv, 2));
  std::memcpy(newer.data() + kFileHeader + 4, &crc, 4);
  write(newer);
  EXPECT_FALSE(check_snapshot(file, 1, why));
  EXPECT_NE(why.find("written by a newer keygate"), std::string::npos) << why;
  std::filesystem::remove_all(path);
}

// A snapshot with its footer but a damaged record inside, or a footer that does not count
// what is before it, has applied part of itself by the time that is found (recovery reads
// and applies on two threads at once): the server refuses to start, naming the file,
// rather than start from a part. (A snapshot without its footer, one a crash interrupted,
// is passed over before anything is applied: ADamagedSnapshotIsIgnored... above.)
TEST(Recovery, ASnapshotDamagedBehindAValidFooterRefusesToStart) {
  // A damaged record; a footer counting one record too many; a key's record twice (the
  // tables, filled at the end of the load, find the two).
  enum class Damage { record, count, twin };
  for (const Damage damage : {Damage::record, Damage::count, Damage::twin}) {
    const std::string path = temp_dir();
    std::vector<core::KeyHash> hashes;
    std::vector<core::Id> ids;
    const uint64_t bytes = write_keys_snapshot(path, 5000, hashes, ids);
    const std::string file = path + "/" + snapshot_name(1);
    if (damage == Damage::record) {  // a byte of the payload of a record in the middle
      std::ifstream in(file, std::ios::binary);
      const std::string data((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
      RecordView r;
      size_t off = kFileHeader;
      while (off < bytes / 2 && read_record(data, off, r) == ReadStatus::ok) off += r.size;
      flip_byte(file, off + kRecordHeader + 1);
    } else {
      std::string twin;
      if (damage == Damage::twin) {  // the first key's record (after its organization's)
        std::ifstream in(file, std::ios::binary);
        const std::string data((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
        RecordView r;
        ASSERT_EQ(read_record(data, kFileHeader, r), ReadStatus::ok);
        ASSERT_EQ(read_record(data, kFileHeader + r.size, r), ReadStatus::ok);
        ASSERT_EQ(r.type, RecordType::api_key);
        twin = data.substr(r.offset, r.size);
      }
      // 5,005 records are there: the count is one too many, or right with the twin.
      replace_footer(file, bytes, twin, 5006, damage == Damage::twin ? 5001 : 5000);
    }
    const std::string why = refusal(path);
    EXPECT_NE(why.find("the snapshot " + file + " is damaged"), std::string::npos) << why;
    const char* says = damage == Damage::record ? "a damaged record at offset"
                       : damage == Damage::count
                           ? "its footer does not match its records"
                           : "two of its keys have the same id or the same value";
    EXPECT_NE(why.find(says), std::string::npos) << why;
    std::filesystem::remove_all(path);
  }
}

// A footer whose counts the file cannot hold (damaged, or written to make recovery reserve
// tables for billions of keys) is not believed: the snapshot is passed over before anything
// is reserved or applied.
TEST(Recovery, AFooterCountingMoreThanItsFileHoldsIsNotBelieved) {
  const std::string path = temp_dir();
  std::vector<core::KeyHash> hashes;
  std::vector<core::Id> ids;
  const uint64_t bytes = write_keys_snapshot(path, 100, hashes, ids);
  const std::string file = path + "/" + snapshot_name(1);
  replace_footer(file, bytes, "", 101, uint64_t{1} << 40);
  DataDir dir(path);
  core::RcuThread rcu;
  core::Index index;
  core::StateMachine sm(index);
  const RecoveryReport rep = recover(dir, sm, RecoverMode::check);
  EXPECT_FALSE(rep.snapshot_loaded);
  EXPECT_EQ(index.key_count(), 0u);
  ASSERT_EQ(rep.warnings.size(), 1u);
  EXPECT_NE(rep.warnings[0].find("counts more records than the file holds"), std::string::npos)
      << rep.warnings[0];
  std::filesystem::remove_all(path);
}

// Projects come back from the log and from a snapshot, with the keys that live in them.
TEST(Recovery, ProjectsAndTheirKeysComeBackFromTheLogAndFromASnapshot) {
  for (const bool snapshot : {false, true}) {
    const std::string path = temp_dir();
    core::Id org, project, archived, key;
    {
      Store s(path);
      org = s.run(core::CreateOrganization{"A", "a"}).org->id;
      project = s.run(core::CreateProject{org, "p"}).project->id;
      archived = s.run(core::CreateProject{org, "old"}).project->id;
      ASSERT_FALSE(s.run(core::ArchiveProject{org, archived}).error);
      core::CreateApiKey c{org, "k"};
      c.project = project;
      key = s.run(c).key->id;
      if (snapshot) {  // five log records, one per command
        s.journal->request_snapshot();
        for (int i = 0; i < 50 && !std::filesystem::exists(path + "/" + snapshot_name(5)); ++i)
          usleep(20000);
        ASSERT_TRUE(std::filesystem::exists(path + "/" + snapshot_name(5)));
      }
    }
    Store again(path);
    EXPECT_EQ(again.report.snapshot_loaded, snapshot);
    core::ReadSection rs;
    const core::OrgSlot* o = again.index->find_org(org);
    ASSERT_NE(o, nullptr);
    ASSERT_NE(o->project_set(), nullptr);
    ASSERT_EQ(o->project_set()->items.size(), 2u);
    EXPECT_EQ(o->project(1)->id, project);
    EXPECT_EQ(o->project(2)->id, archived);
    EXPECT_NE(o->project(2)->archived_ms, 0u);
    ASSERT_NE(again.index->find_key(key), nullptr);
    EXPECT_EQ(again.index->find_key(key)->load()->project, 1);
    std::filesystem::remove_all(path);
  }
}

// A data directory written by keygate before API key records went to payload version 2
// (tests/persistence/fixtures/make_format_v1.sh): its snapshot and its log still load, and
// every key verifies as it did then.
namespace {

// Loads the fixture data directory `name` (tests/persistence/fixtures/) and checks every
// line of its expected.txt: each key verifies with its code (a key named "project..." in a
// project), the organization and the certificate are there.
void expect_fixture_loads(const std::string& name, const std::string& snapshot,
                          const std::string& segment, uint64_t snapshot_records,
                          uint64_t log_records, uint64_t keys, int verified) {
  const std::string fixture = KEYGATE_SOURCE_DIR "/tests/persistence/fixtures/" + name;
  const std::string path = temp_dir();
  for (const std::string& f : {snapshot, segment})
    std::filesystem::copy_file(fixture + "/" + f, path + "/" + f);
  Store s(path);
  EXPECT_TRUE(s.report.snapshot_loaded);
  EXPECT_EQ(s.report.snapshot_records, snapshot_records);
  EXPECT_EQ(s.report.log_records, log_records);
  EXPECT_EQ(s.index->org_count(), 2u);
  EXPECT_EQ(s.index->key_count(), keys);
  std::ifstream expected(fixture + "/expected.txt");
  std::string line_name, value, code;
  int checked = 0;
  core::ReadSection rs;
  while (expected >> line_name >> value) {
    if (line_name == "root") continue;
    if (line_name == "organization") {
      const core::OrgSlot* org =
          s.index->find_org(*core::parse_id(core::IdKind::organization, value));
      ASSERT_NE(org, nullptr);
      EXPECT_EQ(org->load()->slug, "fixture");
      continue;
    }
    if (line_name == "certificate") {
      const core::OrgSlot* org = s.index->first_org();
      ASSERT_NE(org->certs(), nullptr);
      const core::Certificate* c =
          org->certs()->find(*core::parse_id(core::IdKind::certificate, value));
      ASSERT_NE(c, nullptr);
      EXPECT_EQ(c->name, "fixture cert");
      continue;
    }
    expected >> code;
    core::VerifyRequest req;
    req.key = value;
    req.origin = "https://app.example.com";
    const auto r = core::verify(*s.index, req, core::RateDefaults{}, core::now_ms(), 1);
    EXPECT_EQ(core::to_string(r.code), code) << line_name;
    EXPECT_EQ(r.project_id.empty(), line_name.rfind("project", 0) != 0) << line_name;
    ++checked;
  }
  EXPECT_EQ(checked, verified);
  std::filesystem::remove_all(path);
}

}  // namespace

TEST(Recovery, ADataDirectoryOfFormatVersionOneStillLoads) {
  expect_fixture_loads("format-v1", "snapshot-000000000000000a.kgs", "log-000000000000000a.kgl", 8,
                       4, 8, 8);
}

// A snapshot whose footer is version 1 (a count of records, no count of keys), as every
// snapshot before 2026-12-02 was, with every record type of that release (projects, audit
// events; a certificate's deletion and groups in the log after it): still loads.
TEST(Recovery, ASnapshotWithAVersionOneFooterStillLoads) {
  expect_fixture_loads("snapshot-v1", "snapshot-000000000000000b.kgs", "log-000000000000000b.kgl",
                       24, 4, 9, 9);
}

namespace {

std::vector<std::string> audit_types(const core::Index& index, core::Id org) {
  core::AuditQuery q;
  q.limit = 100;
  std::vector<std::string> out;
  for (const auto& e : index.audit().page(org, q).events) out.emplace_back(core::to_string(e.type));
  return {out.rbegin(), out.rend()};  // oldest first
}

}  // namespace

// A rotation changes two keys and records two events: one group record in the log. A crash
// that tears the group keeps none of it; before the groups, the old key's record could
// survive without its replacement.
TEST(Recovery, TheRecordsOfOneCommandComeBackWholeOrNotAtAll) {
  const std::string path = temp_dir();
  core::Id org, key;
  uintmax_t before_rotation = 0;
  {
    Store s(path);
    org = s.run(core::CreateOrganization{"A", "a"}).org->id;
    key = s.run(core::CreateApiKey{org, "k"}).key->id;
    before_rotation = std::filesystem::file_size(segment_path(path, 0));
    ASSERT_FALSE(s.run(core::RotateApiKey{org, key, 60}).error);
  }
  const std::string seg = segment_path(path, 0);
  const uintmax_t whole = std::filesystem::file_size(seg);
  {
    Store s(path);  // whole: the rotation and its two events are back
    EXPECT_EQ(audit_types(*s.index, org),
              (std::vector<std::string>{"organization.created", "api_key.created",
                                        "api_key.created", "api_key.updated", "api_key.created"}));
    core::ReadSection rs;
    EXPECT_NE(s.index->find_key(key)->load()->rotated_ms, 0u);
  }
  // Cut inside the group, past the first key's record in it: a torn write.
  std::filesystem::resize_file(seg, before_rotation + (whole - before_rotation) / 2);
  Store again(path);
  ASSERT_EQ(again.report.warnings.size(), 1u);
  EXPECT_NE(again.report.warnings[0].find("torn"), std::string::npos);
  EXPECT_EQ(std::filesystem::file_size(seg), before_rotation);
  EXPECT_EQ(again.index->key_count(), 2u);
  {
    core::ReadSection rs;
    EXPECT_EQ(again.index->find_key(key)->load()->rotated_ms, 0u) << "half a rotation applied";
  }
  EXPECT_EQ(
      audit_types(*again.index, org),
      (std::vector<std::string>{"organization.created", "api_key.created", "api_key.created"}));
  std::filesystem::remove_all(path);
}

TEST(Recovery, AuditEventsSurviveASnapshotWhichLeavesOutTheExpiredOnes) {
  const std::string path = temp_dir();
  JournalOptions o;
  o.audit_retention_ms = 400;
  core::Id org;
  {
    Store s(path, o);
    org = s.run(core::CreateOrganization{"A", "a"}).org->id;
    usleep(600'000);  // the organization's two events are now past the retention
    s.run(core::CreateApiKey{org, "k"});
    s.journal->request_snapshot();
    for (int i = 0; i < 100 && s.index->audit().size() != 1; ++i) usleep(20'000);
    EXPECT_EQ(audit_types(*s.index, org), (std::vector<std::string>{"api_key.created"}))
        << "dropped from memory at snapshot time";
  }
  Store again(path, o);
  EXPECT_TRUE(again.report.snapshot_loaded);
  EXPECT_EQ(audit_types(*again.index, org), (std::vector<std::string>{"api_key.created"}));
  EXPECT_EQ(again.index->key_count(), 2u) << "retention drops events, never what they describe";
  std::filesystem::remove_all(path);
}
