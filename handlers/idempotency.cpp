#include "handlers/idempotency.hpp"

namespace keygate::handlers {

namespace {
constexpr uint64_t kTtlMs = 24ull * 3600 * 1000;
}

void Idempotency::evict(uint64_t now_ms) {
  while (!order_.empty()) {
    auto it = entries_.find(order_.front());
    const bool expired = it == entries_.end() || now_ms - it->second.created_ms >= kTtlMs;
    if (!expired && entries_.size() < max_entries_) break;
    if (it != entries_.end()) entries_.erase(it);
    order_.pop_front();
  }
}

Idempotency::Begin Idempotency::begin(const std::string& scope_key,
                                      const std::array<uint8_t, 32>& fingerprint, uint64_t now_ms,
                                      net::Response& replay) {
  std::lock_guard lock(mutex_);
  evict(now_ms);
  auto it = entries_.find(scope_key);
  if (it != entries_.end()) {
    Entry& e = it->second;
    if (e.fingerprint != fingerprint) return Begin::reused;
    if (!e.done) return Begin::in_progress;
    replay.status = e.status;
    replay.content_type = e.content_type == "application/json" ? "application/json" : "text/plain";
    replay.headers = e.headers;
    replay.body = e.body;
    return Begin::replay;
  }
  order_.push_back(scope_key);
  Entry e;
  e.fingerprint = fingerprint;
  e.created_ms = now_ms;
  e.order = std::prev(order_.end());
  entries_.emplace(scope_key, std::move(e));
  return Begin::fresh;
}

void Idempotency::finish(const std::string& scope_key, const net::Response& res, bool keep) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(scope_key);
  if (it == entries_.end()) return;
  if (!keep) {
    order_.erase(it->second.order);
    entries_.erase(it);
    return;
  }
  Entry& e = it->second;
  e.done = true;
  e.status = res.status;
  e.content_type = std::string(res.content_type);
  e.headers = res.headers;
  e.body = res.body;
}

}  // namespace keygate::handlers
