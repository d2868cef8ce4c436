// Service: what the network layer calls to answer requests. The net layer knows nothing of
// what the requests mean; handlers/ implements this interface.
#pragma once

#include <optional>

#include "net/request.hpp"
#include "net/response.hpp"
#include "net/task.hpp"

namespace keygate::net {

class Service {
 public:
  virtual ~Service() = default;
  // Answers one request into `res`. Returns a task when the answer has to wait (a write
  // that must become durable first); std::nullopt when `res` is already complete. Views in
  // `req` stay valid until the task completes. Called on a reactor thread.
  virtual std::optional<task<void>> handle(const Request& req, Response& res) = 0;
  // The answer to a request that never reached a handler.
  virtual void reject(ProtocolError error, Response& res) = 0;
};

}  // namespace keygate::net
