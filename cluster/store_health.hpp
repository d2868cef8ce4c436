// StoreHealth: how full etcd is and which alarms it has raised, for /metrics, `keygate
// cluster status` and a warning at 80 % of the quota (docs/operations.md, "Sizing etcd").
// etcd refuses every write once its database reaches --quota-backend-bytes (a NOSPACE
// alarm), for every node at once, until an operator compacts, defragments and disarms it:
// keygate says so well before.
//
// poll() runs on the freshness thread (a blocking call, every 10 s); the figures are
// atomics that /metrics reads from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "cluster/etcd_client.hpp"

namespace keygate::cluster {

class StoreHealth {
 public:
  // `quota_bytes`: etcd's --quota-backend-bytes, for an etcd that does not report it (3.4).
  explicit StoreHealth(int64_t quota_bytes) : configured_quota_(quota_bytes) {}

  void poll(EtcdClient& client);
  void write_metrics(std::string& out) const;

  static constexpr double kWarnAt = 0.8;

 private:
  const int64_t configured_quota_;
  std::atomic<int64_t> db_size_{-1}, in_use_{-1}, quota_{0};
  std::atomic<int> alarms_{0};
  std::atomic<bool> nospace_{false};
  bool warned_ = false, alarmed_ = false;  // poll's thread: log a change once
};

}  // namespace keygate::cluster
