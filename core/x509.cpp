#include "core/x509.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>

#include "core/hex.hpp"

namespace keygate::core {

namespace {

size_t count(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string_view::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

bool to_unix(const ASN1_TIME* t, int64_t& out) {
  tm parts{};
  if (!t || ASN1_TIME_to_tm(t, &parts) != 1) return false;
  out = static_cast<int64_t>(timegm(&parts));
  return true;
}

}  // namespace

bool parse_certificate_pem(std::string_view pem, ParsedCertificate& out, std::string& error) {
  if (pem.size() > kMaxCertificateBytes) {
    error = "The certificate is larger than 64 KiB: upload a single PEM certificate.";
    return false;
  }
  if (pem.find("PRIVATE KEY-----") != std::string_view::npos) {
    error =
        "The upload contains a private key: upload only the certificate, and keep the key secret.";
    return false;
  }
  const size_t begins = count(pem, "-----BEGIN ");
  const size_t certs = count(pem, "-----BEGIN CERTIFICATE-----");
  if (begins == 0) {
    error = "The certificate is not in PEM format: it must start with -----BEGIN CERTIFICATE-----.";
    return false;
  }
  if (certs == 0) {
    error = "The PEM does not hold a certificate (no -----BEGIN CERTIFICATE----- block).";
    return false;
  }
  if (certs > 1) {
    error = "The PEM holds " + std::to_string(certs) +
            " certificates (a chain): upload them one at a time.";
    return false;
  }
  if (begins > 1) {
    error = "The PEM holds other blocks besides the certificate: upload the certificate alone.";
    return false;
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> x509(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!x509) {
    error =
        "The certificate block could not be read as an X.509 certificate: check that it was copied "
        "whole.";
    return false;
  }
  if (!to_unix(X509_get0_notBefore(x509.get()), out.valid_at) ||
      !to_unix(X509_get0_notAfter(x509.get()), out.expires_at)) {
    error = "The certificate's validity period could not be read.";
    return false;
  }
  unsigned char* der = nullptr;
  const int len = i2d_X509(x509.get(), &der);
  if (len <= 0) {
    error = "The certificate could not be encoded as DER.";
    return false;
  }
  unsigned int md_len = 0;
  const bool ok = EVP_Digest(der, static_cast<size_t>(len), out.fingerprint.data(), &md_len,
                             EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  if (!ok) {
    error = "The certificate's fingerprint could not be computed.";
    return false;
  }
  return true;
}

bool parse_sha256_hex(std::string_view text, std::array<uint8_t, 32>& out) noexcept {
  size_t n = 0;
  for (size_t i = 0; i < text.size();) {
    if (text[i] == ':') {
      ++i;
      continue;
    }
    if (i + 1 >= text.size() || n == 32) return false;
    const int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[n++] = static_cast<uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return n == 32;
}

namespace {

bool base64_char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '=';
}

}  // namespace

bool forwarded_certificate_sha256(std::string_view text, std::array<uint8_t, 32>& out) noexcept {
  constexpr size_t kMax = 16 * 1024;
  if (text.empty() || text.size() > 3 * kMax) return false;
  // Percent-decoded, whitespace dropped.
  char plain[kMax];
  size_t n = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return false;
      const int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (n == kMax) return false;
    plain[n++] = c;
  }
  std::string_view body(plain, n);
  // The whitespace went above, so the markers read without their spaces.
  constexpr std::string_view kBegin = "-----BEGINCERTIFICATE-----";
  constexpr std::string_view kEnd = "-----ENDCERTIFICATE-----";
  if (const size_t b = body.find(kBegin); b != std::string_view::npos)
    body.remove_prefix(b + kBegin.size());
  if (const size_t e = body.find(kEnd); e != std::string_view::npos) body = body.substr(0, e);
  if (const size_t comma = body.find(','); comma != std::string_view::npos)
    body = body.substr(0, comma);
  if (body.empty() || body.size() % 4 != 0) return false;
  for (char c : body)
    if (!base64_char(c)) return false;
  unsigned char der[kMax];
  const int len = EVP_DecodeBlock(der, reinterpret_cast<const unsigned char*>(body.data()),
                                  static_cast<int>(body.size()));
  if (len <= 0) return false;
  // EVP_DecodeBlock counts the bytes the padding stands for.
  const size_t pad = (body.back() == '=') + (body.size() > 1 && body[body.size() - 2] == '=');
  const size_t decoded = static_cast<size_t>(len) - pad;
  // One DER SEQUENCE, as every certificate, hashed to its end: bytes after it are not the
  // certificate's (OpenSSL reads an upload the same way).
  if (decoded < 2 || der[0] != 0x30) return false;
  size_t header = 2, content = der[1];
  if (der[1] & 0x80) {
    const size_t n = der[1] & 0x7f;
    if (n == 0 || n > 4 || decoded < 2 + n) return false;
    content = 0;
    for (size_t i = 0; i < n; ++i) content = content << 8 | der[2 + i];
    header += n;
  }
  if (header + content > decoded) return false;
  SHA256(der, header + content, out.data());
  return true;
}

bool xfcc_sha256(std::string_view text, std::array<uint8_t, 32>& out) noexcept {
  text = text.substr(0, text.find(','));  // the first element: the client's certificate
  while (!text.empty()) {
    const size_t semi = text.find(';');
    std::string_view pair = text.substr(0, semi);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.size() > 5 && (pair.substr(0, 5) == "Hash=" || pair.substr(0, 5) == "hash="))
      return parse_sha256_hex(pair.substr(5), out);
    if (semi == std::string_view::npos) break;
    text.remove_prefix(semi + 1);
  }
  return false;
}

}  // namespace keygate::core
