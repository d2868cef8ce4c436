// Fuzz target: certificate uploads and forwarded certificates. parse_certificate_pem()
// takes whatever a tenant sends as `certificate`: it must accept exactly one X.509
// certificate in PEM or refuse with a reason, never crash, leak or read out of bounds; what
// it accepts has a fingerprint and a validity window it could read. The readers of what a
// gateway forwards (a certificate in any of its encodings, Envoy's XFCC) see the same
// bytes: with --trust-forwarded-client-cert they read a client-reachable header.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/x509.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view pem(reinterpret_cast<const char*>(data), size);
  keygate::core::ParsedCertificate parsed;
  std::string error;
  if (keygate::core::parse_certificate_pem(pem, parsed, error)) {
    if (!error.empty()) std::abort();
  } else if (error.empty()) {
    std::abort();  // a refusal must say why
  }
  std::array<uint8_t, 32> digest;
  (void)keygate::core::parse_sha256_hex(pem, digest);  // X-Client-Cert-Sha256's reader
  (void)keygate::core::forwarded_certificate_sha256(pem, digest);
  (void)keygate::core::xfcc_sha256(pem, digest);
  return 0;
}
