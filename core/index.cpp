#define _LGPL_SOURCE  // inline the read-side fast paths
#include "core/index.hpp"

#include <urcu/urcu-memb.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <functional>
#include <new>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include "core/rcu_order.hpp"

namespace keygate::core {

// Slots are never destroyed one by one: the arena gives their memory back whole.
static_assert(std::is_trivially_destructible_v<KeySlot> &&
              std::is_trivially_destructible_v<OrgSlot>);
static_assert(sizeof(KeySlot) == 64 && alignof(KeySlot) == 64,
              "index.hpp documents the slot's size and alignment: keep them in step");
static_assert(sizeof(ApiKey) == 128,
              "model.hpp documents the record's size and layout: keep them in step");
static_assert(offsetof(ApiKey, grace_expires_ms) + 8 <= 64,
              "the first cache line holds what every check reads");
static_assert(offsetof(ApiKey, id) == 64,
              "the second line starts with the ids a verification returns");

namespace {

uint64_t tag_of(const KeyHash& h) {
  uint64_t v;
  std::memcpy(&v, h.data(), sizeof v);  // SHA-256 output is already uniform
  return v;
}

uint64_t tag_of(Id id) {
  return mix64(IdHash{}(id));
}

bool match_key_hash(const void* slot, const void* key) noexcept {
  return static_cast<const KeySlot*>(slot)->hash == *static_cast<const KeyHash*>(key);
}
bool match_key_id(const void* slot, const void* key) noexcept {
  return static_cast<const KeySlot*>(slot)->load()->id == *static_cast<const Id*>(key);
}
bool match_org_id(const void* slot, const void* key) noexcept {
  return static_cast<const OrgSlot*>(slot)->id == *static_cast<const Id*>(key);
}

struct RetiredRecords {
  std::vector<std::unique_ptr<const Organization>> orgs;
  std::vector<std::unique_ptr<const ApiKey>> keys;
  std::vector<std::unique_ptr<const CertificateSet>> cert_sets;
  std::vector<std::unique_ptr<const ProjectSet>> project_sets;
};

struct RetiredBatch {  // standard layout: `head` is its first member
  rcu_head head;
  RetiredRecords* records;
  std::vector<uint32_t> key_slots;  // reclaimed keys' slots, given back to `arena`
  SlotArena* arena;
};

void free_batch(rcu_head* h) {
  rcu_order::grace_period_ended();
  rcu_order::take_over(h);
  auto* batch = reinterpret_cast<RetiredBatch*>(h);
  for (const uint32_t n : batch->key_slots) batch->arena->release(n);
  delete batch->records;
  delete batch;
}

}  // namespace

namespace {
thread_local unsigned t_rcu_registrations = 0;  // nested RcuThreads register once
}

RcuThread::RcuThread() {
  if (t_rcu_registrations++ == 0) urcu_memb_register_thread();
}
RcuThread::~RcuThread() {
  if (--t_rcu_registrations == 0) urcu_memb_unregister_thread();
}

ReadSection::ReadSection() noexcept {
  urcu_memb_read_lock();
}
ReadSection::~ReadSection() {
  rcu_order::reader_done();
  urcu_memb_read_unlock();
}

Index::Index() = default;

Index::~Index() {
  reclaim();
  if (handed_to_rcu_) urcu_memb_barrier();  // run every pending free before the records' owners go
  for (OrgSlot* o = first_org(); o; o = o->next()) {
    for (KeySlot* k = o->keys(); k; k = k->next()) delete k->load();
    delete o->load();
    delete o->certs();
    delete o->project_set();
  }
}

KeySlot* Index::find_key(const KeyHash& hash) const noexcept {
  return static_cast<KeySlot*>(keys_by_hash_.find(tag_of(hash), match_key_hash, &hash));
}

KeySlot* Index::find_key(Id id) const noexcept {
  return static_cast<KeySlot*>(keys_by_id_.find(tag_of(id), match_key_id, &id));
}

OrgSlot* Index::find_org(Id id) const noexcept {
  return static_cast<OrgSlot*>(orgs_by_id_.find(tag_of(id), match_org_id, &id));
}

void Index::put(std::unique_ptr<const Organization> record) {
  ReadSection rs;
  if (OrgSlot* slot = find_org(record->id)) {
    const Organization* next = record.release();
    const Organization* prev = slot->record.exchange(next, std::memory_order_acq_rel);
    counts_.replace(prev, next);
    retired_orgs_.emplace_back(prev);
    return;
  }
  counts_.replace(nullptr, record.get());
  const auto [memory, number] = org_slots_.allocate();
  OrgSlot* slot = new (memory) OrgSlot(record.release(), number);
  orgs_by_id_.insert(tag_of(slot->id), number);
  if (last_org_)
    last_org_->next_org.store(slot, std::memory_order_release);
  else
    first_org_.store(slot, std::memory_order_release);
  last_org_ = slot;
  org_count_.fetch_add(1, std::memory_order_relaxed);
}

bool Index::accepts(const KeyHash& hash, Id id) const noexcept {
  ReadSection rs;
  if (const KeySlot* slot = find_key(id)) return slot->hash == hash;
  return find_key(hash) == nullptr;
}

void Index::put(const KeyHash& hash, std::unique_ptr<const ApiKey> record) {
  if (!try_put(hash, record))
    throw std::logic_error(
        "an API key version whose hash is another key's or not its own, or whose "
        "organization is unknown");
}

bool Index::known_new(Id id) const noexcept {
  return bulk_ == Bulk::snapshot || (bulk_ == Bulk::log && newest_key_ < id);
}

void Index::prefetch_key(const KeyHash& hash, Id id) const noexcept {
  if (known_new(id)) return;  // no lookup to come
  keys_by_hash_.prefetch(tag_of(hash));
  keys_by_id_.prefetch(tag_of(id));
}

void Index::begin_bulk_load(BulkLoad kind, size_t keys) {
  if (kind == BulkLoad::snapshot && key_count() != 0) return;
  keys_by_id_.reserve(key_count() + keys);  // sized once: no rehash as they fill
  keys_by_hash_.reserve(key_count() + keys);
  bulk_ = kind == BulkLoad::snapshot ? Bulk::snapshot : Bulk::log;
  bulk_by_id_.reserve(keys);
  bulk_by_hash_.reserve(keys);
}

bool Index::place_bulk() {
  const auto same_id = [](const void* a, const void* b) noexcept {
    return static_cast<const KeySlot*>(a)->load()->id == static_cast<const KeySlot*>(b)->load()->id;
  };
  const auto same_hash = [](const void* a, const void* b) noexcept {
    return static_cast<const KeySlot*>(a)->hash == static_cast<const KeySlot*>(b)->hash;
  };
  // The same id twice, or the same value's hash: either is a key put() would have refused.
  // The two tables are apart in memory and their entries written once: when there are many,
  // one is filled on a second thread while this one fills the other (only slots and records
  // are read by both).
  constexpr size_t kOnTwoThreads = 1 << 16;
  bool ids = true;
  std::thread by_id;
  if (bulk_by_id_.size() >= kOnTwoThreads)
    by_id = std::thread([&] { ids = keys_by_id_.insert_all(bulk_by_id_, same_id); });
  else
    ids = keys_by_id_.insert_all(bulk_by_id_, same_id);
  const bool hashes = keys_by_hash_.insert_all(bulk_by_hash_, same_hash);
  if (by_id.joinable()) by_id.join();
  return ids && hashes;
}

// The next pointers are set first and the first key last.
void Index::sort_keys(OrgSlot& org) {
  std::vector<KeySlot*> keys;
  keys.reserve(org.key_count.load(std::memory_order_relaxed));
  for (KeySlot* k = org.keys(); k; k = k->next()) keys.push_back(k);
  const auto by_id = [](const KeySlot* a, const KeySlot* b) {
    return a->load()->id < b->load()->id;
  };
  if (keys.empty() || std::is_sorted(keys.begin(), keys.end(), by_id)) return;
  std::sort(keys.begin(), keys.end(), by_id);
  for (size_t i = 0; i < keys.size(); ++i)
    keys[i]->next_in_org.store(i + 1 < keys.size() ? keys[i + 1] : nullptr,
                               std::memory_order_relaxed);
  org.first_key.store(keys.front(), std::memory_order_release);
  org.last_key = keys.back();
}

void Index::restore_key_order() {
  for (const Id id : unsorted_orgs_)
    if (OrgSlot* org = find_org(id)) {
      sort_keys(*org);
      org->keys_unsorted = false;
    }
  unsorted_orgs_.clear();
}

bool Index::end_bulk_load() {
  if (bulk_ == Bulk::off) return true;
  restore_key_order();
  bulk_ = Bulk::off;
  const bool distinct = place_bulk() && bulk_distinct_;
  bulk_distinct_ = true;
  return distinct;
}

bool Index::try_put(const KeyHash& hash, std::unique_ptr<const ApiKey>& record,
                    uint64_t last_used_ms) {
  ReadSection rs;
  if (known_new(record->id)) return add_key(hash, record, last_used_ms, /*tables_later=*/true);
  if (bulk_ == Bulk::log && !bulk_by_id_.empty() && !(record->id < bulk_oldest_))
    bulk_distinct_ = place_bulk() && bulk_distinct_;  // it may be one of the new keys
  if (KeySlot* slot = find_key(record->id)) {
    if (slot->hash != hash) return false;  // a key keeps its hash for life
    const ApiKey* next = record.release();
    const ApiKey* prev = slot->record.exchange(next, std::memory_order_acq_rel);
    counts_.replace(prev, next);
    retired_keys_.emplace_back(prev);
    if (last_used_ms) slot->set_last_used_ms(last_used_ms);
    schedule_reclaim(*next);
    return true;
  }
  if (find_key(hash)) return false;  // another key's value
  return add_key(hash, record, last_used_ms, /*tables_later=*/false);
}

bool Index::add_key(const KeyHash& hash, std::unique_ptr<const ApiKey>& record,
                    uint64_t last_used_ms, bool tables_later) {
  OrgSlot* org = find_org(record->organization_id);
  if (!org) return false;
  counts_.replace(nullptr, record.get());
  const auto [memory, number] = key_slots_.allocate();
  KeySlot* slot = new (memory) KeySlot(hash, record.release(), org->number);
  // Ids grow with time, so appending nearly always keeps each list in id order. Not always:
  // in cluster mode each node assigns ids, and two nodes' keys commit in either order; and
  // a load from etcd reads keys in the order of their values' hashes.
  const Id id = slot->load()->id;
  KeySlot* last = org->last_key;
  if (last && id < last->load()->id && !org->keys_unsorted) {
    org->keys_unsorted = true;  // sorted by restore_key_order()
    unsorted_orgs_.push_back(org->id);
  }
  (last ? last->next_in_org : org->first_key).store(slot, std::memory_order_release);
  org->last_key = slot;
  org->key_count.fetch_add(1, std::memory_order_relaxed);
  if (newest_key_ < id) newest_key_ = id;
  if (tables_later) {
    if (bulk_by_id_.empty()) bulk_oldest_ = id;
    bulk_by_id_.push(tag_of(id), number);
    bulk_by_hash_.push(tag_of(slot->hash), number);
  } else {
    keys_by_id_.insert(tag_of(id), number);
    keys_by_hash_.insert(tag_of(slot->hash), number);
  }
  key_count_.fetch_add(1, std::memory_order_relaxed);
  if (last_used_ms) slot->set_last_used_ms(last_used_ms);
  schedule_reclaim(*slot->load());
  return true;
}

uint64_t Index::reclaim_at(const ApiKey& k) const noexcept {
  if (!reclaim_after_ms_) return 0;
  uint64_t end = k.revoked_ms;
  if (!end) {
    end = k.expires_ms ? k.expires_ms : UINT64_MAX;
    if (k.rotated_ms) end = std::min(end, k.grace_expires_ms);
    if (end == UINT64_MAX) return 0;
  }
  return end > UINT64_MAX - reclaim_after_ms_ ? 0 : std::max<uint64_t>(end + reclaim_after_ms_, 1);
}

void Index::schedule_reclaim(const ApiKey& k) {
  if (const uint64_t at = reclaim_at(k)) {
    reclaim_due_.push_back({at, k.id});
    std::push_heap(reclaim_due_.begin(), reclaim_due_.end(), std::greater<>{});
  }
}

void Index::advance_clock(uint64_t now_ms) {
  counts_.advance(now_ms);
  if (bulk_ == Bulk::off && !reclaim_due_.empty() && reclaim_due_.front().at_ms <= now_ms)
    reclaim_keys(now_ms);
}

void Index::reclaim_keys(uint64_t now_ms) {
  ReadSection rs;
  // Out of both tables first (a second entry for the same key then finds nothing), then
  // out of their organizations' lists, one walk per organization for all of its keys.
  std::vector<KeySlot*> gone;
  while (!reclaim_due_.empty() && reclaim_due_.front().at_ms <= now_ms &&
         gone.size() < kReclaimBatch) {
    const Id id = reclaim_due_.front().key;
    std::pop_heap(reclaim_due_.begin(), reclaim_due_.end(), std::greater<>{});
    reclaim_due_.pop_back();
    KeySlot* slot = find_key(id);
    if (!slot) continue;  // reclaimed already
    const ApiKey* record = slot->load();
    const uint64_t at = reclaim_at(*record);
    if (!at || at > now_ms) continue;  // a later version moved its end: its own entry waits
    const uint32_t number = keys_by_id_.erase(tag_of(id), slot);
    keys_by_hash_.erase(tag_of(slot->hash), slot);
    counts_.replace(record, nullptr);
    retired_keys_.emplace_back(record);
    retired_key_slots_.push_back(number);
    gone.push_back(slot);
  }
  if (gone.empty()) return;
  // Grouped by organization, then by address for the lookups of the walk below. A list is
  // in the order keys were put, which is not always id order (a cluster's nodes assign ids
  // on their own clocks), so each organization's list is walked until all of its keys that
  // go are found, wherever they are in it.
  std::sort(gone.begin(), gone.end(), [](const KeySlot* a, const KeySlot* b) {
    return a->org_number != b->org_number ? a->org_number < b->org_number : std::less<>{}(a, b);
  });
  for (size_t i = 0; i < gone.size();) {
    OrgSlot* org = static_cast<OrgSlot*>(org_slots_.at(gone[i]->org_number));
    size_t end = i;
    while (end < gone.size() && gone[end]->org_number == org->number) ++end;
    size_t left = end - i;
    KeySlot* prev = nullptr;
    // A reader standing on a removed slot still follows its `next`, unchanged, back into
    // the list; the slot itself is reused only after the grace period.
    for (KeySlot* k = org->keys(); k && left > 0;) {
      KeySlot* next = k->next();
      if (!std::binary_search(gone.begin() + static_cast<ptrdiff_t>(i),
                              gone.begin() + static_cast<ptrdiff_t>(end), k, std::less<>{})) {
        prev = k;
      } else {
        (prev ? prev->next_in_org : org->first_key).store(next, std::memory_order_release);
        if (org->last_key == k) org->last_key = prev;
        org->key_count.fetch_sub(1, std::memory_order_relaxed);
        --left;
      }
      k = next;
    }
    i = end;
  }
  key_count_.fetch_sub(gone.size(), std::memory_order_relaxed);
  reclaimed_.fetch_add(gone.size(), std::memory_order_relaxed);
  reclaim();
}

void Index::publish_certificates(OrgSlot* org, std::unique_ptr<CertificateSet> set) {
  set->active_fingerprints.clear();
  set->project_fingerprints.clear();
  for (const auto& c : set->items) {
    if (c->active)
      set->active_fingerprints.push_back({c->fingerprint, c->valid_at, c->expires_at, 0});
    for (uint16_t p : c->active_projects)
      set->project_fingerprints.push_back({c->fingerprint, c->valid_at, c->expires_at, p});
  }
  if (const CertificateSet* old =
          org->certificates.exchange(set.release(), std::memory_order_acq_rel))
    retired_cert_sets_.emplace_back(old);
}

void Index::put(std::shared_ptr<const Certificate> record) {
  ReadSection rs;
  OrgSlot* org = find_org(record->organization_id);
  if (!org) throw std::logic_error("a certificate was published before its organization");
  auto set = std::make_unique<CertificateSet>();
  if (const CertificateSet* cur = org->certs()) set->items = cur->items;
  auto same = std::find_if(set->items.begin(), set->items.end(),
                           [&](const auto& c) { return c->id == record->id; });
  if (same != set->items.end())
    *same = std::move(record);
  else
    set->items.push_back(std::move(record));  // ids grow with time: creation order holds
  publish_certificates(org, std::move(set));
}

void Index::remove_certificate(Id organization, Id certificate) {
  ReadSection rs;
  OrgSlot* org = find_org(organization);
  const CertificateSet* cur = org ? org->certs() : nullptr;
  if (!cur) return;
  auto set = std::make_unique<CertificateSet>();
  for (const auto& c : cur->items)
    if (c->id != certificate) set->items.push_back(c);
  publish_certificates(org, std::move(set));
}

bool Index::put(std::shared_ptr<const Project> record) {
  ReadSection rs;
  OrgSlot* org = find_org(record->organization_id);
  if (!org) return false;
  auto set = std::make_unique<ProjectSet>();
  if (const ProjectSet* cur = org->project_set()) set->items = cur->items;
  const size_t n = record->number;
  if (n == set->items.size() + 1)
    set->items.push_back(std::move(record));
  else if (n >= 1 && n <= set->items.size() && set->items[n - 1]->id == record->id)
    set->items[n - 1] = std::move(record);
  else
    return false;
  if (const ProjectSet* old = org->projects.exchange(set.release(), std::memory_order_acq_rel))
    retired_project_sets_.emplace_back(old);
  return true;
}

void Index::reclaim() {
  if (retired_orgs_.empty() && retired_keys_.empty() && retired_cert_sets_.empty() &&
      retired_project_sets_.empty())
    return;
  auto* batch = new RetiredBatch{{}, new RetiredRecords{}, {}, &key_slots_};
  batch->key_slots.swap(retired_key_slots_);
  batch->records->orgs.swap(retired_orgs_);
  batch->records->keys.swap(retired_keys_);
  batch->records->cert_sets.swap(retired_cert_sets_);
  batch->records->project_sets.swap(retired_project_sets_);
  rcu_order::hand_over(&batch->head);
  handed_to_rcu_ = true;
  urcu_memb_call_rcu(&batch->head, free_batch);
}

}  // namespace keygate::core
