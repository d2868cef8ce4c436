// SlotTable: the index's hash table, from a tag to a slot (KeySlot, OrgSlot) in a SlotArena.
//
// Open addressing with linear probing over 8-byte entries {32-bit tag, 32-bit slot number},
// eight to a cache line: a lookup that misses the cache costs one DRAM access for the
// entry, and a second only for the slot the tag matched, whatever the table's size
// (rculfhash, before it, walked a bucket, a dummy node and a chain node: three). Naming
// the slot by its number in the arena instead of by pointer halves the entry (16 bytes
// with a pointer and a 64-bit tag): 32 bytes less per key over the two key tables.
//
// The tag's low 32 bits are kept: they pick the home entry (so a grow re-places entries
// without reading a slot, up to 2^32 entries) and filter the probe, and the Match
// callback confirms a candidate on the slot itself.
//
// Concurrency: one writer (the commit thread), readers that never block, under urcu-memb.
// - An insert publishes tag and number together in one release store; a reader loads the
//   entry with acquire, so the slot it names is fully built.
// - A removal (erase(): a reclaimed key, core/index.hpp) leaves a tombstone, an entry with
//   slot number 0 that matches no tag, so a probe still ends at the first empty entry and a
//   reader in the middle of a run never loses the entries after it. Entries never move
//   while readers may be in the table (no backward shift).
// - Past 70 % load, live entries and tombstones together, the writer builds a new table
//   (twice the size, or the same size when tombstones made it full), publishes it with one
//   release store, and frees the old one through call_rcu once no reader can be in it.
//   Readers in the old table during the copy still find everything: it is not changed.
//   The copy leaves the tombstones behind.
// Tables are mmap'ed with MADV_HUGEPAGE, so random probes into hundreds of MiB do not
// also miss the TLB on every lookup.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace keygate::core {

// Slots of one size: bump-allocated in 2 MiB chunks (huge pages where the kernel grants
// them, which saves a heap header per key and TLB misses on the hot path); a slot given
// back (release(), once no reader can hold it) is handed out again before a new one. The
// chunks stay mapped as long as the arena. A slot's number (its position + 1; 0 is "none")
// names it in 32 bits. The chunk directory is reserved up front and filled by the writer
// before it publishes a number in the chunk, so readers map a number to its slot without
// a lock: one multiply-high for the division by the slots per chunk (exact for 32-bit
// numbers, Lemire's method), a load of the directory (a few KiB, cached) and the slot.
class SlotArena {
 public:
  explicit SlotArena(size_t slot_size);
  ~SlotArena();  // unmaps every chunk: the slots' destructors are not run
  SlotArena(const SlotArena&) = delete;
  SlotArena& operator=(const SlotArena&) = delete;

  struct Allocation {
    void* memory;  // storage for one slot, constructed by the caller
    uint32_t number;
  };
  Allocation allocate();  // the writer; throws std::length_error past 2^32 - 1 slots
  // Gives slot `number` back for allocate() to reuse. Any thread (the RCU callback that runs
  // once no reader can hold the slot); the caller has destroyed what it held.
  void release(uint32_t number);
  size_t free_slots() const;

  static constexpr size_t kChunkBytes = 2u << 20;  // one huge page

  // Readers: the slot of a number that a table (or allocate) gave out.
  void* at(uint32_t number) const noexcept {
    const uint32_t i = number - 1;
    const auto chunk = static_cast<uint32_t>((static_cast<unsigned __int128>(divide_) * i) >> 64);
    return chunks_[chunk].load(std::memory_order_relaxed) +
           size_t{i - chunk * per_chunk_} * slot_size_;
  }

 private:
  static size_t checked_slot_size(size_t bytes);
  size_t slot_size_;
  uint32_t per_chunk_;  // slots in a chunk
  uint64_t divide_;     // 2^64 / per_chunk_, rounded up: i / per_chunk_ == mulhi(i, divide_)
  size_t max_chunks_;   // enough for 2^32 - 1 slots
  uint32_t count_ = 0;  // slots handed out
  std::atomic<char*>* chunks_;     // max_chunks_ entries, zero until the chunk exists
  mutable std::mutex free_mutex_;  // release() runs on the RCU callback thread
  std::vector<uint32_t> free_;     // numbers given back, reused last in first out
};

class SlotTable {
 public:
  // Is `slot` the one that `key` names? Called only for entries whose tag matched.
  using Match = bool (*)(const void* slot, const void* key) noexcept;

  // Slot numbers in this table are `arena`'s, which must outlive the table.
  explicit SlotTable(const SlotArena& arena);
  // Waits for pending call_rcu frees of replaced tables, then frees the current one.
  ~SlotTable();
  SlotTable(const SlotTable&) = delete;
  SlotTable& operator=(const SlotTable&) = delete;

  // Readers, inside a ReadSection: the slot under `tag` that `match` accepts, or null.
  void* find(uint64_t tag, Match match, const void* key) const noexcept;

  // The writer: adds slot `number` under `tag`. The caller has checked that it is not present.
  void insert(uint64_t tag, uint32_t number);
  // The writer: removes `slot` from under `tag`, leaving a tombstone, and returns its number
  // (0: it was not there). Readers may still reach the slot until the next grace period.
  uint32_t erase(uint64_t tag, const void* slot);
  size_t tombstones() const noexcept { return tombstones_; }

  size_t size() const noexcept { return size_; }
  size_t capacity() const noexcept;
  // The writer: grows the table now so that `entries` fit without growing again.
  void reserve(size_t entries);
  // Brings the home entry of `tag` towards the cache: for a bulk load that will look it up
  // a few records later (a lookup into a table of millions is a cache miss otherwise).
  void prefetch(uint64_t tag) const noexcept;

  // A bulk load's entries, slot `number` under `tag` each (push()), as insert_all() takes
  // them. Kept in pages mapped for them and unmapped as soon as they are placed, not on the
  // heap, which would keep what it freed: a load's scratch space leaves nothing resident.
  class Pending {
   public:
    Pending() = default;
    ~Pending() { release(); }
    Pending(const Pending&) = delete;
    Pending& operator=(const Pending&) = delete;
    void reserve(size_t n);
    void push(uint64_t tag, uint32_t number) {
      if (size_ == capacity_) reserve(capacity_ ? capacity_ * 2 : 1024);
      data_[size_++] = uint64_t{number} << 32 | static_cast<uint32_t>(tag);
    }
    size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const uint64_t* begin() const noexcept { return data_; }
    const uint64_t* end() const noexcept { return data_ + size_; }
    void clear() noexcept { size_ = 0; }  // empties it and keeps its pages
    void release() noexcept;              // empties it and gives its pages back
    // Makes it `n` entries long, their values left to the caller to write (a sort's output).
    uint64_t* fill(size_t n) {
      reserve(n);
      size_ = n;
      return data_;
    }

   private:
    uint64_t* data_ = nullptr;
    size_t size_ = 0, capacity_ = 0;
  };
  // Are two slots the same thing (the same key's id, the same value's hash)?
  using Same = bool (*)(const void* a, const void* b) noexcept;
  // The writer: adds every pending entry at once, in the order of their home entries, so
  // that the pass over the table is sequential and each entry's probe run is in the cache
  // (inserting millions one by one costs a random cache miss each). Linear probing places
  // an entry at the first empty one from its home in any order of insertion, so the table
  // is the one insert() would build. False, with every entry added, when two slots are the
  // same thing (`same` on each pair whose tags match, the table's entries included): a
  // damaged load. Empties `entries` (and gives its pages back when they were many).
  bool insert_all(Pending& entries, Same same);

 private:
  struct Table;
  const SlotArena& arena_;
  std::atomic<Table*> table_;
  size_t size_ = 0;             // the writer's
  size_t tombstones_ = 0;       // the writer's: erased entries not yet left behind by a copy
  bool handed_to_rcu_ = false;  // a replaced table went to call_rcu: wait for it at the end
  void grow(size_t capacity);   // to `capacity` entries, a power of two, without tombstones
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
