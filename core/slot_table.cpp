#define _LGPL_SOURCE  // inline the read-side fast paths
#include "core/slot_table.hpp"

#include <sys/mman.h>
#include <urcu/urcu-memb.h>

#include <algorithm>
#include <bit>
#include <new>
#include <stdexcept>
#include <vector>

#include "core/rcu_order.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEYGATE_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define KEYGATE_LSAN 1
#endif
#ifdef KEYGATE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace keygate::core {

namespace {

// An entry: the slot's number in the high half, the tag's low 32 bits in the low half;
// 0 is empty (numbers start at 1).
using Entry = std::atomic<uint64_t>;
static_assert(sizeof(Entry) == 8);

constexpr uint64_t pack(uint32_t tag, uint32_t number) {
  return uint64_t{number} << 32 | tag;
}
constexpr uint32_t tag_bits(uint64_t e) {
  return static_cast<uint32_t>(e);
}
constexpr uint32_t number_bits(uint64_t e) {
  return static_cast<uint32_t>(e >> 32);
}
// An erased entry: not empty, and its number (0) names no slot, so it matches no lookup.
constexpr uint64_t kTombstone = pack(1, 0);

constexpr size_t kInitialCapacity = 1 << 12;
constexpr size_t kHugePage = 2u << 20;

// Whether a table of `capacity` entries holding `size` is past the load that starts a grow.
bool too_full(size_t size, size_t capacity) {
  return size * 10 > capacity * 7;
}

}  // namespace

void* map_pages(size_t bytes) {
  const size_t span = bytes >= kHugePage ? bytes + kHugePage : bytes;
  void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  if (span == bytes) return raw;
  // Keep the 2 MiB-aligned part of the over-sized mapping and give back both ends.
  char* begin = static_cast<char*>(raw);
  char* aligned = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(begin) + kHugePage - 1) &
                                          ~(kHugePage - 1));
  if (aligned > begin) ::munmap(begin, static_cast<size_t>(aligned - begin));
  if (char* end = aligned + bytes; end < begin + span)
    ::munmap(end, static_cast<size_t>(begin + span - end));
  ::madvise(aligned, bytes, MADV_HUGEPAGE);  // advice: fine if refused
  return aligned;
}

void unmap_pages(void* p, size_t bytes) noexcept {
  ::munmap(p, bytes);
}

static_assert(SlotArena::kChunkBytes == kHugePage, "a chunk is one huge page");

// Slots hold the only pointers to their records (and an organization's certificates), in
// pages LeakSanitizer does not scan: it would call every live record a leak (the fuzz
// targets check for leaks after each input). Under AddressSanitizer the chunks are roots.
#ifdef KEYGATE_LSAN
static void lsan_root(void* chunk, bool add) noexcept {
  if (add)
    __lsan_register_root_region(chunk, SlotArena::kChunkBytes);
  else
    __lsan_unregister_root_region(chunk, SlotArena::kChunkBytes);
}
#else
static void lsan_root(void*, bool) noexcept {}
#endif

size_t SlotArena::checked_slot_size(size_t bytes) {
  // At least two slots a chunk: with one, 2^64 / 1 would not fit the divisor.
  if (bytes == 0 || bytes > kChunkBytes / 2) throw std::invalid_argument("slot arena: slot size");
  return bytes;
}

SlotArena::SlotArena(size_t slot_size)
    : slot_size_(checked_slot_size(slot_size)),
      per_chunk_(static_cast<uint32_t>(kChunkBytes / slot_size)),
      divide_(UINT64_MAX / per_chunk_ + 1),
      max_chunks_((size_t{UINT32_MAX} + per_chunk_ - 1) / per_chunk_),
      // Zero pages until written: resident only as chunks appear.
      chunks_(
          static_cast<std::atomic<char*>*>(map_pages(max_chunks_ * sizeof(std::atomic<char*>)))) {
  static_assert(std::atomic<char*>::is_always_lock_free);
}

SlotArena::~SlotArena() {
  // After the last release(), which an RCU callback made under the lock: the owner waited
  // for the callbacks (urcu_memb_barrier), and the lock says so to ThreadSanitizer too.
  std::lock_guard lock(free_mutex_);
  for (size_t c = 0; c < max_chunks_; ++c) {
    char* chunk = chunks_[c].load(std::memory_order_relaxed);
    if (!chunk) break;
    lsan_root(chunk, false);
    unmap_pages(chunk, kChunkBytes);
  }
  unmap_pages(chunks_, max_chunks_ * sizeof(std::atomic<char*>));
}

SlotArena::Allocation SlotArena::allocate() {
  {
    std::lock_guard lock(free_mutex_);
    if (!free_.empty()) {
      const uint32_t number = free_.back();
      free_.pop_back();
      return {at(number), number};
    }
  }
  if (count_ == UINT32_MAX) throw std::length_error("slot arena: 2^32 - 1 slots");
  const uint32_t i = count_;
  const uint32_t chunk = i / per_chunk_, offset = i % per_chunk_;
  if (offset == 0) {  // the first slot of a new chunk: map it before any reader can be told of it
    char* pages = static_cast<char*>(map_pages(kChunkBytes));
    lsan_root(pages, true);
    chunks_[chunk].store(
        pages,
        std::memory_order_relaxed);  // published by the table entry's release store
  }
  ++count_;
  return {chunks_[chunk].load(std::memory_order_relaxed) + size_t{offset} * slot_size_, i + 1};
}

void SlotArena::release(uint32_t number) {
  std::lock_guard lock(free_mutex_);
  free_.push_back(number);
}

size_t SlotArena::free_slots() const {
  std::lock_guard lock(free_mutex_);
  return free_.size();
}

struct SlotTable::Table {  // standard layout: `head` first, for call_rcu
  rcu_head head;
  size_t mask;
  size_t bytes;
  Entry* entries;

  static Table* create(size_t capacity) {
    const size_t bytes = capacity * sizeof(Entry);
    // Anonymous pages arrive zeroed: every entry empty.
    return new Table{{}, capacity - 1, bytes, static_cast<Entry*>(map_pages(bytes))};
  }

  static void destroy(Table* t) noexcept {
    unmap_pages(t->entries, t->bytes);
    delete t;
  }

  // The writer's placement: the first empty entry from the tag's home.
  void place(uint64_t entry) noexcept {
    for (size_t i = tag_bits(entry) & mask;; i = (i + 1) & mask) {
      Entry& e = entries[i];
      if (e.load(std::memory_order_relaxed)) continue;
      e.store(entry, std::memory_order_release);  // the slot was built before: publish it
      return;
    }
  }
};

SlotTable::SlotTable(const SlotArena& arena)
    : arena_(arena), table_(Table::create(kInitialCapacity)) {}

SlotTable::~SlotTable() {
  // Replaced tables waiting in call_rcu. A table that never grew has none, and skips the
  // wait (several grace periods: a recovery fuzz input builds and drops an index each time).
  if (handed_to_rcu_) urcu_memb_barrier();
  Table::destroy(table_.load(std::memory_order_relaxed));
}

void* SlotTable::find(uint64_t tag, Match match, const void* key) const noexcept {
  const Table* t = table_.load(std::memory_order_acquire);
  const auto tag32 = static_cast<uint32_t>(tag);
  // Terminates: the load stays under 70 %, so an empty entry follows every run.
  for (size_t i = tag32 & t->mask;; i = (i + 1) & t->mask) {
    const uint64_t e = t->entries[i].load(std::memory_order_acquire);
    if (!e) return nullptr;
    if (tag_bits(e) == tag32 && number_bits(e)) {  // a tombstone's number is 0
      void* slot = arena_.at(number_bits(e));
      if (match(slot, key)) return slot;
    }
  }
}

void SlotTable::insert(uint64_t tag, uint32_t number) {
  reserve(size_ + 1);
  table_.load(std::memory_order_relaxed)->place(pack(static_cast<uint32_t>(tag), number));
  ++size_;
}

uint32_t SlotTable::erase(uint64_t tag, const void* slot) {
  Table* t = table_.load(std::memory_order_relaxed);
  const auto tag32 = static_cast<uint32_t>(tag);
  for (size_t i = tag32 & t->mask;; i = (i + 1) & t->mask) {
    const uint64_t e = t->entries[i].load(std::memory_order_relaxed);
    if (!e) return 0;
    if (tag_bits(e) != tag32 || !number_bits(e) || arena_.at(number_bits(e)) != slot) continue;
    // A reader that loaded the entry just before may still use the slot: the caller gives
    // it back only after a grace period.
    t->entries[i].store(kTombstone, std::memory_order_release);
    --size_;
    ++tombstones_;
    return number_bits(e);
  }
}

void SlotTable::prefetch(uint64_t tag) const noexcept {
  const Table* t = table_.load(std::memory_order_relaxed);
  __builtin_prefetch(&t->entries[static_cast<uint32_t>(tag) & t->mask], 1);
}

void SlotTable::Pending::reserve(size_t n) {
  if (n <= capacity_) return;
  const size_t bytes = n * sizeof(uint64_t);
  if (!data_) {
    data_ = static_cast<uint64_t*>(map_pages(bytes));
  } else {
    // Grown in place or moved by the page tables, not copied: a log's load, which cannot
    // know its count ahead, doubles it from a thousand entries to millions.
    void* more = ::mremap(data_, capacity_ * sizeof(uint64_t), bytes, MREMAP_MAYMOVE);
    if (more == MAP_FAILED) throw std::bad_alloc();
    ::madvise(more, bytes, MADV_HUGEPAGE);  // advice: fine if refused
    data_ = static_cast<uint64_t*>(more);
  }
  capacity_ = n;
}

void SlotTable::Pending::release() noexcept {
  if (data_) unmap_pages(data_, capacity_ * sizeof(uint64_t));
  data_ = nullptr;
  size_ = capacity_ = 0;
}

bool SlotTable::insert_all(Pending& entries, Same same) {
  reserve(size_ + entries.size());
  Table* t = table_.load(std::memory_order_relaxed);
  const size_t count = entries.size();
  // Many entries are placed in the order of their homes: a counting sort by the top bits
  // of the home (4,096 ranges of the table), then placement range by range. A few (a
  // log's new keys before a version of one of them) are placed as they come, and their
  // scratch space is kept for the next ones.
  constexpr size_t kSortFrom = 4096;
  Pending sorted;
  if (count >= kSortFrom) {
    const size_t capacity = t->mask + 1;
    const int bits = std::countr_zero(capacity);
    const int range_bits = std::min(bits, 12);
    const int shift = bits - range_bits;
    uint64_t* out = sorted.fill(count);
    std::vector<size_t> start((size_t{1} << range_bits) + 1, 0);
    for (const uint64_t e : entries) ++start[((tag_bits(e) & t->mask) >> shift) + 1];
    for (size_t r = 1; r < start.size(); ++r) start[r] += start[r - 1];
    for (const uint64_t e : entries) out[start[(tag_bits(e) & t->mask) >> shift]++] = e;
    entries.release();
  }
  bool distinct = true;
  for (const uint64_t entry : sorted.empty() ? entries : sorted) {
    for (size_t i = tag_bits(entry) & t->mask;; i = (i + 1) & t->mask) {
      Entry& e = t->entries[i];
      const uint64_t there = e.load(std::memory_order_relaxed);
      if (!there) {
        e.store(entry, std::memory_order_release);
        break;
      }
      if (tag_bits(there) == tag_bits(entry) && number_bits(there) &&
          same(arena_.at(number_bits(there)), arena_.at(number_bits(entry))))
        distinct = false;
    }
  }
  entries.clear();
  size_ += count;
  return distinct;
}

void SlotTable::reserve(size_t entries) {
  if (!too_full(entries + tombstones_, capacity())) return;
  size_t target = capacity();
  while (too_full(entries, target)) target *= 2;  // one copy, not one per doubling
  // Tombstones filled it: the copy leaves them behind, and leaves the live entries at most
  // half the table, so that erasing and inserting around 70 % does not copy it each time.
  if (tombstones_)
    while (entries * 2 > target) target *= 2;
  grow(target);
}

size_t SlotTable::capacity() const noexcept {
  return table_.load(std::memory_order_relaxed)->mask + 1;
}

void SlotTable::grow(size_t capacity) {
  Table* old = table_.load(std::memory_order_relaxed);
  // Homes come from the tag's 32 bits kept in the entry: 2^32 entries at most.
  if (capacity > (size_t{1} << 32)) throw std::length_error("slot table: 2^32 entries");
  Table* next = Table::create(capacity);
  for (size_t i = 0; i <= old->mask; ++i)
    if (const uint64_t e = old->entries[i].load(std::memory_order_relaxed); number_bits(e))
      next->place(e);
  tombstones_ = 0;
  table_.store(next, std::memory_order_release);
  rcu_order::hand_over(&old->head);
  handed_to_rcu_ = true;
  urcu_memb_call_rcu(&old->head, [](rcu_head* h) {
    rcu_order::grace_period_ended();
    rcu_order::take_over(h);
    Table::destroy(reinterpret_cast<Table*>(h));
  });
}

}  // namespace keygate::core
