#include "core/slot_table.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <new>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "core/index.hpp"  // RcuThread, ReadSection

using namespace keygate::core;

namespace {

struct Item {
  uint64_t key;
};

bool match_item(const void* slot, const void* key) noexcept {
  return static_cast<const Item*>(slot)->key == *static_cast<const uint64_t*>(key);
}

Item* find(const SlotTable& t, uint64_t key, uint64_t tag) {
  return static_cast<Item*>(t.find(tag, match_item, &key));
}

// An Item built in `arena`, with its number.
std::pair<Item*, uint32_t> make_item(SlotArena& arena, uint64_t key) {
  const auto [memory, number] = arena.allocate();
  return {new (memory) Item{key}, number};
}

}  // namespace

TEST(SlotArena, NumbersNameTheirSlotsAcrossChunks) {
  SlotArena arena(72);  // 29,127 to a 2 MiB chunk: numbers are divided, not shifted
  std::vector<void*> slots;
  for (uint32_t i = 0; i < 100'000; ++i) {  // four chunks
    const auto [memory, number] = arena.allocate();
    ASSERT_EQ(number, i + 1) << "numbers count from 1; 0 means none";
    std::memset(memory, static_cast<int>(i & 0xff), 72);  // each slot is usable memory
    slots.push_back(memory);
  }
  for (uint32_t i = 0; i < slots.size(); ++i) {
    ASSERT_EQ(arena.at(i + 1), slots[i]);
    ASSERT_EQ(*static_cast<unsigned char*>(slots[i]), i & 0xff) << "slots do not overlap";
  }
}

TEST(SlotTable, FindsWhatWasInsertedAcrossGrowthAndNothingElse) {
  RcuThread rcu;
  SlotArena arena(sizeof(Item));
  SlotTable table(arena);
  const size_t initial = table.capacity();
  std::vector<Item*> items(100'000);
  for (uint64_t i = 0; i < items.size(); ++i) {
    auto [item, number] = make_item(arena, i);
    items[i] = item;
    table.insert(mix64(i), number);
  }
  EXPECT_EQ(table.size(), items.size());
  EXPECT_GT(table.capacity(), initial);
  EXPECT_LE(table.size() * 10, table.capacity() * 7) << "load stays under 70 %";
  ReadSection rs;
  for (uint64_t i = 0; i < items.size(); ++i) ASSERT_EQ(find(table, i, mix64(i)), items[i]) << i;
  for (uint64_t i = items.size(); i < items.size() + 10'000; ++i)
    ASSERT_EQ(find(table, i, mix64(i)), nullptr);
}

TEST(SlotTable, EqualTagsAreToldApartByTheMatch) {
  RcuThread rcu;
  SlotArena arena(sizeof(Item));
  SlotTable table(arena);
  auto [a, na] = make_item(arena, 1);
  auto [b, nb] = make_item(arena, 2);
  auto [c, nc] = make_item(arena, 3);
  auto [d, nd] = make_item(arena, 4);
  table.insert(42, na);
  table.insert(42, nb);
  table.insert(42 + table.capacity(), nc);     // same home entry, different tag
  table.insert(42 + (uint64_t{1} << 32), nd);  // same 32 kept bits: only the match tells
  ReadSection rs;
  EXPECT_EQ(find(table, 1, 42), a);
  EXPECT_EQ(find(table, 2, 42), b);
  EXPECT_EQ(find(table, 3, 42 + table.capacity()), c);
  EXPECT_EQ(find(table, 4, 42), d);
  EXPECT_EQ(find(table, 3, 42), nullptr);
  EXPECT_EQ(find(table, 5, 42), nullptr);
}

// insert_all() builds the table insert() would (any order of insertion gives a valid
// linear-probing table): on top of entries already there, with equal tags and homes that
// wrap around the end, and it tells when two slots are the same thing.
TEST(SlotTable, InsertAllFindsEverythingAndReportsTwoSlotsThatAreTheSame) {
  RcuThread rcu;
  SlotArena arena(sizeof(Item));
  SlotTable table(arena);
  std::vector<Item*> items;
  for (uint64_t i = 0; i < 1000; ++i) {  // some one by one first
    auto [item, number] = make_item(arena, i);
    items.push_back(item);
    table.insert(mix64(i), number);
  }
  auto same = [](const void* a, const void* b) noexcept {
    return static_cast<const Item*>(a)->key == static_cast<const Item*>(b)->key;
  };
  SlotTable::Pending pending;
  for (uint64_t i = 1000; i < 200'000; ++i) {
    auto [item, number] = make_item(arena, i);
    items.push_back(item);
    // Every 1,000th shares its tag with the one before: told apart by `same`.
    const uint64_t tag = i % 1000 == 0 ? mix64(i - 1) : mix64(i);
    pending.push(tag, number);
  }
  auto [last, last_number] = make_item(arena, 200'000);  // its home the table's last entry
  items.push_back(last);
  const uint64_t wrap = 0xffffffff;
  pending.push(wrap, last_number);
  ASSERT_TRUE(table.insert_all(pending, same));
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(table.size(), items.size());
  EXPECT_LE(table.size() * 10, table.capacity() * 7) << "load stays under 70 %";
  {
    ReadSection rs;
    for (uint64_t i = 0; i < 200'000; ++i) {
      const uint64_t tag = i >= 1000 && i % 1000 == 0 ? mix64(i - 1) : mix64(i);
      ASSERT_EQ(find(table, i, tag), items[i]) << i;
    }
    EXPECT_EQ(find(table, 200'000, wrap), last);
    EXPECT_EQ(find(table, 300'000, mix64(300'000)), nullptr);
  }
  // A slot that is the same thing as one in the table, under the same tag.
  auto [twin, twin_number] = make_item(arena, 5);
  SlotTable::Pending again;
  again.push(mix64(5), twin_number);
  EXPECT_FALSE(table.insert_all(again, same));
  ReadSection rs;
  EXPECT_EQ(find(table, 5, mix64(5)), items[5]);  // the first is still found
}

TEST(SlotTable, MixSpreadsSequentialIdsOverTheLowBits) {
  // Ids made within one millisecond differ by one in their low word; their home entries
  // must not be consecutive, or linear probing would build long runs.
  std::vector<int> hits(1024);
  for (uint64_t i = 0; i < 1024; ++i) ++hits[mix64(0x0123456789abcdefull + i) & 1023];
  int empty = 0;
  for (int h : hits) empty += h == 0;
  EXPECT_GT(empty, 300);  // a uniform spread leaves ~1024/e = 377 homes empty
  EXPECT_LT(empty, 460);
}

TEST(SlotTable, ReadersFindEveryPublishedSlotWhileTheWriterGrowsTheTable) {
  RcuThread rcu;
  SlotArena arena(sizeof(Item));
  SlotTable table(arena);
  constexpr uint64_t kItems = 400'000;  // grows from 4 Ki entries to 1 Mi: eight copies
  std::vector<Item*> items(kItems);
  std::vector<uint32_t> numbers(kItems);
  for (uint64_t i = 0; i < kItems; ++i) std::tie(items[i], numbers[i]) = make_item(arena, i);
  std::atomic<uint64_t> published{0};
  std::atomic<uint64_t> missing{0}, lookups{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&, r] {
      RcuThread reader;
      uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(r + 1);
      while (!done.load(std::memory_order_acquire)) {
        const uint64_t n = published.load(std::memory_order_acquire);
        if (n == 0) continue;
        x = mix64(x);
        const uint64_t i = x % n;
        ReadSection rs;
        if (find(table, i, mix64(i)) != items[i]) missing.fetch_add(1);
        lookups.fetch_add(1, std::memory_order_relaxed);
      }
    });
  for (uint64_t i = 0; i < kItems; ++i) {
    table.insert(mix64(i), numbers[i]);
    published.store(i + 1, std::memory_order_release);
  }
  done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  EXPECT_EQ(missing.load(), 0u);
  EXPECT_GT(lookups.load(), 1000u);
}

TEST(SlotArena, AReleasedSlotIsHandedOutAgainBeforeANewOne) {
  SlotArena arena(64);
  const auto a = arena.allocate();
  const auto b = arena.allocate();
  arena.release(a.number);
  EXPECT_EQ(arena.free_slots(), 1u);
  const auto c = arena.allocate();
  EXPECT_EQ(c.number, a.number);
  EXPECT_EQ(c.memory, a.memory);
  EXPECT_EQ(arena.allocate().number, b.number + 1) << "then new ones, as before";
}

// A probe run with an entry erased in the middle still finds the entries after it; the
// erased slot matches nothing (its tombstone has no number), even with its tag.
TEST(SlotTable, EraseLeavesATombstoneThatKeepsTheRunWhole) {
  RcuThread rcu;
  SlotArena arena(sizeof(Item));
  SlotTable table(arena);
  auto [a, na] = make_item(arena, 1);
  auto [b, nb] = make_item(arena, 2);
  auto [c, nc] = make_item(arena, 3);
  table.insert(7, na);  // one home: a run of three
  table.insert(7, nb);
  table.insert(7, nc);
  EXPECT_EQ(table.erase(7, b), nb);
  EXPECT_EQ(table.erase(7, b), 0u) << "not there any more";
  EXPECT_EQ(table.erase(8, a), 0u) << "under another tag";
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.tombstones(), 1u);
  ReadSection rs;
  EXPECT_EQ(find(table, 1, 7), a);
  EXPECT_EQ(find(table, 2, 7), nullptr);
  EXPECT_EQ(find(table, 3, 7), c) << "past the tombstone";
  EXPECT_EQ(find(table, 1, 1), nullptr) << "a tombstone's own tag bits match nothing";
}

// Keys come and go for ever (created, revoked, reclaimed): the table holds the live ones
// at a bounded size, copying away its tombstones instead of growing without end.
TEST(SlotTable, ErasingAndInsertingForEverKeepsTheTableSmall) {
  RcuThread rcu;
  SlotArena arena(sizeof(Item));
  SlotTable table(arena);
  constexpr uint64_t kLive = 2'000;  // ~49 % of the initial 4,096 entries
  std::vector<std::pair<Item*, uint32_t>> items;
  for (uint64_t i = 0; i < 200'000; ++i) {
    items.push_back(make_item(arena, i));
    table.insert(mix64(i), items.back().second);
    if (i >= kLive) {
      const uint64_t old = i - kLive;
      ASSERT_EQ(table.erase(mix64(old), items[old].first), items[old].second);
    }
  }
  EXPECT_EQ(table.size(), kLive);
  EXPECT_LE(table.capacity(), 8192u) << "tombstones were copied away, not grown over";
  EXPECT_LE((table.size() + table.tombstones()) * 10, table.capacity() * 7);
  ReadSection rs;
  for (uint64_t i = 0; i < items.size(); ++i)
    ASSERT_EQ(find(table, i, mix64(i)), i + kLive >= items.size() ? items[i].first : nullptr) << i;
}
