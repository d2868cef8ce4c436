#include "support/certs.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <stdexcept>

namespace keygate::testing {

namespace {

std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

TestCert make_cert(const std::string& cn, long from_s, long to_s, const TestCert* issuer) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (!key) throw std::runtime_error("EC key generation failed");
  X509* x = X509_new();
  X509_set_version(x, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  const time_t now = time(nullptr);
  ASN1_TIME_set(X509_getm_notBefore(x), now + from_s);
  ASN1_TIME_set(X509_getm_notAfter(x), now + to_s);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  EVP_PKEY* signer = key;
  X509* issuer_x = nullptr;
  if (issuer) {
    BIO* b = BIO_new_mem_buf(issuer->pem.data(), static_cast<int>(issuer->pem.size()));
    issuer_x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(issuer->key_pem.data(), static_cast<int>(issuer->key_pem.size()));
    signer = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    X509_set_issuer_name(x, X509_get_subject_name(issuer_x));
  } else {
    X509_set_issuer_name(x, name);
  }
  X509_sign(x, signer, EVP_sha256());
  TestCert out;
  out.not_before = static_cast<long>(now + from_s);
  out.not_after = static_cast<long>(now + to_s);
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  out.pem = bio_string(b);
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = bio_string(b);
  BIO_free(b);
  unsigned char md[32];
  unsigned int len = 0;
  X509_digest(x, EVP_sha256(), md, &len);
  static const char* hex = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    out.sha256_hex.push_back(hex[md[i] >> 4]);
    out.sha256_hex.push_back(hex[md[i] & 15]);
  }
  if (issuer) {
    EVP_PKEY_free(signer);
    X509_free(issuer_x);
  }
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace keygate::testing
