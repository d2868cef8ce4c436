#define _LGPL_SOURCE  // inline the read-side fast paths
#include "core/index.hpp"

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace keygate::core {

static_assert(sizeof(HashNode) == sizeof(cds_lfht_node));

namespace {

cds_lfht_node* node(HashNode& n) { return reinterpret_cast<cds_lfht_node*>(&n); }

template <typename T, HashNode T::*member>
T* owner(cds_lfht_node* n) {
  if (!n) return nullptr;
  const auto offset = reinterpret_cast<size_t>(&(static_cast<T*>(nullptr)->*member));
  return reinterpret_cast<T*>(reinterpret_cast<char*>(n) - offset);
}

unsigned long hash_of(const KeyHash& h) {
  unsigned long v;
  std::memcpy(&v, h.data(), sizeof v);  // SHA-256 output is already uniform
  return v;
}

unsigned long hash_of(Id id) { return IdHash{}(id); }

int match_key_hash(cds_lfht_node* n, const void* key) {
  return owner<KeySlot, &KeySlot::by_hash>(n)->hash == *static_cast<const KeyHash*>(key);
}
int match_key_id(cds_lfht_node* n, const void* key) {
  return owner<KeySlot, &KeySlot::by_id>(n)->id == *static_cast<const Id*>(key);
}
int match_org_id(cds_lfht_node* n, const void* key) {
  return owner<OrgSlot, &OrgSlot::by_id>(n)->id == *static_cast<const Id*>(key);
}

cds_lfht* new_table() {
  cds_lfht* t = cds_lfht_new_flavor(1 << 12, 1 << 12, 1UL << 27, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                                    &urcu_memb_flavor, nullptr);
  if (!t) throw std::runtime_error("cannot allocate the index hash table");
  return t;
}

struct RetiredRecords {
  std::vector<std::unique_ptr<const Organization>> orgs;
  std::vector<std::unique_ptr<const ApiKey>> keys;
  std::vector<std::unique_ptr<const CertificateSet>> cert_sets;
};

struct RetiredBatch {  // standard layout: `head` is its first member
  rcu_head head;
  RetiredRecords* records;
};

void free_batch(rcu_head* h) {
  auto* batch = reinterpret_cast<RetiredBatch*>(h);
  delete batch->records;
  delete batch;
}

void clear_table(cds_lfht* t) {
  urcu_memb_read_lock();
  cds_lfht_iter it;
  cds_lfht_node* n;
  cds_lfht_for_each(t, &it, n) cds_lfht_del(t, n);
  urcu_memb_read_unlock();
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

ReadSection::ReadSection() noexcept { urcu_memb_read_lock(); }
ReadSection::~ReadSection() { urcu_memb_read_unlock(); }

Index::Index() : keys_by_hash_(new_table()), keys_by_id_(new_table()), orgs_by_id_(new_table()) {}

Index::~Index() {
  reclaim();
  urcu_memb_barrier();  // run every pending free before the records' owners go
  for (cds_lfht* t : {keys_by_hash_, keys_by_id_, orgs_by_id_}) {
    clear_table(t);
    cds_lfht_destroy(t, nullptr);
  }
  for (auto& s : key_slots_) delete s->load();
  for (auto& s : org_slots_) {
    delete s->load();
    delete s->certs();
  }
}

KeySlot* Index::find_key(const KeyHash& hash) const noexcept {
  cds_lfht_iter it;
  cds_lfht_lookup(keys_by_hash_, hash_of(hash), match_key_hash, &hash, &it);
  return owner<KeySlot, &KeySlot::by_hash>(cds_lfht_iter_get_node(&it));
}

KeySlot* Index::find_key(Id id) const noexcept {
  cds_lfht_iter it;
  cds_lfht_lookup(keys_by_id_, hash_of(id), match_key_id, &id, &it);
  return owner<KeySlot, &KeySlot::by_id>(cds_lfht_iter_get_node(&it));
}

OrgSlot* Index::find_org(Id id) const noexcept {
  cds_lfht_iter it;
  cds_lfht_lookup(orgs_by_id_, hash_of(id), match_org_id, &id, &it);
  return owner<OrgSlot, &OrgSlot::by_id>(cds_lfht_iter_get_node(&it));
}

void Index::put(std::unique_ptr<const Organization> record) {
  ReadSection rs;
  if (OrgSlot* slot = find_org(record->id)) {
    retired_orgs_.emplace_back(slot->record.exchange(record.release(), std::memory_order_acq_rel));
    return;
  }
  auto owned = std::make_unique<OrgSlot>(record.release());
  OrgSlot* slot = owned.get();
  org_slots_.push_back(std::move(owned));
  cds_lfht_add(orgs_by_id_, hash_of(slot->id), node(slot->by_id));
  if (last_org_) last_org_->next_org.store(slot, std::memory_order_release);
  else first_org_.store(slot, std::memory_order_release);
  last_org_ = slot;
  org_count_.fetch_add(1, std::memory_order_relaxed);
}

void Index::put(std::unique_ptr<const ApiKey> record) {
  ReadSection rs;
  if (KeySlot* slot = find_key(record->id)) {
    retired_keys_.emplace_back(slot->record.exchange(record.release(), std::memory_order_acq_rel));
    return;
  }
  OrgSlot* org = find_org(record->organization_id);
  if (!org) throw std::logic_error("an API key was published before its organization");
  auto owned = std::make_unique<KeySlot>(record.get(), org);
  record.release();
  KeySlot* slot = owned.get();
  key_slots_.push_back(std::move(owned));
  // Ids grow with time and one writer assigns them, so appending keeps each list sorted.
  if (org->last_key) org->last_key->next_in_org.store(slot, std::memory_order_release);
  else org->first_key.store(slot, std::memory_order_release);
  org->last_key = slot;
  org->key_count.fetch_add(1, std::memory_order_relaxed);
  cds_lfht_add(keys_by_id_, hash_of(slot->id), node(slot->by_id));
  cds_lfht_add(keys_by_hash_, hash_of(slot->hash), node(slot->by_hash));
  key_count_.fetch_add(1, std::memory_order_relaxed);
}

void Index::publish_certificates(OrgSlot* org, std::unique_ptr<CertificateSet> set) {
  set->active_fingerprints.clear();
  for (const auto& c : set->items)
    if (c->active) set->active_fingerprints.push_back(c->fingerprint);
  if (const CertificateSet* old = org->certificates.exchange(set.release(), std::memory_order_acq_rel))
    retired_cert_sets_.emplace_back(old);
}

void Index::put(std::shared_ptr<const Certificate> record) {
  ReadSection rs;
  OrgSlot* org = find_org(record->organization_id);
  if (!org) throw std::logic_error("a certificate was published before its organization");
  auto set = std::make_unique<CertificateSet>();
  if (const CertificateSet* cur = org->certs()) set->items = cur->items;
  auto same = std::find_if(set->items.begin(), set->items.end(), [&](const auto& c) { return c->id == record->id; });
  if (same != set->items.end()) *same = std::move(record);
  else set->items.push_back(std::move(record));  // ids grow with time: creation order holds
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

void Index::reclaim() {
  if (retired_orgs_.empty() && retired_keys_.empty() && retired_cert_sets_.empty()) return;
  auto* batch = new RetiredBatch{{}, new RetiredRecords{}};
  batch->records->orgs.swap(retired_orgs_);
  batch->records->keys.swap(retired_keys_);
  batch->records->cert_sets.swap(retired_cert_sets_);
  urcu_memb_call_rcu(&batch->head, free_batch);
}

}  // namespace keygate::core
