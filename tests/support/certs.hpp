// Certificates made in the tests with OpenSSL: self-signed CAs, leaves signed by them,
// chosen validity periods, and the private keys that must never be accepted as uploads.
#pragma once

#include <string>

namespace keygate::testing {

struct TestCert {
  std::string pem;
  std::string key_pem;
  std::string sha256_hex;  // of the DER
  long not_before = 0;     // Unix seconds
  long not_after = 0;
};

// A certificate valid from now + `from_s` to now + `to_s` (negative: in the past); signed
// by `issuer` when given (a leaf), else self-signed (a CA).
TestCert make_cert(const std::string& common_name, long from_s = -3600, long to_s = 86400 * 365,
                   const TestCert* issuer = nullptr);

// The PEM with its newlines escaped, to stand inside a JSON string.
std::string pem_json(const std::string& pem);
// The PEM's body without its lines: base64 of the DER, as a gateway may forward it.
std::string der_base64(const std::string& pem);

}  // namespace keygate::testing
