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

// The binding (docs/api.md §6): a key's bound set is the organization's active
// certificates plus, for a key in a project, the project's; every branch.
TEST_F(VerifyTest, TheCertificateBindingOfOrganizationAndProjectKeys) {
  auto cert = [&](uint8_t tag) {
    CreateCertificate c{org, std::nullopt, "pem", {}, 0, 4'102'444'800};  // valid until 2100
    c.fingerprint.fill(tag);
    return run(c).certificates.at(0).id;
  };
  auto fp = [](uint8_t tag) {
    std::array<uint8_t, 32> f;
    f.fill(tag);
    return f;
  };
  const Id org_cert = cert(1), proj_cert = cert(2), other_proj_cert = cert(3);
  const Id p = run(CreateProject{org, "p"}).project->id;
  const Id q = run(CreateProject{org, "q"}).project->id;
  CreateApiKey in_p{org, "in p"};
  in_p.project = p;
  const std::string key_p = run(in_p).revealed_key;
  auto with = [&](const std::string& key, std::optional<uint8_t> tag) {
    VerifyRequest r{key};
    std::array<uint8_t, 32> f = fp(tag.value_or(0));
    if (tag) r.client_certificate = &f;
    return check(r).code;
  };

  // Nothing active: no key needs a certificate.
  EXPECT_EQ(with(key_p, std::nullopt), VerifyCode::valid);
  EXPECT_EQ(with(secret, std::nullopt), VerifyCode::valid);

  // Active for project p only: p's keys need it; keys outside p do not.
  ASSERT_FALSE(run(SetCertificatesActive{org, {proj_cert}, true, p}).error);
  EXPECT_EQ(with(key_p, std::nullopt), VerifyCode::certificate_required);
  EXPECT_EQ(with(key_p, 9), VerifyCode::certificate_required) << "another certificate";
  EXPECT_EQ(with(key_p, 2), VerifyCode::valid);
  EXPECT_EQ(with(secret, std::nullopt), VerifyCode::valid) << "a key in no project";
  // Active for project q: not accepted for p's keys.
  ASSERT_FALSE(run(SetCertificatesActive{org, {other_proj_cert}, true, q}).error);
  EXPECT_EQ(with(key_p, 3), VerifyCode::certificate_required);

  // Active for the organization too: every key needs one; p's keys take either.
  ASSERT_FALSE(run(SetCertificatesActive{org, {org_cert}, true}).error);
  EXPECT_EQ(with(secret, std::nullopt), VerifyCode::certificate_required);
  EXPECT_EQ(with(secret, 1), VerifyCode::valid);
  EXPECT_EQ(with(secret, 2), VerifyCode::certificate_required) << "p's is not the org's";
  EXPECT_EQ(with(key_p, 1), VerifyCode::valid);
  EXPECT_EQ(with(key_p, 2), VerifyCode::valid);
  EXPECT_EQ(with(key_p, 3), VerifyCode::certificate_required);

  // Deactivated for p: p's keys fall back to the organization's alone.
  ASSERT_FALSE(run(SetCertificatesActive{org, {proj_cert}, false, p}).error);
  EXPECT_EQ(with(key_p, 2), VerifyCode::certificate_required);
  EXPECT_EQ(with(key_p, 1), VerifyCode::valid);
}

// The presented certificate is the uploaded one, so its validity is known and checked at
// each verification, not once per connection: a keep-alive connection that outlives its
// certificate gets CERTIFICATE_EXPIRED from then on.
TEST_F(VerifyTest, ABoundCertificateIsCheckedAgainstItsValidityAtEachVerification) {
  const int64_t now_s = static_cast<int64_t>(now / 1000);
  CreateCertificate c{org, std::nullopt, "pem", {}, now_s - 60, now_s + 60};
  c.fingerprint.fill(7);
  const Id cert = run(c).certificates.at(0).id;
  ASSERT_FALSE(run(SetCertificatesActive{org, {cert}, true}).error);
  std::array<uint8_t, 32> f;
  f.fill(7);
  VerifyRequest r{secret};
  r.client_certificate = &f;
  EXPECT_EQ(check(r).code, VerifyCode::valid);
  EXPECT_EQ(check(r, now + 61'000).code, VerifyCode::certificate_expired) << "after notAfter";
  EXPECT_EQ(check(r, now - 61'000).code, VerifyCode::certificate_expired) << "before notBefore";
  f.fill(8);
  EXPECT_EQ(check(r, now + 61'000).code, VerifyCode::certificate_required) << "not bound at all";
}

// A publishable key's origins are bounded (kMaxOriginsPerKey, kMaxOriginBytes), and an
// Origin longer than any pattern can be is refused without comparing it to them.
TEST_F(VerifyTest, AnOriginLongerThanAnyPatternMatchesNone) {
  VerifyRequest r{publishable};
  std::string origin = "https://" + std::string(300, 'a') + ".example.com";
  r.origin = origin;
  EXPECT_EQ(check(r).code, VerifyCode::origin_not_allowed);
  r.origin = "https://app.example.com";
  EXPECT_EQ(check(r).code, VerifyCode::valid);
}
