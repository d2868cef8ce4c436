#include "handlers/query.hpp"

#include <charconv>
#include <cstdint>
#include <string>

#include "core/hex.hpp"
#include "handlers/errors.hpp"

namespace keygate::handlers {

std::optional<std::string_view> query_param(std::string_view q, std::string_view name) noexcept {
  while (!q.empty()) {
    const size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name)
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

size_t percent_decode(std::string_view in, char* out, size_t cap) noexcept {
  size_t n = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (n == cap) return SIZE_MAX;
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return SIZE_MAX;
      const int hi = core::hex_value(in[i + 1]), lo = core::hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return SIZE_MAX;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    out[n++] = c;
  }
  return n;
}

bool read_page(Exchange& ex, core::IdKind kind, unsigned max_limit, Page& page) {
  if (auto v = query_param(ex.req.query, "limit")) {
    unsigned limit = 0;
    auto r = std::from_chars(v->data(), v->data() + v->size(), limit);
    if (r.ec != std::errc{} || r.ptr != v->data() + v->size() || limit < 1 || limit > max_limit) {
      write_error(ex, core::ErrorCode::invalid_field,
                  "'limit' must be a whole number from 1 to " + std::to_string(max_limit) + ".",
                  "limit");
      return false;
    }
    page.limit = limit;
  }
  auto cursor = query_param(ex.req.query, "cursor");
  const char* param = "cursor";
  if (!cursor) {
    cursor = query_param(ex.req.query, "after");
    param = "after";
  }
  if (cursor) {
    page.after = core::parse_id(kind, *cursor);
    if (!page.after) {
      write_error(ex, core::ErrorCode::invalid_field,
                  "'" + std::string(param) + "' must be an id from a previous page (" +
                      std::string(core::id_prefix(kind)) + "...).",
                  param);
      return false;
    }
  }
  return true;
}

}  // namespace keygate::handlers
