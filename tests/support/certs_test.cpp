// The certificate fixtures are what the tests that use them claim: a leaf is really signed
// by its CA, a CA by itself, and the validity and fingerprint match the certificate.
#include "support/certs.hpp"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

using keygate::testing::make_cert;
using keygate::testing::TestCert;

namespace {

struct Free {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

std::unique_ptr<X509, Free> read_cert(const TestCert& c) {
  BIO* b = BIO_new_mem_buf(c.pem.data(), static_cast<int>(c.pem.size()));
  std::unique_ptr<X509, Free> x(PEM_read_bio_X509(b, nullptr, nullptr, nullptr));
  BIO_free(b);
  return x;
}

bool signed_by(X509* x, X509* issuer) {
  std::unique_ptr<EVP_PKEY, Free> key(X509_get_pubkey(issuer));
  return key && X509_verify(x, key.get()) == 1;
}

}  // namespace

TEST(TestCerts, ALeafIsSignedByItsCaAndACaByItself) {
  const TestCert ca = make_cert("Test CA");
  const TestCert leaf = make_cert("leaf.example", -60, 3600, &ca);
  const TestCert other = make_cert("Other CA");
  auto ca_x = read_cert(ca), leaf_x = read_cert(leaf), other_x = read_cert(other);
  ASSERT_TRUE(ca_x && leaf_x && other_x);
  EXPECT_TRUE(signed_by(ca_x.get(), ca_x.get()));
  EXPECT_TRUE(signed_by(leaf_x.get(), ca_x.get()));
  EXPECT_FALSE(signed_by(leaf_x.get(), other_x.get()));
  EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(leaf_x.get()), X509_get_subject_name(ca_x.get())),
            0);
  EXPECT_NE(leaf.sha256_hex, ca.sha256_hex);
}

TEST(TestCerts, ValidityAndFingerprintDescribeTheCertificate) {
  const TestCert c = make_cert("expired", -7200, -3600);
  auto x = read_cert(c);
  ASSERT_TRUE(x);
  EXPECT_EQ(c.not_after - c.not_before, 3600);
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x.get()), X509_get0_notAfter(x.get())),
            1);
  EXPECT_EQ(days * 86400 + secs, 3600);
  EXPECT_LT(X509_cmp_current_time(X509_get0_notAfter(x.get())), 0) << "in the past";
  unsigned char md[32];
  unsigned int len = 0;
  ASSERT_EQ(X509_digest(x.get(), EVP_sha256(), md, &len), 1);
  ASSERT_EQ(c.sha256_hex.size(), 64u);
  char hex[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", md[i]);
    EXPECT_EQ(c.sha256_hex.substr(2 * i, 2), hex) << i;
  }
  EXPECT_NE(c.key_pem.find("PRIVATE KEY"), std::string::npos);
}

// A fixture that cannot be made fails the test that asked for it, naming the step, and
// stops it: it does not hand back a certificate that is not one.
TEST(TestCerts, AnIssuerThatIsNotOneFailsTheTestNamingTheStep) {
  TestCert broken = make_cert("Test CA");
  broken.key_pem = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
  bool threw = false;
  EXPECT_NONFATAL_FAILURE(
      {
        try {
          make_cert("leaf.example", 0, 3600, &broken);
        } catch (const std::runtime_error&) {
          threw = true;
        }
      },
      "make_cert: reading the issuer's private key");
  EXPECT_TRUE(threw) << "the caller must not go on with no certificate";

  // Reported at the line of the step in certs.cpp, not in the shared check.
  ::testing::TestPartResultArray failures;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    try {
      make_cert("leaf.example", 0, 3600, &broken);
    } catch (const std::runtime_error&) {
    }
  }
  ASSERT_EQ(failures.size(), 1);
  ASSERT_NE(failures.GetTestPartResult(0).file_name(), nullptr);
  EXPECT_TRUE(std::string(failures.GetTestPartResult(0).file_name()).ends_with("support/certs.cpp"))
      << failures.GetTestPartResult(0).file_name();
}
