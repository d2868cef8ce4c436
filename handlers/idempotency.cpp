#include "handlers/idempotency.hpp"

#include <cstring>

namespace keygate::handlers {

namespace {
// What an entry costs beyond its strings: the map node, the two list nodes, the fields.
constexpr size_t kEntryOverhead = 256;
}  // namespace

std::string Idempotency::entry_id(const Owner& owner, std::string_view key) {
  std::string id(sizeof owner.principal, '\0');
  std::memcpy(id.data(), &owner.principal, sizeof owner.principal);
  id.append(key);
  return id;
}

size_t Idempotency::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

size_t Idempotency::entries() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

// Sets what `e` costs to `bytes`, keeping its tenant's place in by_bytes_ right.
void Idempotency::charge(Entry& e, size_t bytes) {
  Tenant& t = tenants_[e.tenant];
  if (t.bytes) by_bytes_.erase(t.by_bytes);
  t.bytes = t.bytes - e.bytes + bytes;
  bytes_ = bytes_ - e.bytes + bytes;
  e.bytes = bytes;
  if (t.bytes) t.by_bytes = by_bytes_.emplace(t.bytes, e.tenant);
}

void Idempotency::erase(Entry* e) {
  charge(*e, 0);
  auto t = tenants_.find(e->tenant);
  t->second.lru.erase(e->in_tenant);
  if (t->second.lru.empty()) tenants_.erase(t);
  by_time_.erase(e->in_time);
  entries_.erase(entries_.find(e->id));
}

void Idempotency::evict(uint64_t now_ms) {
  while (!by_time_.empty() && now_ms - by_time_.front()->created_ms >= kTtlMs)
    erase(by_time_.front());
  // Over budget: the largest tenant gives up its oldest entry (see the header for why this
  // is fair). An entry still being answered is passed over: its request is in flight.
  while (bytes_ > max_bytes_ && !by_bytes_.empty()) {
    Tenant& t = tenants_[std::prev(by_bytes_.end())->second];
    Entry* victim = nullptr;
    for (Entry* e : t.lru)
      if (e->done) {
        victim = e;
        break;
      }
    if (!victim) break;
    erase(victim);
  }
}

Idempotency::Begin Idempotency::find(const Owner& owner, std::string_view key,
                                     const std::array<uint8_t, 32>& fingerprint, uint64_t now_ms,
                                     net::Response& replay) {
  const std::string id = entry_id(owner, key);
  std::lock_guard lock(mutex_);
  evict(now_ms);
  return find_locked(id, fingerprint, replay);
}

Idempotency::Begin Idempotency::find_locked(const std::string& id,
                                            const std::array<uint8_t, 32>& fingerprint,
                                            net::Response& replay) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return Begin::fresh;
  Entry& e = it->second;
  if (e.fingerprint != fingerprint) return Begin::reused;
  if (!e.done) return Begin::in_progress;
  replay.status = e.status;
  replay.content_type = e.content_type == "application/json" ? "application/json" : "text/plain";
  replay.headers = e.headers;
  replay.body = e.body;
  Tenant& t = tenants_[e.tenant];
  t.lru.splice(t.lru.end(), t.lru, e.in_tenant);  // used: the tenant's newest
  return Begin::replay;
}

Idempotency::Begin Idempotency::begin(const Owner& owner, std::string_view key,
                                      const std::array<uint8_t, 32>& fingerprint, uint64_t now_ms,
                                      net::Response& replay) {
  std::string id = entry_id(owner, key);
  std::lock_guard lock(mutex_);
  evict(now_ms);
  if (const Begin found = find_locked(id, fingerprint, replay); found != Begin::fresh) return found;
  auto [it, inserted] = entries_.try_emplace(id);
  Entry& e = it->second;
  e.id = std::move(id);
  e.tenant = owner.tenant;
  e.fingerprint = fingerprint;
  e.created_ms = now_ms;
  Tenant& t = tenants_[owner.tenant];
  e.in_tenant = t.lru.insert(t.lru.end(), &e);
  e.in_time = by_time_.insert(by_time_.end(), &e);
  charge(e, kEntryOverhead + e.id.size());
  evict(now_ms);
  return Begin::fresh;
}

void Idempotency::finish(const Owner& owner, std::string_view key, const net::Response& res,
                         bool keep) {
  const std::string id = entry_id(owner, key);
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  const size_t answer = res.content_type.size() + res.headers.size() + res.body.size();
  if (!keep || (res.status >= 400 && answer > kMaxErrorBytes)) {
    erase(&e);
    return;
  }
  e.done = true;
  e.status = res.status;
  e.content_type = std::string(res.content_type);
  e.headers = res.headers;
  e.body = res.body;
  charge(e, kEntryOverhead + e.id.size() + answer);
  evict(e.created_ms);
}

}  // namespace keygate::handlers
