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

// A client certificate as a TLS-terminating gateway forwards it, to the SHA-256 of its DER
// (computed here: a gateway's own fingerprint may be another hash, as nginx's SHA-1):
// PEM, percent-encoded or not, with or without its BEGIN/END lines (nginx's
// $ssl_client_escaped_cert, Traefik's passTLSClientCert, Caddy's certificate_pem), or bare
// base64 DER (Caddy's certificate_der_base64). A chain keeps its first certificate (Traefik
// separates them with ','). No allocation; false for anything else, or beyond 16 KiB.
bool forwarded_certificate_sha256(std::string_view text, std::array<uint8_t, 32>& out) noexcept;
// Envoy's x-forwarded-client-cert: the Hash= of its first element (the SHA-256 of the
// client certificate's DER, hex).
bool xfcc_sha256(std::string_view text, std::array<uint8_t, 32>& out) noexcept;

}  // namespace keygate::core
