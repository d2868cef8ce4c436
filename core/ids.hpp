// Id: a prefixed ULID ("org_", "key_", "cert_", "req_" + 26 Crockford base32 characters):
// 48 bits of Unix milliseconds then 80 random bits, so that ids sort by creation time.
// IdGenerator is monotonic within a millisecond and is not thread-safe: one per thread.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keygate::core {

enum class IdKind : uint8_t { organization, api_key, certificate, request, project, audit_event };

std::string_view id_prefix(IdKind kind) noexcept;

struct Id {
  uint64_t hi = 0;  // 48-bit time << 16 | top 16 random bits
  uint64_t lo = 0;  // low 64 random bits
  auto operator<=>(const Id&) const = default;
  bool empty() const noexcept { return hi == 0 && lo == 0; }
  uint64_t millis() const noexcept { return hi >> 16; }
};

inline constexpr size_t kUlidChars = 26;

// Writes prefix + 26 characters into `out` (room for at least 32 bytes); returns the length.
size_t format_id(IdKind kind, Id id, char* out) noexcept;
std::string to_string(IdKind kind, Id id);
// Parses "<prefix>_<26 chars>" of the given kind (case-insensitive Crockford); nullopt otherwise.
std::optional<Id> parse_id(IdKind kind, std::string_view text) noexcept;

class IdGenerator {
 public:
  IdGenerator();
  Id next(uint64_t now_ms) noexcept;
  // Never hand out an id at or below one that exists (the clock may have gone back).
  void observe(Id id) noexcept {
    if (last_ < id) last_ = id;
  }

 private:
  uint64_t rng_[2];
  Id last_{};
  uint64_t next_random() noexcept;
};

struct IdHash {
  size_t operator()(const Id& id) const noexcept { return id.lo ^ (id.hi * 0x9E3779B97F4A7C15ull); }
};

}  // namespace keygate::core
