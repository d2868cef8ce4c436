// SlotTable: the index's hash table, from a 64-bit tag to a slot (KeySlot, OrgSlot).
//
// Open addressing with linear probing over 16-byte entries {tag, slot}, four to a cache
// line: a lookup that misses the cache costs one DRAM access for the entry, and a second
// only for the slot the tag matched, whatever the table's size (rculfhash, before it,
// walked a bucket, a dummy node and a chain node: three).
//
// Concurrency: one writer (the commit thread), readers that never block, under urcu-memb.
// - An insert writes the entry's tag, then publishes its slot with a release store; a
//   reader loads the slot with acquire, so a non-null slot always comes with its tag.
// - Nothing is ever removed (the index never frees a slot), so there are no tombstones
//   and a probe ends at the first empty entry.
// - Past 70 % load the writer builds a table twice the size, publishes it with one
//   release store, and frees the old one through call_rcu once no reader can be in it.
//   Readers in the old table during the copy still find everything: it is not changed.
// Tables are mmap'ed with MADV_HUGEPAGE, so random probes into hundreds of MiB do not
// also miss the TLB on every lookup.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace keygate::core {

class SlotTable {
 public:
  // Is `slot` the one that `key` names? Called only for entries whose tag matched.
  using Match = bool (*)(const void* slot, const void* key) noexcept;

  SlotTable();
  // Waits for pending call_rcu frees of replaced tables, then frees the current one.
  ~SlotTable();
  SlotTable(const SlotTable&) = delete;
  SlotTable& operator=(const SlotTable&) = delete;

  // Readers, inside a ReadSection: the slot under `tag` that `match` accepts, or null.
  void* find(uint64_t tag, Match match, const void* key) const noexcept;

  // The writer: adds `slot` under `tag`. The caller has checked that it is not present.
  void insert(uint64_t tag, void* slot);

  size_t size() const noexcept { return size_; }
  size_t capacity() const noexcept;

 private:
  struct Table;
  std::atomic<Table*> table_;
  size_t size_ = 0;  // the writer's
  void grow();
};

// Zeroed anonymous memory for the index's tables and slot arenas: a whole number of pages,
// aligned to 2 MiB with MADV_HUGEPAGE when it is that large (the kernel grants a huge page
// only to an aligned range). Throws std::bad_alloc.
void* map_pages(size_t bytes);
void unmap_pages(void* p, size_t bytes) noexcept;

// A 64-bit finalizer (MurmurHash3's fmix64): spreads ids, whose low bits count up within a
// millisecond, over the table's low bits, which pick the first entry probed.
inline uint64_t mix64(uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

}  // namespace keygate::core
