#include "core/scopes.hpp"

#include <gtest/gtest.h>

using namespace keygate::core;

TEST(Scopes, EverySpecScopeParsesAndNamesRoundTrip) {
  const char* names[] = {"sessions:list",
                         "sessions:read",
                         "fingerprints:list",
                         "fingerprints:read",
                         "organizations:create",
                         "organizations:read",
                         "organizations:update",
                         "api_keys:read",
                         "api_keys:manage",
                         "gate:agent_tokens:verify",
                         "gate:agent_tokens:revoke",
                         "gate:login_sessions:consume",
                         "gate:services:read",
                         "gate:services:manage",
                         "api_keys:verify",
                         "certificates:read",
                         "certificates:manage"};
  ScopeSet all = 0;
  for (const char* n : names) {
    Scope s;
    ASSERT_EQ(parse_scope(n, s), ScopeParse::ok) << n;
    EXPECT_EQ(scope_name(s), n);
    all |= bit(s);
  }
  EXPECT_EQ(all, kAllScopes);
}

TEST(Scopes, RemovedAndUnknownScopesAreToldApart) {
  Scope s;
  EXPECT_EQ(parse_scope("organizations:manage", s), ScopeParse::removed);
  EXPECT_EQ(parse_scope("admin", s), ScopeParse::unknown);
  EXPECT_EQ(parse_scope("", s), ScopeParse::unknown);
  EXPECT_FALSE(kAllScopes & kLegacyScope);
}

TEST(Scopes, AListAddsEveryKnownNameAndFlagsTheRest) {
  ScopeSet set = 0;
  bool unknown = false;
  parse_scope_list(" api_keys:read ,,certificates:manage", set, unknown);
  EXPECT_EQ(set, bit(Scope::api_keys_read) | bit(Scope::certificates_manage));
  EXPECT_FALSE(unknown);
  parse_scope_list("api_keys:read,nope", set, unknown);
  EXPECT_TRUE(unknown);
  unknown = false;
  parse_scope_list("organizations:manage", set, unknown);  // removed: not granted
  EXPECT_TRUE(unknown);
  EXPECT_EQ(set, bit(Scope::api_keys_read) | bit(Scope::certificates_manage));
}
