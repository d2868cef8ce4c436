// SharedStore: a few calls to a store that every node of a fleet sees (cluster mode with
// --redis: cluster/fleet_store.hpp), for what the nodes share that is not state: the
// sealed answers of idempotent requests (handlers/shared_idempotency.hpp). Calls complete
// on the store's thread, within its timeout; a store that is away fails them (`ok` false)
// and the caller goes on without it. Values are opaque bytes.
#pragma once

#include <cstdint>
#include <string>

namespace keygate::core {

struct SharedCall {
  enum class Op : uint8_t {
    claim,   // put `value` under `name` unless something is there; `existed`, and `value`
             // becomes what was there
    put,     // put `value` under `name`, replacing what was there
    remove,  // remove `name`
  };
  Op op = Op::claim;
  std::string name;  // under the store's prefix
  std::string value;
  uint64_t ttl_ms = 0;  // claim and put: the entry goes after this
  bool ok = false;      // the store answered
  bool existed = false;
  void (*done)(SharedCall*) = nullptr;  // called once, on the store's thread
  void* context = nullptr;
};

class SharedStore {
 public:
  virtual ~SharedStore() = default;
  // Thread-safe; done() is called exactly once.
  virtual void submit(SharedCall* call) = 0;
};

}  // namespace keygate::core
