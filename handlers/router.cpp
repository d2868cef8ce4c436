#include "handlers/router.hpp"

namespace keygate::handlers {

std::string_view method_name(net::Method m) noexcept {
  switch (m) {
    case net::Method::get:
      return "GET";
    case net::Method::head:
      return "HEAD";
    case net::Method::post:
      return "POST";
    case net::Method::put:
      return "PUT";
    case net::Method::patch:
      return "PATCH";
    case net::Method::del:
      return "DELETE";
    case net::Method::options:
      return "OPTIONS";
    case net::Method::other:
      return "OTHER";
  }
  return "OTHER";
}

bool Router::match_pattern(std::string_view pattern, std::string_view path,
                           std::array<std::string_view, 2>& params) noexcept {
  size_t n = 0;
  while (!pattern.empty() && !path.empty()) {
    if (pattern.front() != '/' || path.front() != '/') return false;
    pattern.remove_prefix(1);
    path.remove_prefix(1);
    const size_t pe = pattern.find('/'), se = path.find('/');
    std::string_view pseg = pattern.substr(0, pe), seg = path.substr(0, se);
    if (pseg.starts_with('{')) {
      if (seg.empty() || n == params.size()) return false;
      params[n++] = seg;
    } else if (pseg != seg) {
      return false;
    }
    pattern.remove_prefix(pseg.size());
    path.remove_prefix(seg.size());
  }
  return pattern.empty() && path.empty();
}

Router::Result Router::match(net::Method method, std::string_view path, uint16_t& route,
                             std::array<std::string_view, 2>& params, std::string& allow) const {
  const net::Method wanted = method == net::Method::head ? net::Method::get : method;
  bool path_known = false;
  for (size_t i = 0; i < routes_.size(); ++i) {
    if (!match_pattern(routes_[i].pattern, path, params)) continue;
    if (routes_[i].method == wanted) {
      route = static_cast<uint16_t>(i);
      return Result::found;
    }
    path_known = true;
  }
  if (!path_known) return Result::not_found;
  allow.clear();
  for (const Route& r : routes_) {
    std::array<std::string_view, 2> ignored;
    if (!match_pattern(r.pattern, path, ignored)) continue;
    if (!allow.empty()) allow.append(", ");
    allow.append(method_name(r.method));
    if (r.method == net::Method::get) allow.append(", HEAD");
  }
  return Result::method_not_allowed;
}

}  // namespace keygate::handlers
