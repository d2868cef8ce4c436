// Index: what readers see. Lock-free lookups of API keys by SHA-256(value) and of keys and
// organizations by id, in SlotTables (core/slot_table.hpp) under urcu-memb RCU, plus
// per-organization lists of keys in creation (= id) order for pagination.
//
// Guarantees:
// - Readers never block and never allocate: lookups run inside a ReadSection, and a record
//   pointer obtained there is valid until the section ends (never across a co_await).
// - There is exactly one writer (the commit thread). It publishes a new record version by
//   an atomic pointer swap (release); readers load it with acquire. Replaced versions are
//   freed by call_rcu after every reader that could hold them has left its section.
// - A revoked or expired key stays listed, with its record, until `reclaim_after` past its
//   end (set_reclaim_after()); then advance_clock() removes it from both tables and its
//   organization's list, and its slot is reused once no reader can hold it. Organizations
//   are never removed.
// - Per-key mutable state (rate-limit bucket, last use) lives in the slot as atomics,
//   beside the immutable record.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/audit.hpp"
#include "core/ids.hpp"
#include "core/model.hpp"
#include "core/slot_table.hpp"
#include "core/status_counts.hpp"

namespace keygate::core {

// Registers the calling thread as an RCU reader; unregisters at destruction. Every thread
// that reads the index (reactors, the writer, the snapshotter) holds one for its lifetime.
// Nesting is allowed: the thread stays registered until the outermost one goes.
class RcuThread {
 public:
  RcuThread();
  ~RcuThread();
  RcuThread(const RcuThread&) = delete;
  RcuThread& operator=(const RcuThread&) = delete;
};

class ReadSection {
 public:
  ReadSection() noexcept;
  ~ReadSection();
  ReadSection(const ReadSection&) = delete;
  ReadSection& operator=(const ReadSection&) = delete;
};

struct OrgSlot;

// A key's slot: one 64-byte cache line, aligned, the first line of a verification after the
// table entry: the hash of the key's value, the record, and the per-key state that is not
// in the immutable record. The hash is kept here, not in the record: it never changes, and
// the probe that confirms a match reads it without waiting on a second dependent miss
// (measured: 130 against 270 ns at 10 M keys when the probe read the record's). The id is
// read from the record (the same in every version): lookups by id are the admin API's, not
// the hot path's.
//
// Aligned to its line, a slot shares that line with no other key: a verification's write
// of its rate-limit bucket invalidates no other key's hash or record pointer on another
// core, and every slot is one line, never two (at the former 72-byte stride, five of eight
// slots straddled two lines and neighbours shared one). The organization is named by its
// slot number (4 bytes) and the last use in seconds (4 bytes) to make the line fit
// (perf/RESULTS.md, "Slot layout").
struct alignas(64) KeySlot {
  const KeyHash hash;
  std::atomic<const ApiKey*> record;
  // Mutable per-key state, written by readers: kept off the record so records stay
  // immutable. GCRA theoretical arrival time in monotonic nanoseconds (see core/rate_limit.hpp).
  std::atomic<uint64_t> rate_tat_ns{0};
  std::atomic<KeySlot*> next_in_org{nullptr};
  const uint32_t org_number;             // the organization's slot (Index::org_of)
  std::atomic<uint32_t> last_used_s{0};  // Unix seconds; 0: never

  KeySlot(const KeyHash& h, const ApiKey* r, uint32_t org) : hash(h), record(r), org_number(org) {}
  const ApiKey* load() const noexcept { return record.load(std::memory_order_acquire); }
  KeySlot* next() const noexcept { return next_in_org.load(std::memory_order_acquire); }
  Id id() const noexcept { return load()->id; }

  // Last use, at one-second resolution. touch() stores only when the second changed, so a
  // busy key does not write its line for it more than once a second.
  uint64_t last_used_ms() const noexcept {
    return uint64_t{last_used_s.load(std::memory_order_relaxed)} * 1000;
  }
  void set_last_used_ms(uint64_t ms) noexcept {
    last_used_s.store(static_cast<uint32_t>(ms / 1000), std::memory_order_relaxed);
  }
  void touch(uint64_t now_ms) noexcept {
    const auto now_s = static_cast<uint32_t>(now_ms / 1000);
    if (last_used_s.load(std::memory_order_relaxed) != now_s)
      last_used_s.store(now_s, std::memory_order_relaxed);
  }
};

// An organization's certificates at one moment: immutable, replaced as a whole by the
// writer (there are at most 50), in creation order.
struct CertificateSet {
  std::vector<std::shared_ptr<const Certificate>> items;
  // What verification reads of an active certificate: its fingerprint, and its validity
  // period (Unix seconds), checked at each verification (a connection may outlive it).
  struct Bound {
    std::array<uint8_t, 32> fingerprint;
    int64_t valid_at;
    int64_t expires_at;
    uint16_t project;  // 0: active for the whole organization
  };
  std::vector<Bound> active_fingerprints;   // for the whole organization
  std::vector<Bound> project_fingerprints;  // active for one project

  const Certificate* find(Id id) const noexcept {
    for (const auto& c : items)
      if (c->id == id) return c.get();
    return nullptr;
  }
};

// An organization's projects at one moment: immutable, replaced as a whole by the writer
// (at most kMaxProjectsPerOrganization), in creation order, so project number n is
// items[n - 1].
struct ProjectSet {
  std::vector<std::shared_ptr<const Project>> items;

  const Project* by_number(uint16_t n) const noexcept {
    return n && n <= items.size() ? items[n - 1].get() : nullptr;
  }
  const Project* find(Id id) const noexcept {
    for (const auto& p : items)
      if (p->id == id) return p.get();
    return nullptr;
  }
};

struct OrgSlot {
  const Id id;
  const uint32_t number;  // in the index's arena of organization slots
  std::atomic<const Organization*> record;
  std::atomic<OrgSlot*> next_org{nullptr};
  std::atomic<KeySlot*> first_key{nullptr};
  KeySlot* last_key = nullptr;  // writer only
  bool keys_unsorted = false;   // writer only: Index::restore_key_order() has it to sort
  std::atomic<uint32_t> key_count{0};
  std::atomic<const CertificateSet*> certificates{nullptr};  // null: none ever uploaded
  std::atomic<const ProjectSet*> projects{nullptr};          // null: none ever created

  OrgSlot(const Organization* r, uint32_t n) : id(r->id), number(n), record(r) {}
  const Organization* load() const noexcept { return record.load(std::memory_order_acquire); }
  const CertificateSet* certs() const noexcept {
    return certificates.load(std::memory_order_acquire);
  }
  const ProjectSet* project_set() const noexcept {
    return projects.load(std::memory_order_acquire);
  }
  // The project of this organization numbered `n` (ApiKey::project), or null.
  const Project* project(uint16_t n) const noexcept {
    const ProjectSet* set = n ? project_set() : nullptr;
    return set ? set->by_number(n) : nullptr;
  }
  KeySlot* keys() const noexcept { return first_key.load(std::memory_order_acquire); }
  OrgSlot* next() const noexcept { return next_org.load(std::memory_order_acquire); }
};

class Index {
 public:
  Index();
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // Readers: call inside a ReadSection.
  KeySlot* find_key(const KeyHash& hash) const noexcept;
  KeySlot* find_key(Id id) const noexcept;
  OrgSlot* find_org(Id id) const noexcept;
  // The organization a key belongs to.
  OrgSlot* org_of(const KeySlot& key) const noexcept {
    return static_cast<OrgSlot*>(org_slots_.at(key.org_number));
  }
  OrgSlot* first_org() const noexcept { return first_org_.load(std::memory_order_acquire); }
  uint64_t key_count() const noexcept { return key_count_.load(std::memory_order_relaxed); }
  uint64_t org_count() const noexcept { return org_count_.load(std::memory_order_relaxed); }
  // Keys and organizations by status, as of the writer's last advance_clock(): any thread.
  const StatusCounts& counts() const noexcept { return counts_; }

  // The writer: takes ownership of the record, publishes it, retires the version it replaces.
  void put(std::unique_ptr<const Organization> record);
  // A key's hash is given with each version; it must be one put() accepts (below), else
  // std::logic_error and nothing changes.
  void put(const KeyHash& hash, std::unique_ptr<const ApiKey> record);
  // The same, for records read back (recovery, a cluster's load): false, and nothing
  // changes, when put() would refuse the version or its organization is unknown. Sets the
  // key's last use too. One lookup per table instead of accepts() and then put().
  bool try_put(const KeyHash& hash, std::unique_ptr<const ApiKey>& record,
               uint64_t last_used_ms = 0);
  // The writer, a few records ahead of try_put() of this key: prefetches its table entries,
  // unless a bulk load will put it without a lookup.
  void prefetch_key(const KeyHash& hash, Id id) const noexcept;
  // Recovery: until end_bulk_load(), try_put() of a key that is new fills its slot and its
  // organization's list but leaves both key tables for later, when many keys go into each
  // at once (SlotTable::insert_all: one sequential pass instead of two random cache misses
  // per key). Which keys are new without a lookup:
  // - BulkLoad::snapshot, into an index with no keys (else the load is the usual one), of
  //   about `keys`, which size both tables once: every key, as a snapshot holds each once;
  // - BulkLoad::log, into any index: a key whose id is greater than every key's in it (one
  //   writer assigns ids, which grow with time, so a log's new keys nearly always are).
  //   Any other version is looked up as usual, after the new keys it may be one of have
  //   gone into the tables.
  // Until then the new keys are not found by id or by hash. end_bulk_load() puts in the
  // rest and is false when two keys share an id or a value's hash, which try_put() refuses
  // one by one: a damaged snapshot or log. It also calls restore_key_order().
  enum class BulkLoad : uint8_t { snapshot, log };
  void begin_bulk_load(BulkLoad kind, size_t keys = 0);
  bool end_bulk_load();
  // An organization's keys are listed in id order, and a new key is appended to its list:
  // ids grow with time, so that keeps the order, but not when keys come in another (a load
  // from etcd reads them in the order of their values' hashes; two nodes' new keys commit
  // in either order). Each organization that got a key after a greater id is sorted again
  // here, O(its keys): after a load, by the loader (end_bulk_load(), and cluster mode's load
  // from etcd). A reader walking that list meanwhile may see a key twice or miss one, and
  // never loops for ever. Between loads, a key applied after a greater id (two nodes'
  // creations) stays where it came, as it always did, until the next load.
  void restore_key_order();
  // Whether put() accepts a version of key `id` with `hash`: a key keeps its hash for life
  // (its slot holds it), and no two keys share one. Readers and the writer.
  bool accepts(const KeyHash& hash, Id id) const noexcept;
  // Adds or replaces a certificate of its organization, or removes one.
  void put(std::shared_ptr<const Certificate> record);
  void remove_certificate(Id organization, Id certificate);
  // Adds a project (numbered next in its organization) or replaces one; false, and nothing
  // changes, when its organization is unknown or its number is neither (a damaged record).
  bool put(std::shared_ptr<const Project> record);
  // Frees the versions retired since the last call once no reader can hold them.
  void reclaim();
  // The writer: counts the keys whose expiry or grace period ended by `now_ms` as expired
  // (counts()), and reclaims those that ended `reclaim_after` before it (below).
  void advance_clock(uint64_t now_ms);
  // How long a revoked or expired key stays after its end (its revocation, its expiry, the
  // end of its rotation's grace period) before advance_clock() removes it: from then on it
  // is unknown, by id and by value, and no longer counts against its organization's keys.
  // 0 (the default): never. The writer, before any key is put.
  void set_reclaim_after(uint64_t ms) noexcept { reclaim_after_ms_ = ms; }
  // Keys removed so far (any thread).
  uint64_t reclaimed_keys() const noexcept { return reclaimed_.load(std::memory_order_relaxed); }
  // At most this many keys go per advance_clock(), so that a backlog (a start after a long
  // stop) never holds the writer for long: the rest go on the next calls.
  static constexpr size_t kReclaimBatch = 10'000;

  // The audit log rides with the index so that everything holding one holds the other,
  // but it is not part of it: verification never reads it (core/audit.hpp).
  AuditLog& audit() noexcept { return audit_; }
  const AuditLog& audit() const noexcept { return audit_; }

 private:
  SlotArena org_slots_{sizeof(OrgSlot)};  // before the tables that name their slots
  SlotArena key_slots_{sizeof(KeySlot)};
  SlotTable keys_by_hash_{key_slots_};
  SlotTable keys_by_id_{key_slots_};
  SlotTable orgs_by_id_{org_slots_};
  std::atomic<OrgSlot*> first_org_{nullptr};
  OrgSlot* last_org_ = nullptr;
  std::atomic<uint64_t> key_count_{0};
  std::atomic<uint64_t> org_count_{0};
  StatusCounts counts_;
  AuditLog audit_;
  std::vector<std::unique_ptr<const Organization>> retired_orgs_;
  std::vector<std::unique_ptr<const ApiKey>> retired_keys_;
  std::vector<std::unique_ptr<const CertificateSet>> retired_cert_sets_;
  std::vector<std::unique_ptr<const ProjectSet>> retired_project_sets_;
  std::vector<uint32_t> retired_key_slots_;  // reclaimed: reused after a grace period
  // Keys with an end, by when they may be reclaimed: a min-heap with an entry for every
  // version that has one, checked against the key's current version when it comes due.
  struct Due {
    uint64_t at_ms;
    Id key;
    bool operator>(const Due& o) const noexcept { return at_ms > o.at_ms; }
  };
  std::vector<Due> reclaim_due_;
  uint64_t reclaim_after_ms_ = 0;
  std::atomic<uint64_t> reclaimed_{0};
  // When `k` may be reclaimed; 0: not while this is its version.
  uint64_t reclaim_at(const ApiKey& k) const noexcept;
  void schedule_reclaim(const ApiKey& k);
  void reclaim_keys(uint64_t now_ms);
  bool handed_to_rcu_ = false;  // reclaim() queued a batch: the destructor waits for it
  enum class Bulk : uint8_t { off, snapshot, log } bulk_ = Bulk::off;  // begin_bulk_load()
  SlotTable::Pending bulk_by_id_, bulk_by_hash_;  // new keys, not yet in the tables
  Id bulk_oldest_{};           // a log's load: the first of them (their ids grow)
  bool bulk_distinct_ = true;  // false: placing them found two keys with one id or hash
  // The organizations a key was appended to after a greater id (restore_key_order()), each
  // once (OrgSlot::keys_unsorted).
  std::vector<Id> unsorted_orgs_;
  void sort_keys(OrgSlot& org);
  Id newest_key_{};  // the greatest id of any key in the index
  // Whether a bulk load knows key `id` to be new, without a lookup (begin_bulk_load()).
  bool known_new(Id id) const noexcept;
  // Puts the bulk load's new keys into both tables; false as end_bulk_load().
  bool place_bulk();
  void publish_certificates(OrgSlot* org, std::unique_ptr<CertificateSet> set);
  // A new key's slot, in its organization's list and the tables, or with `tables_later`
  // among the bulk load's keys that place_bulk() puts in the tables.
  bool add_key(const KeyHash& hash, std::unique_ptr<const ApiKey>& record, uint64_t last_used_ms,
               bool tables_later);
};

}  // namespace keygate::core
