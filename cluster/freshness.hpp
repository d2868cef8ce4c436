// Freshness: how far a cluster node is behind etcd's present, as a number, so that it
// stops vouching for keys when it cannot show it is within --max-staleness
// (cluster/README.md, "Bounded staleness").
//
// A thread of its own, on a connection of its own, makes a linearizable read every 250 ms.
// The revision such a read returns holds every change etcd committed before the read
// began; so once the node has applied that revision, it has applied every change
// acknowledged before that moment: it is fresh as of then. A node whose member hangs, or
// is cut off, or whose watch stalls, stops becoming fresher, and after max_staleness it
// stops vouching (verification answers 503 NODE_STALE, /readyz 503), until a member
// answers and the watch has caught up. A read through a member that hangs is left after
// probe_timeout and tried on the next; when the node knows of a revision its watch has not
// delivered for max_staleness / 2, it asks for the watch to move to another member
// (a hung member ends nothing by itself: etcd-io/etcd#7593).
//
// Thread-safe: vouch_until() is read by every verification (one relaxed load).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/etcd_client.hpp"

namespace keygate::cluster {

class Freshness {
 public:
  struct Options {
    std::vector<std::string> endpoints;
    EtcdTls tls;
    std::string probe_key;  // any key: the read is for its revision
    // A key of this node's under keygate's prefix that the watch delivers, written (with a
    // lease) only when etcd's revision moved without a change the watch would deliver
    // (another application on the same etcd, say), so that the node can still show how far
    // behind it is. Under <prefix>/nodes/, which every node, old ones included, ignores.
    std::string fence_key;
    std::chrono::milliseconds max_staleness{1'000};
    std::chrono::milliseconds probe_interval{250};
  };
  struct Hooks {
    std::function<int64_t()> applied;                 // the revision the node has applied
    std::function<void(int64_t revision)> on_answer;  // etcd answered, at that revision
    std::function<void()> move_watch;                 // the watch is stuck on its member
    // Every 10 s, with this thread's client: other reads about etcd (StoreHealth::poll).
    std::function<void(EtcdClient&)> every_10s;
  };

  Freshness(Options options, Hooks hooks);
  ~Freshness();
  Freshness(const Freshness&) = delete;
  Freshness& operator=(const Freshness&) = delete;

  // Starts probing; the node is fresh as of `fresh_as_of_ms` (the read it loaded from).
  void start(uint64_t fresh_as_of_ms);
  void stop();
  // Waits until the node may vouch (or `within` passes); whether it may.
  bool wait_until_vouching(std::chrono::milliseconds within);

  // Unix ms until which this node may vouch for keys: the moment it was last known fresh,
  // plus max_staleness. Read on every verification.
  const std::atomic<uint64_t>& vouch_until() const noexcept { return vouch_until_; }
  uint64_t fresh_as_of_ms() const noexcept { return fresh_as_of_.load(std::memory_order_relaxed); }
  uint64_t watch_moves() const noexcept { return watch_moves_.load(std::memory_order_relaxed); }
  uint64_t probes_failed() const noexcept { return failed_.load(std::memory_order_relaxed); }

 private:
  void run();
  void set_fresh(uint64_t as_of_ms);

  Options options_;
  Hooks hooks_;
  std::atomic<uint64_t> fresh_as_of_{0};
  std::atomic<uint64_t> vouch_until_{0};
  std::atomic<uint64_t> watch_moves_{0}, failed_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace keygate::cluster
