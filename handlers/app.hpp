// App: keygate's net::Service. Gives every request an X-Request-Id, routes it,
// authenticates it when its route asks, applies Idempotency-Key to POSTs, records metrics,
// and answers the requests the network layer rejected itself.
#pragma once

#include <optional>

#include "handlers/exchange.hpp"
#include "handlers/router.hpp"
#include "net/service.hpp"

namespace keygate::handlers {

class App final : public net::Service {
 public:
  // What a listener serves: every route, or (the --listen listener when --admin-listen
  // gives the management API one of its own) verification and the operations endpoints,
  // with a 404 naming the admin listener for the rest. Instances share `context`.
  enum class Listener { everything, data_plane };
  explicit App(AppContext& context, Listener listener = Listener::everything);

  std::optional<net::task<void>> handle(const net::Request& req, net::Response& res) override;
  void reject(net::ProtocolError error, net::Response& res) override;

  const Router& router() const noexcept { return router_; }

 private:
  AppContext& ctx_;
  Router router_;
  Listener listener_;
  uint16_t unmatched_route_ = 0;  // the metrics label of requests no route matched (404, 405)
  std::optional<net::task<void>> dispatch(Exchange& ex, uint64_t started);
};

}  // namespace keygate::handlers
