// Query strings and pagination parameters (docs/api.md §1, "Pagination").
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "core/ids.hpp"
#include "handlers/exchange.hpp"

namespace keygate::handlers {

// The raw (still percent-encoded) value of the first `name=` parameter; nullopt if absent.
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) noexcept;
// Percent-decodes `in` into `out` (capacity `cap`); returns the length, or SIZE_MAX when
// it does not fit or is malformed. No allocation.
size_t percent_decode(std::string_view in, char* out, size_t cap) noexcept;

// The records one list request may look at, whatever its filters (docs/api.md §1.5): a
// filter that matches rarely gives a short (even empty) page whose cursor continues where
// the walk stopped, instead of a walk of the whole organization.
inline constexpr size_t kMaxListScan = 10'000;

struct Page {
  unsigned limit = 20;
  std::optional<core::Id> after;
};

// Reads `limit` (1..max, default 20) and `cursor` or `after` (an id of `kind`). Writes the
// 400 and returns false when either is malformed.
bool read_page(Exchange& ex, core::IdKind kind, unsigned max_limit, Page& page);

}  // namespace keygate::handlers
