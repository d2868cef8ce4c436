// Byte-level helpers shared by the HTTP parser's two paths (net/http_parser.cpp, llhttp;
// net/http_fast_path.cpp, the strict path for plain GETs) and Request's header lookups
// (net/request.cpp): ASCII lowercasing of eight bytes at once, unaligned loads, trimming.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace keygate::net::bytes {

// The eight bytes of `w` with A-Z turned into a-z (SWAR: every byte at once). Bytes of 0x80
// and above are left as they are; the additions stay within each byte, so none carries.
inline uint64_t ascii_lower(uint64_t w) noexcept {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  const uint64_t low7 = w & ~kHigh;
  const uint64_t from_a = low7 + (0x80 - 'A') * kOnes;      // high bit: byte >= 'A'
  const uint64_t past_z = low7 + (0x80 - 'Z' - 1) * kOnes;  // high bit: byte > 'Z'
  const uint64_t upper = from_a & ~past_z & ~w & kHigh;     // high bit: 'A' <= byte <= 'Z'
  return w | (upper >> 2);                                  // 0x80 >> 2 is 0x20
}

template <typename Word>
inline uint64_t load(const char* p) noexcept {
  Word w;
  std::memcpy(&w, p, sizeof w);  // a fixed size: one unaligned load, not a call
  return w;
}

// `v` without the blanks (spaces, tabs) at its end: a header value's optional whitespace.
inline std::string_view trim_right(std::string_view v) noexcept {
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace keygate::net::bytes
