// FleetStore: core::SharedStore on Redis (--redis), for the nodes' shared idempotent
// answers. One thread with its own connection takes every call queued meanwhile and sends
// them in one pipelined round trip; a Redis that fails or is slower than --redis-timeout-ms
// fails that round's calls (their callers go on without it), and the calls of the next
// second fail at once, without waiting on it; then a round connects again. Names are
// <prefix>/<name>.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/redis_client.hpp"
#include "core/shared_store.hpp"

namespace keygate::cluster {

class FleetStore final : public core::SharedStore {
 public:
  FleetStore(RedisClient::Options redis, std::string prefix);
  ~FleetStore() override;
  FleetStore(const FleetStore&) = delete;
  FleetStore& operator=(const FleetStore&) = delete;

  void start();
  void stop();  // fails the calls still queued
  void submit(core::SharedCall* call) override;

 private:
  RedisClient redis_;
  const std::string prefix_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<core::SharedCall*> queue_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point retry_at_{};  // the store thread's: Redis left until then
  void run();
  bool exchange(std::vector<core::SharedCall*>& calls);  // false: Redis failed them all
};

}  // namespace keygate::cluster
