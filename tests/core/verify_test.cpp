#include "core/verify.hpp"

#include <gtest/gtest.h>

#include "core/state_machine.hpp"

using namespace keygate::core;

class VerifyTest : public ::testing::Test {
 protected:
  RcuThread rcu;
  Index index;
  StateMachine sm{index};
  RateDefaults limits{{0, 0}, {0, 0}};
  uint64_t now = 1'800'000'000'000;
  Id org;
  std::string secret, publishable;
  Id secret_id;

  void SetUp() override {
    Outcome o = run(CreateOrganization{"A", "a"});
    org = o.org->id;
    CreateApiKey s{org, "s"};
    s.scopes = bit(Scope::api_keys_read) | bit(Scope::sessions_list);
    Outcome so = run(s);
    secret = so.revealed_key;
    secret_id = so.key->id;
    CreateApiKey p{org, "p", KeyType::publishable};
    p.allowed_origins = {"https://*.example.com"};
    publishable = run(p).revealed_key;
  }
  Outcome run(Command c) {
    Outcome o = sm.execute(c, now);
    sm.publish();
    return o;
  }
  VerifyResult check(VerifyRequest r, uint64_t at = 0) {
    ReadSection rs;
    return verify(index, r, limits, at ? at : now, 1'000'000'000);
  }
};

TEST_F(VerifyTest, AValidKeyReportsItsIdentity) {
  VerifyResult r = check({secret, bit(Scope::api_keys_read)});
  EXPECT_EQ(r.code, VerifyCode::valid);
  EXPECT_EQ(r.key_id, secret_id);
  EXPECT_EQ(r.organization_id, org);
  EXPECT_EQ(r.type, KeyType::secret);
}

TEST_F(VerifyTest, MalformedBeforeLookup) {
  std::string typo = secret;
  typo[12] = typo[12] == 'x' ? 'y' : 'x';
  EXPECT_EQ(check({typo}).code, VerifyCode::malformed);
  EXPECT_EQ(check({""}).code, VerifyCode::malformed);
  EXPECT_FALSE(check({typo}).found);
}

TEST_F(VerifyTest, UnknownKeyIsNotFound) {
  EXPECT_EQ(check({generate_key(KeyType::secret, Environment::live)}).code, VerifyCode::not_found);
}

TEST_F(VerifyTest, ATenantVerifierCannotSeeAnotherOrganizationsKeys) {
  Outcome other = run(CreateOrganization{"B", "b"});
  VerifyRequest r{secret};
  r.organization = other.org->id;
  VerifyResult res = check(r);
  EXPECT_EQ(res.code, VerifyCode::not_found);
  EXPECT_FALSE(res.found);
}

TEST_F(VerifyTest, RevokedComesBeforeExpiredAndSuspended) {
  CreateApiKey c{org, "x"};
  c.expires_ms = now + 10;
  Outcome k = run(c);
  run(RevokeApiKey{org, k.key->id});
  run(UpdateOrganization{org, {}, {}, OrgStatus::suspended});
  EXPECT_EQ(check({k.revealed_key}, now + 20).code, VerifyCode::revoked);
}

TEST_F(VerifyTest, ExpiredAndPastGraceAreExpired) {
  CreateApiKey c{org, "x"};
  c.expires_ms = now + 10;
  Outcome k = run(c);
  EXPECT_EQ(check({k.revealed_key}, now + 5).code, VerifyCode::valid);
  EXPECT_EQ(check({k.revealed_key}, now + 10).code, VerifyCode::expired);
  run(RotateApiKey{org, secret_id, 30});
  EXPECT_EQ(check({secret}, now + 29'999).code, VerifyCode::valid);  // the grace period
  EXPECT_EQ(check({secret}, now + 30'000).code, VerifyCode::expired);
}

TEST_F(VerifyTest, SuspendedOrganizationComesBeforeOriginAndScopes) {
  run(UpdateOrganization{org, {}, {}, OrgStatus::suspended});
  EXPECT_EQ(check({publishable, 0, false, "https://evil.com"}).code,
            VerifyCode::organization_suspended);
  EXPECT_EQ(check({secret, bit(Scope::certificates_manage)}).code,
            VerifyCode::organization_suspended);
}

TEST_F(VerifyTest, PublishableKeysNeedAnAllowedOrigin) {
  EXPECT_EQ(check({publishable, 0, false, "https://app.example.com"}).code, VerifyCode::valid);
  EXPECT_EQ(check({publishable, 0, false, "https://evil.com"}).code,
            VerifyCode::origin_not_allowed);
  EXPECT_EQ(check({publishable}).code, VerifyCode::origin_not_allowed);
}

TEST_F(VerifyTest, OriginComesBeforeScopesAndScopesAskedOfPublishableKeysFail) {
  EXPECT_EQ(check({publishable, bit(Scope::api_keys_read), false, "https://evil.com"}).code,
            VerifyCode::origin_not_allowed);
  EXPECT_EQ(check({publishable, bit(Scope::api_keys_read), false, "https://a.example.com"}).code,
            VerifyCode::insufficient_scope);
}

TEST_F(VerifyTest, MissingOrUnknownScopesAreInsufficient) {
  EXPECT_EQ(check({secret, bit(Scope::api_keys_manage)}).code, VerifyCode::insufficient_scope);
  EXPECT_EQ(check({secret, 0, true}).code, VerifyCode::insufficient_scope);
  EXPECT_EQ(check({secret, bit(Scope::api_keys_read) | bit(Scope::sessions_list)}).code,
            VerifyCode::valid);
}

TEST_F(VerifyTest, RateLimitComesLastAndOnlyCountsOtherwiseValidRequests) {
  limits.secret = {1, 2};
  EXPECT_EQ(check({secret, bit(Scope::api_keys_manage)}).code,
            VerifyCode::insufficient_scope);  // not counted
  EXPECT_EQ(check({secret}).code, VerifyCode::valid);
  EXPECT_EQ(check({secret}).code, VerifyCode::valid);
  VerifyResult r = check({secret});
  EXPECT_EQ(r.code, VerifyCode::rate_limited);
  EXPECT_GE(r.rate.retry_after_s, 1u);
}

TEST_F(VerifyTest, ARootSetLimitOverridesTheDefault) {
  limits.secret = {1, 1};
  CreateApiKey c{org, "big"};
  c.rate_limit = RateLimit{1000, 100};
  Outcome k = run(c);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(check({k.revealed_key}).code, VerifyCode::valid);
}

// PROJECT_ARCHIVED comes after ORGANIZATION_SUSPENDED and before the origin and scopes; a
// key in an active project is valid and reports the project.
TEST_F(VerifyTest, AnArchivedProjectStopsItsKeysAfterTheOrganizationCheck) {
  const Id project = run(CreateProject{org, "p"}).project->id;
  CreateApiKey s{org, "in project"};
  s.scopes = bit(Scope::api_keys_read);
  s.project = project;
  const std::string in_project = run(s).revealed_key;
  CreateApiKey p{org, "publishable in project", KeyType::publishable};
  p.allowed_origins = {"https://*.example.com"};
  p.project = project;
  const std::string publishable_in_project = run(p).revealed_key;

  VerifyResult ok = check({in_project, bit(Scope::api_keys_read)});
  EXPECT_EQ(ok.code, VerifyCode::valid);
  EXPECT_EQ(ok.project_id, project);
  EXPECT_TRUE(check({secret}).project_id.empty()) << "a key in no project has none";

  run(ArchiveProject{org, project});
  EXPECT_EQ(check({in_project, bit(Scope::certificates_manage)}).code, VerifyCode::project_archived)
      << "before the scopes";
  EXPECT_EQ(check({publishable_in_project, 0, false, "https://evil.com"}).code,
            VerifyCode::project_archived)
      << "before the origin";
  EXPECT_EQ(check({secret, bit(Scope::api_keys_read)}).code, VerifyCode::valid)
      << "keys outside the project are untouched";
  run(UpdateOrganization{org, {}, {}, OrgStatus::suspended});
  EXPECT_EQ(check({in_project}).code, VerifyCode::organization_suspended)
      << "the organization comes first";
}
