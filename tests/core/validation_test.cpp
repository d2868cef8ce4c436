#include "core/validation.hpp"

#include <gtest/gtest.h>

using namespace keygate::core;

TEST(Validation, SlugIsDerivedFromTheName) {
  EXPECT_EQ(derive_slug("Acme Corp"), "acme-corp");
  EXPECT_EQ(derive_slug("  Tripwire -- Production!! "), "tripwire-production");
  EXPECT_EQ(derive_slug("Café 42"), "caf-42");
  EXPECT_EQ(derive_slug("!!!"), "");
  EXPECT_EQ(derive_slug(std::string(100, 'a')).size(), 64u);
}

TEST(Validation, SlugRules) {
  EXPECT_TRUE(valid_slug("acme-corp-2"));
  EXPECT_FALSE(valid_slug("Acme"));
  EXPECT_FALSE(valid_slug(""));
  EXPECT_FALSE(valid_slug(std::string(65, 'a')));
  EXPECT_FALSE(valid_slug("a_b"));
}

TEST(Validation, NameIsOneTo200CharactersAndNotBlank) {
  EXPECT_TRUE(valid_name("A"));
  EXPECT_TRUE(valid_name(std::string(200, 'x')));
  EXPECT_FALSE(valid_name(std::string(201, 'x')));
  EXPECT_FALSE(valid_name(""));
  EXPECT_FALSE(valid_name("   "));
  std::string accents;
  for (int i = 0; i < 200; ++i) accents += "\xC3\xA9";  // 200 characters, 400 bytes
  EXPECT_TRUE(valid_name(accents));
}

TEST(Validation, OriginPatterns) {
  EXPECT_TRUE(valid_origin_pattern("https://app.example.com"));
  EXPECT_TRUE(valid_origin_pattern("http://localhost:3000"));
  EXPECT_TRUE(valid_origin_pattern("https://*.example.com"));
  EXPECT_FALSE(valid_origin_pattern("https://app.example.com/path"));
  EXPECT_FALSE(valid_origin_pattern("ftp://example.com"));
  EXPECT_FALSE(valid_origin_pattern("https://a.*.example.com"));
  EXPECT_FALSE(valid_origin_pattern("*"));
  EXPECT_FALSE(valid_origin_pattern("https://App.example.com"));
  EXPECT_FALSE(valid_origin_pattern("https://example.com:port"));
}

TEST(Validation, WildcardMatchesExactlyOneLabel) {
  EXPECT_TRUE(origin_matches("https://app.example.com", "https://app.example.com"));
  EXPECT_TRUE(origin_matches("https://*.example.com", "https://app.example.com"));
  EXPECT_FALSE(origin_matches("https://*.example.com", "https://example.com"));
  EXPECT_FALSE(origin_matches("https://*.example.com", "https://a.b.example.com"));
  EXPECT_FALSE(origin_matches("https://*.example.com", "http://app.example.com"));
  EXPECT_FALSE(origin_matches("https://*.example.com", "https://app.example.com:8443"));
  EXPECT_FALSE(origin_matches("https://*.example.com", "https://appexample.com"));
  EXPECT_FALSE(origin_matches("https://app.example.com", "https://evil.com"));
}
