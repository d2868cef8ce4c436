#include "core/ids.hpp"

#include <openssl/rand.h>

#include <cstring>
#include <iterator>
#include <stdexcept>

namespace keygate::core {

namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int8_t decode_char(char c) noexcept {
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  switch (c) {
    case 'O':
      return 0;
    case 'I':
    case 'L':
      return 1;
    default:
      break;
  }
  for (int i = 0; i < 32; ++i)
    if (kAlphabet[i] == c) return static_cast<int8_t>(i);
  return -1;
}

}  // namespace

// Each prefix padded to eight bytes, so that format_id copies it with one fixed-size store.
struct Prefix {
  char text[8];
  uint8_t size;
};
constexpr Prefix kPrefixes[] = {{"org_", 4}, {"key_", 4},  {"cert_", 5},
                                {"req_", 4}, {"proj_", 5}, {"audit_", 6}};
static_assert(std::size(kPrefixes) == static_cast<size_t>(IdKind::audit_event) + 1);

std::string_view id_prefix(IdKind kind) noexcept {
  const Prefix& p = kPrefixes[static_cast<size_t>(kind)];
  return {p.text, p.size};
}

size_t format_id(IdKind kind, Id id, char* out) noexcept {
  // The prefix as one 8-byte store; the digits overwrite the padding after it.
  const Prefix& prefix = kPrefixes[static_cast<size_t>(kind)];
  std::memcpy(out, prefix.text, sizeof prefix.text);
  char* p = out + prefix.size;
  // 128 bits as 26 base32 digits, most significant first: digits 14-25 are the low 60 bits,
  // 2-13 the next 60, 1 the next 5 and 0 the top 3. Each group of 12 comes out of one
  // 64-bit word, which is a third of the work of shifting the 128-bit pair for every digit
  // (this runs three times per /v1/auth answer).
  const auto twelve = [](char* d, uint64_t v) {
    for (int i = 11; i >= 0; --i, v >>= 5) d[i] = kAlphabet[v & 31];
  };
  twelve(p + 14, id.lo);
  twelve(p + 2, (id.lo >> 60) | (id.hi << 4));
  p[1] = kAlphabet[(id.hi >> 56) & 31];
  p[0] = kAlphabet[id.hi >> 61];
  return prefix.size + kUlidChars;
}

std::string to_string(IdKind kind, Id id) {
  char buf[32];
  return std::string(buf, format_id(kind, id, buf));
}

std::optional<Id> parse_id(IdKind kind, std::string_view text) noexcept {
  std::string_view prefix = id_prefix(kind);
  if (text.size() != prefix.size() + kUlidChars || !text.starts_with(prefix)) return std::nullopt;
  text.remove_prefix(prefix.size());
  if (decode_char(text[0]) > 7) return std::nullopt;  // would overflow 128 bits
  Id id;
  for (char c : text) {
    int8_t v = decode_char(c);
    if (v < 0) return std::nullopt;
    id.hi = (id.hi << 5) | (id.lo >> 59);
    id.lo = (id.lo << 5) | static_cast<uint64_t>(v);
  }
  return id;
}

IdGenerator::IdGenerator() {
  if (RAND_bytes(reinterpret_cast<unsigned char*>(rng_), sizeof rng_) != 1)
    throw std::runtime_error("the system's random number generator failed");
  if (rng_[0] == 0 && rng_[1] == 0) rng_[0] = 1;
}

uint64_t IdGenerator::next_random() noexcept {
  // xorshift128+: ids need uniqueness, not secrecy (key values use the CSPRNG).
  uint64_t s1 = rng_[0];
  const uint64_t s0 = rng_[1];
  rng_[0] = s0;
  s1 ^= s1 << 23;
  rng_[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
  return rng_[1] + s0;
}

Id IdGenerator::next(uint64_t now_ms) noexcept {
  Id id;
  if (now_ms <= last_.millis()) {
    // Same (or an earlier) millisecond: increment the last id so that order holds.
    id = last_;
    if (++id.lo == 0) ++id.hi;
  } else {
    id.hi = (now_ms << 16) | (next_random() & 0xFFFF);
    id.lo = next_random();
  }
  last_ = id;
  return id;
}

}  // namespace keygate::core
