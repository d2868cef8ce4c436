// API key values: "{pk|sk}_{live|test}_" + 32 base62 characters from the CSPRNG (190 bits)
// + 6 base62 characters of a CRC-32 over everything before them. The checksum lets a typo
// or a random string be rejected without touching the index.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keygate::core {

enum class KeyType : uint8_t { publishable = 0, secret = 1 };
enum class Environment : uint8_t { live = 0, test = 1 };

inline constexpr size_t kKeyRandomChars = 32;
inline constexpr size_t kKeyChecksumChars = 6;
inline constexpr size_t kKeyLength = 8 + kKeyRandomChars + kKeyChecksumChars;  // 46

std::string_view to_string(KeyType t) noexcept;
std::string_view to_string(Environment e) noexcept;
std::optional<KeyType> parse_key_type(std::string_view s) noexcept;
std::optional<Environment> parse_environment(std::string_view s) noexcept;

struct KeyShape {
  KeyType type;
  Environment environment;
};

// Hot path: shape and checksum only; no allocation.
std::optional<KeyShape> parse_key(std::string_view value) noexcept;
// A fresh key value from the CSPRNG. Throws if the CSPRNG fails.
std::string generate_key(KeyType type, Environment env);

uint32_t crc32(std::string_view data) noexcept;

using KeyHash = std::array<uint8_t, 32>;
// SHA-256 of the key value: all the server ever stores. Hot path; no allocation.
KeyHash hash_key(std::string_view value) noexcept;

// "sk_live_…abcd" for secret keys; the whole value for publishable ones.
std::string display_key(KeyType type, Environment env, std::string_view value);

}  // namespace keygate::core
