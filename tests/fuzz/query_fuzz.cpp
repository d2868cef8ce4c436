// Fuzz target: query strings as the handlers read them (`limit`, `after`, `cursor`,
// `order`, `include[]`, `scopes`, filters): query_param() finds a parameter, and
// percent_decode() decodes it into a bounded buffer (or says it cannot). Never a crash, never a
// write past the buffer (ASan), and a decoded value is never longer than the raw one.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "handlers/query.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view query(reinterpret_cast<const char*>(data), size);
  static constexpr std::string_view kNames[] = {"limit",     "after",      "cursor", "order",
                                                "include[]", "include",    "scopes", "status",
                                                "type",      "environment"};
  for (std::string_view name : kNames) {
    const auto value = keygate::handlers::query_param(query, name);
    if (!value) continue;
    char out[256];
    const size_t n = keygate::handlers::percent_decode(*value, out, sizeof out);
    if (n == SIZE_MAX) continue;  // malformed or too long: the handler answers 400
    if (n > value->size() || n > sizeof out) std::abort();
  }
  return 0;
}
