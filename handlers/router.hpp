// Router: (method, path pattern) -> handler. Patterns are literal segments and {params};
// a path that matches a pattern under another method is a 405 with an Allow header;
// anything else a 404. HEAD is answered as GET without a body.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/exchange.hpp"
#include "net/task.hpp"

namespace keygate::handlers {

using SyncHandler = void (*)(Exchange&);
using AsyncHandler = net::task<void> (*)(Exchange&);

// Whether the router's caller authenticates a request before dispatch: always, never (the
// handler reads its own credential, or none is needed), or when one was sent (a sign-up
// with --open-signup may come without one).
enum class Auth : uint8_t { none, required, when_sent };

struct Route {
  net::Method method;
  std::string_view pattern;    // "/v1/organizations/{id}/api-keys/{keyId}"
  SyncHandler sync = nullptr;  // exactly one of the two
  AsyncHandler async = nullptr;
  Auth auth = Auth::required;
  // Verification and the operations endpoints: served on every listener. The rest is the
  // management API, which --admin-listen moves to a listener of its own.
  bool data_plane = false;
};

class Router {
 public:
  explicit Router(std::vector<Route> routes) : routes_(std::move(routes)) {}

  enum class Result { found, not_found, method_not_allowed };
  // Hot path: no allocation unless the answer is 405 (then `allow` is filled).
  Result match(net::Method method, std::string_view path, uint16_t& route,
               std::array<std::string_view, 2>& params, std::string& allow) const;
  const Route& route(uint16_t i) const { return routes_[i]; }
  const std::vector<Route>& routes() const { return routes_; }

  static bool match_pattern(std::string_view pattern, std::string_view path,
                            std::array<std::string_view, 2>& params) noexcept;

 private:
  std::vector<Route> routes_;
};

std::string_view method_name(net::Method m) noexcept;

}  // namespace keygate::handlers
