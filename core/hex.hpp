// The value of one hexadecimal digit, or -1. Shared by the parsers of percent-encoding and
// of certificate fingerprints.
#pragma once

namespace keygate::core {

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace keygate::core
