// Fuzz target: certificate uploads. parse_certificate_pem() takes whatever a tenant sends
// as `certificate`: it must accept exactly one X.509 certificate in PEM or refuse with a
// reason, never crash, leak or read out of bounds; what it accepts has a fingerprint and a
// validity window it could read.
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
  return 0;
}
