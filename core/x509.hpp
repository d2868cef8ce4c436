// Reading an uploaded certificate (docs/api.md §6): exactly one X.509 certificate in PEM,
// with its validity period and the SHA-256 of its DER encoding. Every refusal says which
// rule the upload broke.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace keygate::core {

inline constexpr size_t kMaxCertificateBytes = 64 * 1024;

struct ParsedCertificate {
  std::array<uint8_t, 32> fingerprint{};
  int64_t valid_at = 0;    // notBefore, Unix seconds
  int64_t expires_at = 0;  // notAfter
};

// false with `error` set (a sentence for the client) when the text is not one certificate.
bool parse_certificate_pem(std::string_view pem, ParsedCertificate& out, std::string& error);

// "ab12..." (64 hex digits, optionally with ':' between bytes, any case) -> 32 bytes.
bool parse_sha256_hex(std::string_view text, std::array<uint8_t, 32>& out) noexcept;

}  // namespace keygate::core
