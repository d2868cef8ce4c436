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
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
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

  // The exchange thread's own state.
  std::string script_sha_;
  std::vector<core::Id> drained_;
  // Hits not yet sent, by key, and the keys in the order they first came: an exchange
  // sends the oldest kMaxKeysPerExchange, so a tenant with very many keys in use makes the
  // exchanges later, never larger than Redis answers within its timeout, and starves no key.
  std::unordered_map<core::Id, uint32_t, core::IdHash> pending_;
  std::deque<core::Id> pending_order_;
  std::unordered_map<core::Id, uint32_t, core::IdHash>
      pushed_s_;               // key -> second of its last use sent
  uint64_t uses_since_s_ = 0;  // the last-use set is read from this second on...
  uint64_t uses_offset_ = 0;   // ...past this many entries (a read in pages)
  uint64_t next_uses_read_ms_ = 0;
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
