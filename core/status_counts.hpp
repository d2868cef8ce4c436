// StatusCounts: organizations and API keys by status, kept by the one writer as it
// publishes each version (core/index.hpp), so that reading them costs a few atomic loads
// instead of a walk over every key: /metrics and `keygate check` read them.
//
// A key's status also changes with time alone: past `expires_at`, or past the end of a
// rotation's grace period, an active or rotating key reads as expired. The writer calls
// advance(now) at least once a second (the commit thread's loop); it moves the keys whose
// end has passed into `expired`. The counts are therefore exact as of the last advance(),
// at most about a second behind the clock. Pending ends are kept in a min-heap of 8-byte
// times (a key without an end costs nothing), with lazy deletion for versions that are
// replaced before their end.
//
// Threads: replace() and advance() belong to the writer; keys() and organizations() may
// be called from any thread and never block.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "core/model.hpp"

namespace keygate::core {

struct KeyStatusCounts {
  uint64_t active = 0, rotating = 0, expired = 0, revoked = 0;
  uint64_t total() const noexcept { return active + rotating + expired + revoked; }
};

struct OrgStatusCounts {
  uint64_t active = 0, suspended = 0;
};

class StatusCounts {
 public:
  // The writer: version `next` replaces `prev` (null: the first version, or none).
  void replace(const ApiKey* prev, const ApiKey* next);
  void replace(const Organization* prev, const Organization* next);
  // The writer: counts every key whose end is at or before `now_ms` as expired. Time never
  // goes back here: an earlier `now_ms` than the last one is taken as the last one.
  void advance(uint64_t now_ms);

  KeyStatusCounts keys() const noexcept;
  OrgStatusCounts organizations() const noexcept;

 private:
  // A key that is not revoked is active or rotating until its end, then expired.
  enum Base { base_active = 0, base_rotating = 1 };
  struct Ends {
    std::vector<uint64_t> pending;    // min-heap: ends after clock_ not yet counted
    std::vector<uint64_t> cancelled;  // min-heap: ends in `pending` whose version was replaced
    uint64_t total = 0;               // keys of this base, expired or not
    uint64_t expired = 0;             // of them, those whose end is at or before clock_
  };
  void add(const ApiKey& k);
  void remove(const ApiKey& k);
  void compact(Ends& e);
  void publish() noexcept;

  uint64_t clock_ = 0;
  std::array<Ends, 2> ends_;
  uint64_t revoked_ = 0;
  uint64_t orgs_[2] = {};
  // What readers see, stored by publish() after every change.
  std::atomic<uint64_t> active_{0}, rotating_{0}, expired_{0}, revoked_pub_{0};
  std::atomic<uint64_t> orgs_active_{0}, orgs_suspended_{0};
};

}  // namespace keygate::core
