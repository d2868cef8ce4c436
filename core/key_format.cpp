// The low-level SHA256_* calls are deprecated in OpenSSL 3 in favour of EVP, but EVP's
// one-shot digest fetches and allocates a context per call; the low-level functions use the
// same SHA-NI/AVX2 code, on the stack. The hot path needs the latter.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "core/key_format.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace keygate::core {

namespace {

constexpr char kBase62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

// A table rather than three range tests: every verification checks 38 characters.
constexpr std::array<bool, 256> kIsBase62 = [] {
  std::array<bool, 256> t{};
  for (char c : std::string_view(kBase62, 62)) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool is_base62(char c) noexcept {
  return kIsBase62[static_cast<unsigned char>(c)];
}

void encode_checksum(uint32_t crc, char* out) noexcept {
  for (int i = kKeyChecksumChars - 1; i >= 0; --i) {
    out[i] = kBase62[crc % 62];
    crc /= 62;
  }
}

}  // namespace

std::string_view to_string(KeyType t) noexcept {
  return t == KeyType::secret ? "secret" : "publishable";
}
std::string_view to_string(Environment e) noexcept {
  return e == Environment::live ? "live" : "test";
}

std::optional<KeyType> parse_key_type(std::string_view s) noexcept {
  if (s == "secret") return KeyType::secret;
  if (s == "publishable") return KeyType::publishable;
  return std::nullopt;
}

std::optional<Environment> parse_environment(std::string_view s) noexcept {
  if (s == "live") return Environment::live;
  if (s == "test") return Environment::test;
  return std::nullopt;
}

uint32_t crc32(std::string_view data) noexcept {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = kCrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::optional<KeyShape> parse_key(std::string_view v) noexcept {
  if (v.size() != kKeyLength || v[2] != '_' || v[7] != '_') return std::nullopt;
  KeyShape shape;
  if (v[0] == 's' && v[1] == 'k')
    shape.type = KeyType::secret;
  else if (v[0] == 'p' && v[1] == 'k')
    shape.type = KeyType::publishable;
  else
    return std::nullopt;
  std::string_view env = v.substr(3, 4);
  if (env == "live")
    shape.environment = Environment::live;
  else if (env == "test")
    shape.environment = Environment::test;
  else
    return std::nullopt;
  for (size_t i = 8; i < kKeyLength; ++i)
    if (!is_base62(v[i])) return std::nullopt;
  char expect[kKeyChecksumChars];
  encode_checksum(crc32(v.substr(0, kKeyLength - kKeyChecksumChars)), expect);
  if (v.substr(kKeyLength - kKeyChecksumChars) != std::string_view(expect, kKeyChecksumChars))
    return std::nullopt;
  return shape;
}

namespace {

// The CSPRNG's output for key values, drawn 4 KiB at a time (64 keys): every RAND_bytes
// call makes getpid() system calls (OpenSSL's fork check), a microsecond each on a virtual
// machine, which a key creation through a cluster's committer paid twice (perf/RESULTS.md).
// Bytes are wiped as they are handed out, so the buffer holds only future keys' randomness;
// a child of fork() wipes its copy, so that it never repeats its parent's keys.
struct RandomPool {
  unsigned char bytes[4096];
  size_t used = sizeof bytes;  // empty

  void take(unsigned char* out, size_t n) {
    while (n) {
      if (used == sizeof bytes) {
        if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("the CSPRNG failed");
        used = 0;
      }
      const size_t k = std::min(n, sizeof bytes - used);
      std::memcpy(out, bytes + used, k);
      OPENSSL_cleanse(bytes + used, k);
      used += k, out += k, n -= k;
    }
  }
  void wipe() noexcept {
    OPENSSL_cleanse(bytes, sizeof bytes);
    used = sizeof bytes;
  }
  ~RandomPool() { wipe(); }
};

thread_local RandomPool t_random;

void random_bytes(unsigned char* out, size_t n) {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, [] { t_random.wipe(); }); });
  t_random.take(out, n);
}

}  // namespace

std::string generate_key(KeyType type, Environment env) {
  std::string v;
  v.reserve(kKeyLength);
  v.append(type == KeyType::secret ? "sk_" : "pk_").append(to_string(env)).append("_");
  unsigned char bytes[64];
  while (v.size() < 8 + kKeyRandomChars) {
    random_bytes(bytes, sizeof bytes);
    for (unsigned char b : bytes) {
      // Rejection sampling keeps every character uniform: 248 = 4 * 62.
      if (b < 248 && v.size() < 8 + kKeyRandomChars) v.push_back(kBase62[b % 62]);
    }
  }
  OPENSSL_cleanse(bytes, sizeof bytes);
  char sum[kKeyChecksumChars];
  encode_checksum(crc32(v), sum);
  v.append(sum, kKeyChecksumChars);
  return v;
}

KeyHash hash_key(std::string_view value) noexcept {
  KeyHash h;
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, value.data(), value.size());
  SHA256_Final(h.data(), &ctx);
  return h;
}

std::string display_key(KeyType type, Environment env, std::string_view value) {
  if (type == KeyType::publishable) return std::string(value);
  std::string d = "sk_";
  d.append(to_string(env)).append("_\u2026").append(value.substr(value.size() - 4));
  return d;
}

}  // namespace keygate::core
