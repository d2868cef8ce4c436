#include "core/index.hpp"

#include <gtest/gtest.h>
#include <urcu/urcu-memb.h>

#include <atomic>
#include <thread>

#include "core/key_format.hpp"

using namespace keygate::core;

namespace {

std::unique_ptr<Organization> org(IdGenerator& g, const std::string& slug) {
  auto o = std::make_unique<Organization>();
  o->id = g.next(1000);
  o->name = o->slug = slug;
  return o;
}

// An organization put into `index`: its id.
Id put_org(Index& index, IdGenerator& g, const std::string& slug) {
  auto o = org(g, slug);
  const Id id = o->id;
  index.put(std::move(o));
  return id;
}

std::unique_ptr<ApiKey> key(IdGenerator& g, Id org_id) {
  auto k = std::make_unique<ApiKey>();
  k->id = g.next(1000);
  k->organization_id = org_id;
  return k;
}

// Another version of key `id` of organization `org_id`, as try_put() takes it.
std::unique_ptr<const ApiKey> version_of(IdGenerator& g, Id org_id, Id id, uint64_t revoked_ms) {
  auto k = key(g, org_id);
  k->id = id;
  k->revoked_ms = revoked_ms;
  return k;
}

}  // namespace

TEST(Index, FindsKeysByHashAndIdAndListsThemInOrder) {
  RcuThread rcu;
  Index index;
  IdGenerator g;
  const Id oid = put_org(index, g, "a");
  std::vector<Id> ids;
  for (int i = 0; i < 100; ++i) {
    auto k = key(g, oid);
    ids.push_back(k->id);
    index.put(hash_key("value" + std::to_string(i)), std::move(k));
  }
  ReadSection rs;
  EXPECT_EQ(index.key_count(), 100u);
  KeySlot* s = index.find_key(hash_key("value42"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->id(), ids[42]);
  EXPECT_EQ(index.find_key(ids[42]), s);
  EXPECT_EQ(index.find_key(hash_key("absent")), nullptr);
  size_t n = 0;
  for (KeySlot* k = index.find_org(oid)->keys(); k; k = k->next()) EXPECT_EQ(k->id(), ids[n++]);
  EXPECT_EQ(n, 100u);
}

TEST(Index, PutReplacesTheRecordInTheSameSlot) {
  RcuThread rcu;
  Index index;
  IdGenerator g;
  const Id oid = put_org(index, g, "a");
  auto k = key(g, oid);
  const Id kid = k->id;
  auto k2 = std::make_unique<ApiKey>(*k);
  auto k3 = std::make_unique<ApiKey>(*k);
  index.put(hash_key("v"), std::move(k));
  k2->revoked_ms = 5;
  {
    ReadSection rs;
    KeySlot* before = index.find_key(kid);
    index.put(hash_key("v"), std::move(k2));
    EXPECT_EQ(index.find_key(kid), before);
    EXPECT_EQ(index.find_key(hash_key("v")), before);
    EXPECT_EQ(before->load()->revoked_ms, 5u);
    // A key's hash is its slot's for life: a version that names another is refused.
    EXPECT_FALSE(index.accepts(hash_key("other"), kid));
    EXPECT_THROW(index.put(hash_key("other"), std::move(k3)), std::logic_error);
    EXPECT_EQ(before->load()->revoked_ms, 5u);
    EXPECT_EQ(index.find_key(hash_key("other")), nullptr);
    // And no other key may take it.
    auto other = key(g, oid);
    const Id other_id = other->id;
    EXPECT_TRUE(index.accepts(hash_key("v"), kid));
    EXPECT_FALSE(index.accepts(hash_key("v"), other_id));
    EXPECT_THROW(index.put(hash_key("v"), std::move(other)), std::logic_error);
    EXPECT_EQ(index.find_key(other_id), nullptr);
    EXPECT_EQ(index.find_key(hash_key("v")), before);
  }
  index.reclaim();
  EXPECT_EQ(index.key_count(), 1u);
}

// Readers run lock-free while the writer keeps replacing records: every read sees a whole,
// published record (run under TSan to check the memory orders).
TEST(Index, ReadersSeeWholeRecordsWhileTheWriterReplacesThem) {
  RcuThread rcu;
  Index index;
  IdGenerator g;
  const Id oid = put_org(index, g, "a");
  auto k = key(g, oid);
  k->name = "v0";
  const Id kid = k->id;
  index.put(hash_key("hot"), std::move(k));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, torn{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t)
    readers.emplace_back([&] {
      RcuThread reader;
      const KeyHash h = hash_key("hot");
      while (!stop.load()) {
        ReadSection rs;
        KeySlot* s = index.find_key(h);
        const ApiKey* r = s->load();
        if (r->name != "v" + std::to_string(r->created_ms)) torn.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  for (uint64_t i = 1; i <= 20000; ++i) {
    ReadSection rs;
    auto next = std::make_unique<ApiKey>(*index.find_key(kid)->load());
    next->created_ms = i;
    next->name = "v" + std::to_string(i);
    index.put(hash_key("hot"), std::move(next));
    if (i % 100 == 0) index.reclaim();
  }
  stop = true;
  for (auto& t : readers) t.join();
  index.reclaim();
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
}

// try_put, the loader's put: refuses (false, nothing changed) what put() would throw on.
TEST(Index, TryPutRefusesAChangedHashAnotherKeysHashAndAnUnknownOrganization) {
  RcuThread rcu;
  Index index;
  auto org = std::make_unique<Organization>();
  org->id = {1, 1};
  org->slug = org->name = "a";
  index.put(std::unique_ptr<const Organization>(std::move(org)));
  auto key = [](Id id, Id org_id) {
    auto k = std::make_unique<ApiKey>();
    k->id = id;
    k->organization_id = org_id;
    return std::unique_ptr<const ApiKey>(std::move(k));
  };
  const KeyHash h1 = hash_key("one"), h2 = hash_key("two");
  auto k = key({2, 1}, {1, 1});
  ASSERT_TRUE(index.try_put(h1, k, 42'000));  // kept in seconds
  {
    ReadSection rs;
    EXPECT_EQ(index.find_key(Id{2, 1})->last_used_ms(), 42'000u);
  }
  auto changed = key({2, 1}, {1, 1});
  EXPECT_FALSE(index.try_put(h2, changed));  // a key keeps its hash
  EXPECT_NE(changed, nullptr);               // still the caller's
  auto thief = key({3, 1}, {1, 1});
  EXPECT_FALSE(index.try_put(h1, thief));  // another key's value
  auto orphan = key({4, 1}, {9, 9});
  EXPECT_FALSE(index.try_put(h2, orphan));  // no such organization
  EXPECT_EQ(index.key_count(), 1u);
  ReadSection rs;
  EXPECT_EQ(index.find_key(h2), nullptr);
}

// A snapshot's keys go into their slots as they come and into both tables at the end, all
// at once: afterwards every key is found by value and by id, in its organization's list,
// and the index goes on as if they had been put one by one.
TEST(Index, ABulkLoadFindsEveryKeyAndGoesOnAsUsual) {
  RcuThread rcu;
  Index index;
  IdGenerator g;
  const Id oid = put_org(index, g, "a");
  constexpr int kKeys = 20'000;  // past the table's first size, so the reserve matters
  std::vector<Id> ids;
  index.begin_bulk_load(Index::BulkLoad::snapshot, kKeys);
  for (int i = 0; i < kKeys; ++i) {
    std::unique_ptr<const ApiKey> k = key(g, oid);
    ids.push_back(k->id);
    ASSERT_TRUE(index.try_put(hash_key("bulk" + std::to_string(i)), k));
  }
  {
    ReadSection rs;
    EXPECT_EQ(index.find_key(ids[7]), nullptr);  // not in the tables before the end
  }
  ASSERT_TRUE(index.end_bulk_load());
  EXPECT_EQ(index.key_count(), size_t{kKeys});
  {
    ReadSection rs;
    for (int i = 0; i < kKeys; ++i) {
      KeySlot* s = index.find_key(hash_key("bulk" + std::to_string(i)));
      ASSERT_NE(s, nullptr) << i;
      EXPECT_EQ(s->id(), ids[i]);
      EXPECT_EQ(index.find_key(ids[i]), s);
    }
    size_t n = 0;
    for (KeySlot* k = index.find_org(oid)->keys(); k; k = k->next()) EXPECT_EQ(k->id(), ids[n++]);
    EXPECT_EQ(n, size_t{kKeys});
  }
  // After it, put() checks and inserts one by one again.
  std::unique_ptr<const ApiKey> thief = key(g, oid);
  EXPECT_FALSE(index.try_put(hash_key("bulk3"), thief));
  std::unique_ptr<const ApiKey> next = key(g, oid);
  const Id next_id = next->id;
  EXPECT_TRUE(index.try_put(hash_key("after"), next));
  ReadSection rs;
  EXPECT_EQ(index.find_key(hash_key("after")), index.find_key(next_id));
}

// Two keys of one bulk load with the same value's hash, or the same id, are what try_put()
// refuses one by one: the end of the load says so (recovery then refuses the snapshot).
TEST(Index, ABulkLoadOfTwoKeysWithOneHashOrOneIdFails) {
  for (const bool same_id : {false, true}) {
    RcuThread rcu;
    Index index;
    IdGenerator g;
    const Id oid = put_org(index, g, "a");
    index.begin_bulk_load(Index::BulkLoad::snapshot, 100);
    Id last;
    for (int i = 0; i < 100; ++i) {
      std::unique_ptr<const ApiKey> k = key(g, oid);
      last = k->id;
      ASSERT_TRUE(index.try_put(hash_key("v" + std::to_string(i)), k));
    }
    auto twin = key(g, oid);
    if (same_id) twin->id = last;
    std::unique_ptr<const ApiKey> t(std::move(twin));
    ASSERT_TRUE(index.try_put(hash_key(same_id ? "twin" : "v42"), t));
    EXPECT_FALSE(index.end_bulk_load()) << (same_id ? "one id" : "one hash");
  }
}

// On an index that has keys, a snapshot's bulk load is the usual one-by-one put.
TEST(Index, ASnapshotsBulkLoadIntoAnIndexWithKeysPutsOneByOne) {
  RcuThread rcu;
  Index index;
  IdGenerator g;
  const Id oid = put_org(index, g, "a");
  index.put(hash_key("first"), key(g, oid));
  index.begin_bulk_load(Index::BulkLoad::snapshot, 10);
  std::unique_ptr<const ApiKey> k = key(g, oid);
  const Id id = k->id;
  ASSERT_TRUE(index.try_put(hash_key("second"), k));
  {
    ReadSection rs;
    EXPECT_NE(index.find_key(id), nullptr);  // at once
  }
  std::unique_ptr<const ApiKey> thief = key(g, oid);
  EXPECT_FALSE(index.try_put(hash_key("first"), thief));  // refused at once
  EXPECT_TRUE(index.end_bulk_load());
}

// A log's bulk load, over keys already there: the new keys (ids above every key's) wait
// for the tables until a version of one of them comes (a rotation, a revocation), which
// finds it; a version of an older key does not make them wait less.
TEST(Index, ALogsBulkLoadPutsNewKeysInTheTablesWhenAVersionOfOneComes) {
  RcuThread rcu;
  Index index;
  IdGenerator g;
  const Id oid = put_org(index, g, "a");
  auto old_key = key(g, oid);
  const Id old_id = old_key->id;
  index.put(hash_key("old"), std::move(old_key));
  index.begin_bulk_load(Index::BulkLoad::log);
  std::vector<Id> ids;
  for (int i = 0; i < 5000; ++i) {  // past insert_all's sort threshold, past a table's first size
    std::unique_ptr<const ApiKey> k = key(g, oid);
    ids.push_back(k->id);
    ASSERT_TRUE(index.try_put(hash_key("new" + std::to_string(i)), k));
  }
  std::unique_ptr<const ApiKey> v = version_of(g, oid, old_id, 5);
  ASSERT_TRUE(index.try_put(hash_key("old"), v));
  {
    ReadSection rs;
    EXPECT_EQ(index.find_key(hash_key("old"))->load()->revoked_ms, 5u);
    EXPECT_EQ(index.find_key(ids[0]), nullptr);  // still waiting
  }
  std::unique_ptr<const ApiKey> r = version_of(g, oid, ids[4321], 7);
  ASSERT_TRUE(index.try_put(hash_key("new4321"), r));
  {
    ReadSection rs;
    EXPECT_EQ(index.find_key(ids[4321])->load()->revoked_ms, 7u);
    for (int i = 0; i < 5000; ++i)
      ASSERT_EQ(index.find_key(hash_key("new" + std::to_string(i))), index.find_key(ids[i])) << i;
  }
  // A version that changes a new key's hash is refused, as outside a bulk load.
  std::unique_ptr<const ApiKey> m = version_of(g, oid, ids[1], 0);
  EXPECT_FALSE(index.try_put(hash_key("elsewhere"), m));
  // More new keys, and one whose id is not the greatest (a clock that went back): looked
  // up, not found, put at once.
  std::unique_ptr<const ApiKey> later = key(g, oid);
  const Id later_id = later->id;
  ASSERT_TRUE(index.try_put(hash_key("later"), later));
  std::unique_ptr<const ApiKey> e = version_of(g, oid, Id{1, 1}, 0);
  ASSERT_TRUE(index.try_put(hash_key("early"), e));
  {
    ReadSection rs;
    EXPECT_NE(index.find_key(Id{1, 1}), nullptr);
    EXPECT_EQ(index.find_key(later_id), nullptr);
  }
  ASSERT_TRUE(index.end_bulk_load());
  EXPECT_EQ(index.key_count(), 5003u);
  ReadSection rs;
  EXPECT_EQ(index.find_key(hash_key("later")), index.find_key(later_id));
  size_t listed = 0;
  for (KeySlot* k = index.find_org(oid)->keys(); k; k = k->next()) ++listed;
  EXPECT_EQ(listed, 5003u);
}

// A new key of a log with another key's value, waiting for the tables or already in them:
// the end of the load says so (recovery then refuses to start).
TEST(Index, ALogsBulkLoadOfANewKeyWithAnotherKeysValueFails) {
  for (const bool in_tables : {false, true}) {
    RcuThread rcu;
    Index index;
    IdGenerator g;
    const Id oid = put_org(index, g, "a");
    index.put(hash_key("there"), key(g, oid));
    index.begin_bulk_load(Index::BulkLoad::log);
    std::unique_ptr<const ApiKey> first = key(g, oid);
    ASSERT_TRUE(index.try_put(hash_key("first"), first));
    std::unique_ptr<const ApiKey> thief = key(g, oid);
    ASSERT_TRUE(index.try_put(hash_key(in_tables ? "there" : "first"), thief));
    EXPECT_FALSE(index.end_bulk_load()) << (in_tables ? "in the tables" : "waiting");
    // A load that fails leaves the next one clean.
    index.begin_bulk_load(Index::BulkLoad::log);
    EXPECT_TRUE(index.end_bulk_load());
  }
}

namespace {

// The ids along an organization's list, in order.
std::vector<Id> listed(const Index& index, Id oid) {
  ReadSection rs;
  std::vector<Id> out;
  for (KeySlot* k = index.find_org(oid)->keys(); k; k = k->next()) out.push_back(k->id());
  return out;
}

}  // namespace

// --reclaim-keys-after: a key ended (revoked, expired, rotated past its grace) is gone that
// long after its end, from both tables and its organization's list, first, middle or last;
// keys put after it still append in order.
TEST(Index, ReclaimsEndedKeysAfterTheirTimeWhereverTheyAreListed) {
  RcuThread rcu;
  Index index;
  index.set_reclaim_after(10'000);
  IdGenerator g;
  const Id oid = put_org(index, g, "a");
  std::vector<Id> ids;
  for (int i = 0; i < 5; ++i) {
    auto k = key(g, oid);
    ids.push_back(k->id);
    if (i % 2 == 0) k->revoked_ms = 1'000;  // the first, the middle and the last
    if (i == 1) k->expires_ms = 1'500;
    if (i == 3) k->rotated_ms = 500, k->grace_expires_ms = 3'000;
    index.put(hash_key("v" + std::to_string(i)), std::move(k));
  }
  index.advance_clock(10'999);
  EXPECT_EQ(listed(index, oid).size(), 5u) << "not before its time";
  EXPECT_EQ(index.counts().keys().revoked, 3u);
  index.advance_clock(11'000);
  EXPECT_EQ(listed(index, oid), (std::vector<Id>{ids[1], ids[3]}));
  {
    ReadSection rs;
    EXPECT_EQ(index.find_key(ids[0]), nullptr);
    EXPECT_EQ(index.find_key(hash_key("v4")), nullptr);
    EXPECT_NE(index.find_key(hash_key("v1")), nullptr);
    EXPECT_EQ(index.find_org(oid)->key_count.load(), 2u) << "a place in --max-keys-per-org again";
  }
  EXPECT_EQ(index.key_count(), 2u);
  EXPECT_EQ(index.counts().keys().revoked, 0u);
  EXPECT_EQ(index.counts().keys().expired, 2u) << "past its expiry, past its grace";
  EXPECT_EQ(index.reclaimed_keys(), 3u);
  index.advance_clock(11'500);
  auto k = key(g, oid);  // after a reclaimed last key: appended after the new last one
  const Id fresh = k->id;
  index.put(hash_key("fresh"), std::move(k));
  EXPECT_EQ(listed(index, oid), (std::vector<Id>{ids[3], fresh}));
  index.advance_clock(13'000);
  EXPECT_EQ(listed(index, oid), (std::vector<Id>{fresh}));
  EXPECT_EQ(index.counts().keys().total(), 1u);
  EXPECT_EQ(index.reclaimed_keys(), 5u);
}

// The end that counts is the current version's: an expiry moved later, or a key that is
// no longer rotating, waits; a key with no end is never reclaimed; 0 reclaims nothing.
TEST(Index, ReclaimFollowsTheKeysCurrentVersion) {
  RcuThread rcu;
  IdGenerator g;
  {
    Index index;
    index.set_reclaim_after(1'000);
    const Id oid = put_org(index, g, "a");
    auto k = key(g, oid);
    const Id kid = k->id;
    k->expires_ms = 1'000;
    index.put(hash_key("moved"), std::move(k));
    auto later = key(g, oid);
    later->id = kid;
    later->expires_ms = 50'000;
    index.put(hash_key("moved"), std::move(later));
    index.put(hash_key("endless"), key(g, oid));
    index.advance_clock(40'000);
    EXPECT_EQ(index.key_count(), 2u);
    index.advance_clock(51'000);
    EXPECT_EQ(index.key_count(), 1u);
    index.advance_clock(UINT64_MAX / 2);
    EXPECT_EQ(index.key_count(), 1u) << "a key without an end stays";
  }
  {
    Index index;  // 0: never
    const Id oid = put_org(index, g, "b");
    index.put(hash_key("r"), version_of(g, oid, g.next(1000), 1));
    index.advance_clock(UINT64_MAX / 2);
    EXPECT_EQ(index.key_count(), 1u);
  }
}

// A reclaimed key's slot comes back for a new key once no reader can hold it, so that keys
// created and reclaimed for ever hold a bounded number of slots.
TEST(Index, AReclaimedSlotIsReusedAfterTheGracePeriod) {
  RcuThread rcu;
  Index index;
  index.set_reclaim_after(1);
  IdGenerator g;
  const Id oid = put_org(index, g, "a");
  const Id kid = g.next(1000);
  index.put(hash_key("old"), version_of(g, oid, kid, 1'000));
  const KeySlot* old_slot;
  {
    ReadSection rs;
    old_slot = index.find_key(kid);
  }
  index.advance_clock(2'000);
  ASSERT_EQ(index.key_count(), 0u);
  urcu_memb_barrier();  // the batch's callback has given the slot back
  index.put(hash_key("new"), key(g, oid));
  ReadSection rs;
  EXPECT_EQ(index.find_key(hash_key("new")), old_slot);
  EXPECT_EQ(index.find_key(kid), nullptr);
}

// Readers walk lists and look keys up while the writer reclaims and adds keys: a walk sees
// ids in order, each slot whole (run under TSan to check the memory orders).
TEST(Index, ReadersWalkListsWhileTheWriterReclaimsKeys) {
  RcuThread rcu;
  Index index;
  index.set_reclaim_after(1);
  IdGenerator g;
  const Id oid = put_org(index, g, "a");
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> walks{0}, disorder{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t)
    readers.emplace_back([&] {
      RcuThread reader;
      while (!stop.load()) {
        ReadSection rs;
        Id prev;
        for (KeySlot* k = index.find_org(oid)->keys(); k; k = k->next()) {
          const ApiKey* r = k->load();
          if (!(prev < r->id) || r->organization_id != oid) disorder.fetch_add(1);
          prev = r->id;
        }
        walks.fetch_add(1);
      }
    });
  for (uint64_t i = 1; i <= 20'000; ++i) {
    // Every other key revoked at once: reclaimed the next tick, between live ones.
    index.put(hash_key("k" + std::to_string(i)), version_of(g, oid, g.next(1000), i % 2 ? i : 0));
    index.advance_clock(i + 1);
  }
  while (walks.load() < 100) std::this_thread::yield();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(disorder.load(), 0u);
  EXPECT_EQ(index.key_count(), 10'000u);
  EXPECT_EQ(listed(index, oid).size(), 10'000u);
}

// A list is in the order keys were put, not always in id order (cluster nodes assign ids on
// their own clocks): keys that go are found wherever they are in it, and none that goes
// stays listed (a reader would then reach a freed record).
TEST(Index, ReclaimsKeysFromAListThatIsNotInIdOrder) {
  RcuThread rcu;
  Index index;
  index.set_reclaim_after(1);
  IdGenerator g;
  const Id oid = put_org(index, g, "a");
  std::vector<Id> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(g.next(1000));
  // Put newest first: the list runs 5, 4, 3, 2, 1, 0 by id. 4, 2 and 0 are revoked.
  for (int i = 5; i >= 0; --i)
    index.put(hash_key("v" + std::to_string(i)), version_of(g, oid, ids[i], i % 2 ? 0 : 1'000));
  index.advance_clock(5'000);
  EXPECT_EQ(listed(index, oid), (std::vector<Id>{ids[5], ids[3], ids[1]}));
  EXPECT_EQ(index.key_count(), 3u);
  {
    ReadSection rs;
    EXPECT_EQ(index.find_org(oid)->key_count.load(), 3u);
  }
  auto k = key(g, oid);
  const Id fresh = k->id;
  index.put(hash_key("fresh"), std::move(k));
  EXPECT_EQ(listed(index, oid), (std::vector<Id>{ids[5], ids[3], ids[1], fresh}));
}

// A load may put an organization's keys in another order than their ids' (cluster mode
// reads them from etcd in the order of their values' hashes): pages list them in id order
// again once it ends, in bulk (end_bulk_load()) or not (restore_key_order()).
TEST(Index, AnOrganizationsKeysAreInIdOrderAgainAfterALoadThatPutThemInAnother) {
  RcuThread rcu;
  Index index;
  IdGenerator g;
  const Id a = put_org(index, g, "a"), b = put_org(index, g, "b");
  std::vector<Id> ids;
  for (int i = 0; i < 1'000; ++i) ids.push_back(g.next(1000));
  std::vector<int> order(ids.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i * 7919 % ids.size());
  index.begin_bulk_load(Index::BulkLoad::snapshot, ids.size());
  for (const int i : order) {
    std::unique_ptr<const ApiKey> k = version_of(g, a, ids[static_cast<size_t>(i)], 0);
    ASSERT_TRUE(index.try_put(hash_key("k" + std::to_string(i)), k));
  }
  ASSERT_TRUE(index.end_bulk_load());
  EXPECT_EQ(listed(index, a), ids);
  {
    ReadSection rs;
    EXPECT_EQ(index.find_key(hash_key("k500"))->id(), ids[500]);
  }
  // One by one, newest first (a reload of a running node).
  std::vector<Id> more;
  for (int i = 0; i < 50; ++i) more.push_back(g.next(1000));
  for (int i = 49; i >= 0; --i)
    index.put(hash_key("m" + std::to_string(i)), version_of(g, b, more[static_cast<size_t>(i)], 0));
  EXPECT_EQ(listed(index, b), std::vector<Id>(more.rbegin(), more.rend()));
  EXPECT_EQ(listed(index, a), ids) << "untouched";
  index.restore_key_order();
  EXPECT_EQ(listed(index, b), more);
  // The last key is the last again: a new one goes after it.
  auto k = key(g, b);
  const Id fresh = k->id;
  index.put(hash_key("fresh"), std::move(k));
  more.push_back(fresh);
  EXPECT_EQ(listed(index, b), more);
  {
    ReadSection rs;
    EXPECT_EQ(index.find_org(b)->key_count.load(), 51u);
  }
}
