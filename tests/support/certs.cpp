// Test helpers, not tests: certificates and keys for the tests (make_cert). They make no
// assertions of their own; when one cannot deliver what it promised it fails the running
// test through helper_failed (check.hpp), at its own line and with the reason. Their
// behaviour, failures included, is tested in certs_test.cpp.
#include "support/certs.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>
#include <source_location>
#include <string>

#include "support/check.hpp"

namespace keygate::testing {

namespace {

// A certificate the tests cannot rely on must fail them, not turn into an upload that
// fails for another reason: every OpenSSL step is checked.
// The failure names the line of the step that failed.
void check(bool ok, const char* step, std::source_location at = std::source_location::current()) {
  if (ok) return;
  char reason[256] = "no OpenSSL error queued";
  if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, reason, sizeof reason);
  ERR_clear_error();
  helper_failed(std::string("make_cert: ") + step + ": " + reason, at);
}

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, Free>;

Owned<BIO> memory_bio(const std::string& text) {
  Owned<BIO> b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  check(b != nullptr, "BIO_new_mem_buf");
  return b;
}

template <class Write>
std::string pem_of(Write write, const char* step) {
  Owned<BIO> b(BIO_new(BIO_s_mem()));
  check(b != nullptr, "BIO_new");
  check(write(b.get()) == 1, step);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

TestCert make_cert(const std::string& cn, long from_s, long to_s, const TestCert* issuer) {
  Owned<EVP_PKEY> key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EC key generation");
  Owned<X509> x(X509_new());
  check(x != nullptr, "X509_new");
  check(X509_set_version(x.get(), 2) == 1, "X509_set_version");
  static long serial = 1;
  check(ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++) == 1, "serial number");
  const time_t now = time(nullptr);
  check(ASN1_TIME_set(X509_getm_notBefore(x.get()), now + from_s) != nullptr, "notBefore");
  check(ASN1_TIME_set(X509_getm_notAfter(x.get()), now + to_s) != nullptr, "notAfter");
  check(X509_set_pubkey(x.get(), key.get()) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(x.get());
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                   0) == 1,
        "subject CN");
  Owned<X509> issuer_x;
  Owned<EVP_PKEY> issuer_key;
  if (issuer) {
    issuer_x.reset(PEM_read_bio_X509(memory_bio(issuer->pem).get(), nullptr, nullptr, nullptr));
    check(issuer_x != nullptr, "reading the issuer's certificate");
    issuer_key.reset(
        PEM_read_bio_PrivateKey(memory_bio(issuer->key_pem).get(), nullptr, nullptr, nullptr));
    check(issuer_key != nullptr, "reading the issuer's private key");
    check(X509_set_issuer_name(x.get(), X509_get_subject_name(issuer_x.get())) == 1, "issuer name");
  } else {
    check(X509_set_issuer_name(x.get(), name) == 1, "issuer name (self-signed)");
  }
  // A self-signed certificate is a CA (TLS tests sign server and client certificates with
  // one); a leaf names the loopback address, for the TLS tests' server certificate.
  auto extend = [&](int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer_x.get() : x.get(), x.get(), nullptr, nullptr, 0);
    Owned<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    check(ext != nullptr && X509_add_ext(x.get(), ext.get(), -1) == 1, "an X.509 extension");
  };
  if (issuer) {
    extend(NID_basic_constraints, "critical,CA:FALSE");
    extend(NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  } else {
    extend(NID_basic_constraints, "critical,CA:TRUE");
    extend(NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
  }
  check(X509_sign(x.get(), issuer ? issuer_key.get() : key.get(), EVP_sha256()) > 0, "X509_sign");

  TestCert out;
  out.not_before = static_cast<long>(now + from_s);
  out.not_after = static_cast<long>(now + to_s);
  out.pem = pem_of([&](BIO* b) { return PEM_write_bio_X509(b, x.get()); }, "PEM_write_bio_X509");
  out.key_pem = pem_of(
      [&](BIO* b) {
        return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
      },
      "PEM_write_bio_PrivateKey");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  check(X509_digest(x.get(), EVP_sha256(), md, &len) == 1 && len == 32, "X509_digest");
  static const char* hex = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    out.sha256_hex.push_back(hex[md[i] >> 4]);
    out.sha256_hex.push_back(hex[md[i] & 15]);
  }
  return out;
}

std::string pem_json(const std::string& pem) {
  std::string out;
  for (char c : pem) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return out;
}

std::string der_base64(const std::string& pem) {
  std::string out, line;
  for (const char c : pem) {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (line.rfind("-----", 0) != 0) out += line;
    line.clear();
  }
  return out;
}

}  // namespace keygate::testing
