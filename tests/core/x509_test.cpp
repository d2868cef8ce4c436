#include "core/x509.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <vector>

#include "support/certs.hpp"

using namespace keygate;
using keygate::testing::make_cert;

TEST(X509, OneCertificateIsReadWithItsPeriodAndFingerprint) {
  auto c = make_cert("leaf", -100, 1000);
  core::ParsedCertificate p;
  std::string err;
  ASSERT_TRUE(core::parse_certificate_pem(c.pem, p, err)) << err;
  EXPECT_EQ(p.valid_at, c.not_before);
  EXPECT_EQ(p.expires_at, c.not_after);
  std::array<uint8_t, 32> expected;
  ASSERT_TRUE(core::parse_sha256_hex(c.sha256_hex, expected));
  EXPECT_EQ(p.fingerprint, expected);
}

TEST(X509, EveryRefusalSaysWhy) {
  auto ca = make_cert("ca");
  auto leaf = make_cert("leaf", -100, 1000, &ca);
  core::ParsedCertificate p;
  std::string err;
  EXPECT_FALSE(core::parse_certificate_pem("hello", p, err));
  EXPECT_NE(err.find("not in PEM"), std::string::npos);
  EXPECT_FALSE(core::parse_certificate_pem(leaf.pem + ca.pem, p, err));
  EXPECT_NE(err.find("chain"), std::string::npos);
  EXPECT_FALSE(core::parse_certificate_pem(leaf.pem + leaf.key_pem, p, err));
  EXPECT_NE(err.find("private key"), std::string::npos);
  EXPECT_FALSE(core::parse_certificate_pem(leaf.key_pem, p, err));
  EXPECT_NE(err.find("private key"), std::string::npos);
  EXPECT_FALSE(core::parse_certificate_pem(
      "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", p, err));
  EXPECT_NE(err.find("does not hold a certificate"), std::string::npos);
  EXPECT_FALSE(core::parse_certificate_pem(
      "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", p, err));
  EXPECT_NE(err.find("could not be read"), std::string::npos);
  EXPECT_FALSE(core::parse_certificate_pem(std::string(70 * 1024, 'a'), p, err));
  EXPECT_NE(err.find("64 KiB"), std::string::npos);
}

TEST(X509, FingerprintHexAcceptsColonsAndAnyCase) {
  std::array<uint8_t, 32> a, b;
  const std::string hex(64, 'a');
  ASSERT_TRUE(core::parse_sha256_hex(hex, a));
  std::string colons;
  for (int i = 0; i < 32; ++i) colons += std::string(i ? ":" : "") + "AA";
  ASSERT_TRUE(core::parse_sha256_hex(colons, b));
  EXPECT_EQ(a, b);
  EXPECT_FALSE(core::parse_sha256_hex(hex.substr(2), a));
  EXPECT_FALSE(core::parse_sha256_hex(hex + "aa", a));
  EXPECT_FALSE(core::parse_sha256_hex(std::string(64, 'g'), a));
}

// What a TLS-terminating gateway forwards, in each encoding it uses, hashes to the uploaded
// certificate's fingerprint; anything else is no certificate (docs/api.md §6).
TEST(X509, AForwardedCertificateHashesToItsFingerprintInEveryEncoding) {
  const auto c = make_cert("forwarded");
  std::array<uint8_t, 32> expected, got;
  ASSERT_TRUE(core::parse_sha256_hex(c.sha256_hex, expected));
  std::string escaped;
  for (unsigned char ch : c.pem) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%%%02X", ch);
    escaped += std::isalnum(ch) ? std::string(1, static_cast<char>(ch)) : std::string(buf);
  }
  const std::string der = keygate::testing::der_base64(c.pem);
  for (const std::string& form : {c.pem, escaped, der, der + "," + der}) {
    got.fill(0);
    EXPECT_TRUE(core::forwarded_certificate_sha256(form, got)) << form.substr(0, 40);
    EXPECT_EQ(got, expected) << form.substr(0, 40);
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "not a certificate", "%zz", "AAAA", std::string(70000, 'A')})
    EXPECT_FALSE(core::forwarded_certificate_sha256(bad, got)) << bad.substr(0, 20);
  // Envoy's x-forwarded-client-cert: the first element's Hash=.
  EXPECT_TRUE(core::xfcc_sha256("By=spiffe://a;Hash=" + c.sha256_hex + ";Subject=\"CN=x\"", got));
  EXPECT_EQ(got, expected);
  EXPECT_FALSE(core::xfcc_sha256("By=spiffe://a;Subject=\"CN=x\"", got));
  EXPECT_FALSE(core::xfcc_sha256("By=a,Hash=" + c.sha256_hex, got)) << "another element's";
}
