// FleetCounters: a fleet's hot counters in Redis (--redis), so that N nodes enforce each
// key's rate limit as one keygate would, and report each key's last use on any node.
//
// Verification never waits on Redis. Each node keeps deciding from its own bucket (the
// key's whole limit, core/rate_limit.hpp) and records what it admits (core/hit_log.hpp).
// A thread of its own, every --redis-sync-ms, sends the hits since the last exchange, key
// by key, in one pipelined round trip: a script adds them to the key's fleet-wide GCRA
// state in Redis (its theoretical arrival time, on Redis's clock; the key expires when its
// bucket is full again) and answers how far ahead of now it is. The node then moves its
// own bucket at least that far ahead, so the other nodes' hits count against it. What a
// node cannot know is the others' hits since the last exchange: the fleet admits at most
// about one interval's worth of the limit beyond one keygate (cluster/README.md, "Rate
// limits across the fleet"), and pays even that back from the limit that follows.
//
// Last use: the same round trip puts each key used this second into a sorted set by
// second (ZADD GT), and once a second reads back what changed in it since, so every node
// sees a use on any node within about two seconds.
//
// Redis away (refused, reset, slower than --redis-timeout-ms): `shared()` turns false at
// once and verification goes on under the fair share (core/verify.hpp, RateDefaults), with
// a log line and keygate_redis_up 0; the thread tries again every 250 ms and, when Redis
// answers, shares again. A Redis that lost its data holds no state for any key: every
// bucket is full, which never blocks anyone.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/redis_client.hpp"
#include "core/hit_log.hpp"
#include "core/index.hpp"
#include "core/verify.hpp"

namespace keygate::cluster {

class FleetCounters {
 public:
  struct Options {
    RedisClient::Options redis;
    std::string prefix = "/keygate";  // the cluster's (etcd's) prefix: keys are <prefix>/rl/...
    std::chrono::milliseconds interval{25};
  };
  // `limits` is read for each key's limit (RateDefaults::for_key); its `hits` must be
  // `hits`, and its `shared` this object's shared().
  FleetCounters(Options options, const core::Index& index, const core::RateDefaults& limits,
                core::HitLog& hits);
  ~FleetCounters();
  FleetCounters(const FleetCounters&) = delete;
  FleetCounters& operator=(const FleetCounters&) = delete;

  void start();
  void stop();
  // True while the last exchange with Redis succeeded. Any thread.
  const std::atomic<bool>& shared() const noexcept { return shared_; }
  void write_metrics(std::string& out) const;

 private:
  Options options_;
  const core::Index& index_;
  const core::RateDefaults& limits_;
  core::HitLog& hits_;
  RedisClient redis_;
  std::atomic<bool> shared_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;

  // The exchange thread's own state, kept from one exchange to the next so that an
  // exchange allocates nothing per key (the hits' cost, perf/RESULTS.md).
  std::string script_sha_;
  std::vector<core::Id> drained_;
  // Hits not yet sent, a key each, oldest first: those an exchange left (it sends
  // kMaxKeysPerExchange at most, so a tenant with very many keys in use makes exchanges
  // later, never larger than Redis answers within its timeout), then this interval's,
  // counted by sorting. No key waits behind newer ones.
  struct Pending {
    core::Id id;
    uint32_t hits;
  };
  std::vector<Pending> pending_;
  // The keys whose use this second was sent: an open-addressing set (empty slot: the zero
  // id, which no key has), emptied when the second turns.
  std::vector<core::Id> pushed_;
  size_t pushed_count_ = 0;
  uint64_t pushed_second_ = 0;
  bool mark_pushed(core::Id id);  // false: sent this second already
  std::string out_, key_;         // the exchange's commands in RESP; a Redis key's name
  std::vector<core::Id> rated_, uses_;
  std::vector<int64_t> debts_, debt_caps_;  // a rated key's answer, and how far it may go
  uint64_t uses_since_s_ = 0;               // the last-use set is read from this second on...
  uint64_t uses_offset_ = 0;                // ...past this many entries (a read in pages)
  uint64_t next_uses_read_ms_ = 0;
  void apply_uses(std::string_view reply, uint64_t now_ms);
  bool was_up_ = false;
  std::string last_error_;

  std::atomic<uint64_t> exchanges_ok_{0}, exchanges_failed_{0}, hits_sent_{0}, uses_seen_{0},
      fallbacks_{0}, last_exchange_us_{0}, backlog_{0}, unsent_{0};

  void run();
  bool exchange(uint64_t now_ms);  // one round trip; false when Redis failed
  bool load_script();
  void went_down(const std::string& why);
};

}  // namespace keygate::cluster
