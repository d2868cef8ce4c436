// Idempotency: POST requests with an Idempotency-Key header (docs/api.md §1.7). The first
// answer to (principal, key) is kept for 24 hours and replayed byte for byte to that same
// principal only, for the same method, target and body; the same key with another request
// is 409 idempotency_key_reused; while the first is still being answered, a repeat is told
// to retry. Anonymous requests (an --open-signup sign-up) never reach this store.
//
// Memory is bounded in bytes, and no tenant pays for another (docs/security.md): every
// tenant (an organization, or the root key) keeps its entries in an LRU of its own, and
// when the store is over `max_bytes` the oldest entry of the tenant holding the most bytes
// goes. That tenant always holds more than its fair share (max_bytes / tenants holding
// entries), so a tenant within its share never loses an entry to another. An error answer
// larger than kMaxErrorBytes is not kept: a refused request changed nothing, so running it
// again is harmless, and its message may repeat a large input.
//
// Thread-safe (one mutex: never on the verification path). Kept in memory: a restart
// forgets them, because a replayed key creation carries a secret.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/ids.hpp"
#include "net/response.hpp"

namespace keygate::handlers {

class Idempotency {
 public:
  static constexpr size_t kDefaultMaxBytes = size_t{64} << 20;
  static constexpr size_t kMaxErrorBytes = 1024;
  static constexpr uint64_t kTtlMs = 24ull * 3600 * 1000;

  explicit Idempotency(size_t max_bytes = kDefaultMaxBytes) : max_bytes_(max_bytes) {}

  // Who asked: the tenant whose budget the entry comes out of (an organization's id; the
  // root key's is empty), and the principal it belongs to (the key's id; empty for root).
  struct Owner {
    core::Id tenant;
    core::Id principal;
  };

  enum class Begin { fresh, replay, reused, in_progress };
  // `fingerprint`: SHA-256 of method, target and body.
  Begin begin(const Owner& owner, std::string_view key, const std::array<uint8_t, 32>& fingerprint,
              uint64_t now_ms, net::Response& replay);
  // The same without taking the key when it is new (fresh: nothing here): the fleet's way
  // (handlers/shared_idempotency.hpp) looks here before it claims the key in Redis.
  Begin find(const Owner& owner, std::string_view key, const std::array<uint8_t, 32>& fingerprint,
             uint64_t now_ms, net::Response& replay);
  // Stores the answer to a fresh request (or forgets the request when `keep` is false or
  // the answer is an error too large to keep).
  void finish(const Owner& owner, std::string_view key, const net::Response& res, bool keep);

  size_t bytes() const;
  size_t entries() const;

 private:
  struct Entry;
  Begin find_locked(const std::string& id, const std::array<uint8_t, 32>& fingerprint,
                    net::Response& replay);
  using Order = std::list<Entry*>;
  struct Tenant {
    size_t bytes = 0;
    Order lru;  // oldest first
    std::multimap<size_t, core::Id>::iterator by_bytes;
  };
  struct Entry {
    std::string id;  // principal (16 bytes) + the Idempotency-Key
    core::Id tenant;
    std::array<uint8_t, 32> fingerprint{};
    uint64_t created_ms = 0;
    bool done = false;
    uint16_t status = 0;
    std::string content_type;
    std::string headers;
    std::string body;
    size_t bytes = 0;
    Order::iterator in_tenant;
    Order::iterator in_time;
  };

  static std::string entry_id(const Owner& owner, std::string_view key);
  void charge(Entry& e, size_t bytes);
  void erase(Entry* e);
  void evict(uint64_t now_ms);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::unordered_map<core::Id, Tenant, core::IdHash> tenants_;
  std::multimap<size_t, core::Id> by_bytes_;  // tenants by bytes held: the largest is last
  Order by_time_;                             // every entry, oldest first: for the 24 hours
  size_t bytes_ = 0;
  size_t max_bytes_;
};

}  // namespace keygate::handlers
