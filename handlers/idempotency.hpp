// Idempotency: POST requests with an Idempotency-Key header (docs/api.md §1). The first
// response to (credential, key) is kept for 24 hours and replayed byte for byte; the same
// key with another request is 409 idempotency_key_reused; while the first is still being
// answered, a repeat is told to retry. Thread-safe (a mutex: never on the verify path).
// Kept in memory: a restart forgets them.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "net/response.hpp"

namespace keygate::handlers {

class Idempotency {
 public:
  explicit Idempotency(size_t max_entries = 100'000) : max_entries_(max_entries) {}

  enum class Begin { fresh, replay, reused, in_progress };
  // `fingerprint`: SHA-256 of method, path and body.
  Begin begin(const std::string& scope_key, const std::array<uint8_t, 32>& fingerprint,
              uint64_t now_ms, net::Response& replay);
  // Stores the answer to a fresh request (or forgets it when it should not be replayed).
  void finish(const std::string& scope_key, const net::Response& res, bool keep);

 private:
  struct Entry {
    std::array<uint8_t, 32> fingerprint{};
    uint64_t created_ms = 0;
    bool done = false;
    uint16_t status = 0;
    std::string content_type;
    std::string headers;
    std::string body;
    std::list<std::string>::iterator order;
  };
  void evict(uint64_t now_ms);

  std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> order_;  // oldest first
  size_t max_entries_;
};

}  // namespace keygate::handlers
