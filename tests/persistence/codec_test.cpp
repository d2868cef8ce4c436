#include "persistence/codec.hpp"

#include <gtest/gtest.h>

using namespace keygate;

TEST(Codec, ApiKeyRoundTripsEveryField) {
  core::ApiKey k;
  core::IdGenerator g;
  k.id = g.next(1);
  k.organization_id = g.next(2);
  k.type = core::KeyType::publishable;
  k.environment = core::Environment::test;
  k.scopes = 0x1234;
  std::copy_n("abcd", 4, k.preview);
  k.name = "a name past the inline fifteen bytes, \"quoted\"";  // CompactString on the heap
  k.rate_limit = core::RateLimit{5, 7};
  k.created_ms = 1;
  k.rotated_ms = 2;
  k.revoked_ms = 3;
  k.grace_expires_ms = 4;
  k.expires_ms = 5;
  k.edit_extras([&](core::KeyExtras& e) {
    e = core::KeyExtras{"pk_test_x", {"https://a.com", "https://*.b.com"}, g.next(3), g.next(4)};
  });
  std::string bytes;
  persistence::encode(core::hash_key("v"), k, 99, bytes);
  uint64_t last_used = 0;
  core::KeyHash hash{};
  auto d = persistence::decode_api_key(bytes, hash, last_used);
  ASSERT_TRUE(d);
  EXPECT_EQ(last_used, 99u);
  EXPECT_EQ(d->id, k.id);
  EXPECT_EQ(d->organization_id, k.organization_id);
  EXPECT_EQ(hash, core::hash_key("v"));
  EXPECT_EQ(d->type, k.type);
  EXPECT_EQ(d->environment, k.environment);
  EXPECT_EQ(d->scopes, k.scopes);
  EXPECT_EQ(std::string(d->preview, 4), "abcd");
  EXPECT_EQ(d->public_value(), "pk_test_x");
  EXPECT_EQ(d->name, k.name);
  EXPECT_EQ(d->allowed_origins(), k.allowed_origins());
  EXPECT_EQ(d->rate_limit, k.rate_limit);
  EXPECT_EQ(d->grace_expires_ms, 4u);
  EXPECT_EQ(d->replaced_by(), k.replaced_by());
  EXPECT_EQ(d->rotated_from(), k.rotated_from());
}

TEST(Codec, ASecretKeyKeepsItsRotationLinksAndNoExtrasWithoutThem) {
  core::ApiKey k;
  core::IdGenerator g;
  k.id = g.next(1);
  k.organization_id = g.next(2);
  std::string bytes;
  uint64_t last_used = 0;
  core::KeyHash hash = core::hash_key("s");
  persistence::encode(hash, k, 0, bytes);
  auto plain = persistence::decode_api_key(bytes, hash, last_used);
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->extras) << "a secret key never rotated carries no extras";
  const core::Id from = g.next(3);
  k.edit_extras([&](core::KeyExtras& e) { e.rotated_from = from; });
  bytes.clear();
  persistence::encode(hash, k, 0, bytes);
  auto rotated = persistence::decode_api_key(bytes, hash, last_used);
  ASSERT_TRUE(rotated);
  EXPECT_EQ(rotated->rotated_from(), from);
  EXPECT_TRUE(rotated->replaced_by().empty());
  EXPECT_TRUE(rotated->public_value().empty());
}

TEST(Codec, AKeyWhoseTypeDisagreesWithItsPublicValueIsRejected) {
  core::ApiKey k;
  k.id = core::IdGenerator().next(1);
  k.type = core::KeyType::publishable;  // but no value
  std::string bytes;
  core::KeyHash hash = core::hash_key("p");
  persistence::encode(hash, k, 0, bytes);
  uint64_t last_used = 0;
  EXPECT_FALSE(persistence::decode_api_key(bytes, hash, last_used));
  k.type = core::KeyType::secret;
  bytes.clear();
  persistence::encode(hash, k, 0, bytes);
  EXPECT_TRUE(persistence::decode_api_key(bytes, hash, last_used))
      << "a secret key has no public value";
  k.edit_extras([](core::KeyExtras& e) { e.value = "pk_live_x"; });
  bytes.clear();
  persistence::encode(hash, k, 0, bytes);
  EXPECT_FALSE(persistence::decode_api_key(bytes, hash, last_used))
      << "a secret key with a public value";
}

TEST(Codec, OrganizationRoundTripsAndTruncatedPayloadsAreRejected) {
  core::Organization o;
  o.id = core::IdGenerator().next(1);
  o.name = "Acme";
  o.slug = "acme";
  o.status = core::OrgStatus::suspended;
  o.created_ms = 10;
  o.updated_ms = 11;
  std::string bytes;
  persistence::encode(o, bytes);
  auto d = persistence::decode_organization(bytes);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->slug, "acme");
  EXPECT_EQ(d->status, core::OrgStatus::suspended);
  EXPECT_EQ(d->updated_ms, 11u);
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(persistence::decode_organization(bytes.substr(0, n)));
  EXPECT_FALSE(persistence::decode_organization(bytes + "x"));
}

// API key payloads are at version 2 (FORMAT.md): version 1 is version 2 without the
// trailing project number, and both must keep loading.
TEST(Codec, ApiKeyVersionTwoCarriesTheProjectAndVersionOneStillReads) {
  core::ApiKey k;
  core::IdGenerator g;
  k.id = g.next(1);
  k.organization_id = g.next(2);
  k.project = 7;
  std::copy_n("abcd", 4, k.preview);
  std::string v2;
  persistence::encode(core::hash_key("v"), k, 5, v2);
  uint64_t last_used = 0;
  core::KeyHash hash{};
  auto d = persistence::decode_api_key(v2, hash, last_used, 2);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->project, 7);
  EXPECT_EQ(last_used, 5u);
  // Version 1: the same bytes without the last two.
  const std::string v1 = v2.substr(0, v2.size() - 2);
  auto old = persistence::decode_api_key(v1, hash, last_used, 1);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->project, 0) << "a version-1 key is in no project";
  EXPECT_FALSE(persistence::decode_api_key(v1, hash, last_used, 2)) << "too short for 2";
  EXPECT_FALSE(persistence::decode_api_key(v2, hash, last_used, 1)) << "too long for 1";
  EXPECT_FALSE(persistence::decode_api_key(v2, hash, last_used, 3)) << "unknown version";
}

TEST(Codec, ProjectRoundTripsAndRefusesDamage) {
  core::IdGenerator g;
  core::Project p;
  p.id = g.next(1);
  p.organization_id = g.next(2);
  p.name = "a project name longer than fifteen";
  p.number = 3;
  p.created_ms = 10;
  p.archived_ms = 20;
  std::string bytes;
  persistence::encode(p, bytes);
  auto d = persistence::decode_project(bytes);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->id, p.id);
  EXPECT_EQ(d->organization_id, p.organization_id);
  EXPECT_EQ(d->name, p.name);
  EXPECT_EQ(d->number, 3);
  EXPECT_EQ(d->created_ms, 10u);
  EXPECT_EQ(d->archived_ms, 20u);
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(persistence::decode_project(bytes.substr(0, n)));
  EXPECT_FALSE(persistence::decode_project(bytes + "x"));
  p.number = 0;  // projects are numbered from 1
  bytes.clear();
  persistence::encode(p, bytes);
  EXPECT_FALSE(persistence::decode_project(bytes));
}

// Certificate payloads are at version 2 (the projects it is active for); version 1 reads
// as active for none.
TEST(Codec, CertificateVersionTwoCarriesItsProjectsAndVersionOneStillReads) {
  core::IdGenerator g;
  core::Certificate c;
  c.id = g.next(1);
  c.organization_id = g.next(2);
  c.pem = "pem";
  c.active_projects = {2, 5};
  std::string v2;
  persistence::encode(c, v2);
  auto d = persistence::decode_certificate(v2, 2);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->active_projects, (std::vector<uint16_t>{2, 5}));
  const std::string v1 = v2.substr(0, v2.size() - 6);  // u16 count and two u16
  auto old = persistence::decode_certificate(v1, 1);
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->active_projects.empty());
  EXPECT_FALSE(persistence::decode_certificate(v1, 2));
  EXPECT_FALSE(persistence::decode_certificate(v2, 1));
  c.active_projects = {5, 2};  // out of order: not written by keygate
  std::string bad;
  persistence::encode(c, bad);
  EXPECT_FALSE(persistence::decode_certificate(bad, 2));
}
