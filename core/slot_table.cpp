#define _LGPL_SOURCE  // inline the read-side fast paths
#include "core/slot_table.hpp"

#include <sys/mman.h>
#include <urcu/urcu-memb.h>

#include <new>

namespace keygate::core {

namespace {

struct Entry {
  std::atomic<uint64_t> tag;
  std::atomic<void*> slot;  // null: empty
};
static_assert(sizeof(Entry) == 16);

constexpr size_t kInitialCapacity = 1 << 12;
constexpr size_t kHugePage = 2u << 20;

// Whether a table of `capacity` entries holding `size` is past the load that starts a grow.
bool too_full(size_t size, size_t capacity) { return size * 10 > capacity * 7; }

}  // namespace

void* map_pages(size_t bytes) {
  const size_t span = bytes >= kHugePage ? bytes + kHugePage : bytes;
  void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  if (span == bytes) return raw;
  // Keep the 2 MiB-aligned part of the over-sized mapping and give back both ends.
  char* begin = static_cast<char*>(raw);
  char* aligned = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(begin) + kHugePage - 1) & ~(kHugePage - 1));
  if (aligned > begin) ::munmap(begin, static_cast<size_t>(aligned - begin));
  if (char* end = aligned + bytes; end < begin + span) ::munmap(end, static_cast<size_t>(begin + span - end));
  ::madvise(aligned, bytes, MADV_HUGEPAGE);  // advice: fine if refused
  return aligned;
}

void unmap_pages(void* p, size_t bytes) noexcept { ::munmap(p, bytes); }

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
  void place(uint64_t tag, void* slot) noexcept {
    for (size_t i = tag & mask;; i = (i + 1) & mask) {
      Entry& e = entries[i];
      if (e.slot.load(std::memory_order_relaxed)) continue;
      e.tag.store(tag, std::memory_order_relaxed);
      e.slot.store(slot, std::memory_order_release);  // publishes the tag with it
      return;
    }
  }
};

SlotTable::SlotTable() : table_(Table::create(kInitialCapacity)) {}

SlotTable::~SlotTable() {
  urcu_memb_barrier();  // replaced tables waiting in call_rcu
  Table::destroy(table_.load(std::memory_order_relaxed));
}

void* SlotTable::find(uint64_t tag, Match match, const void* key) const noexcept {
  const Table* t = table_.load(std::memory_order_acquire);
  // Terminates: the load stays under 70 %, so an empty entry follows every run.
  for (size_t i = tag & t->mask;; i = (i + 1) & t->mask) {
    const Entry& e = t->entries[i];
    void* slot = e.slot.load(std::memory_order_acquire);
    if (!slot) return nullptr;
    if (e.tag.load(std::memory_order_relaxed) == tag && match(slot, key)) return slot;
  }
}

void SlotTable::insert(uint64_t tag, void* slot) {
  if (too_full(size_ + 1, capacity())) grow();
  table_.load(std::memory_order_relaxed)->place(tag, slot);
  ++size_;
}

size_t SlotTable::capacity() const noexcept { return table_.load(std::memory_order_relaxed)->mask + 1; }

void SlotTable::grow() {
  Table* old = table_.load(std::memory_order_relaxed);
  Table* next = Table::create((old->mask + 1) * 2);
  for (size_t i = 0; i <= old->mask; ++i)
    if (void* slot = old->entries[i].slot.load(std::memory_order_relaxed))
      next->place(old->entries[i].tag.load(std::memory_order_relaxed), slot);
  table_.store(next, std::memory_order_release);
  urcu_memb_call_rcu(&old->head, [](rcu_head* h) { Table::destroy(reinterpret_cast<Table*>(h)); });
}

}  // namespace keygate::core
