#include "core/state_machine.hpp"

#include <gtest/gtest.h>

using namespace keygate::core;

class StateMachineTest : public ::testing::Test {
 protected:
  RcuThread rcu;
  Index index;
  StateMachine sm{index};
  uint64_t now = 1'800'000'000'000;

  Outcome run(Command c) {
    Outcome o = sm.execute(c, now);
    if (!o.error) sm.publish();
    return o;
  }
  Id make_org(const std::string& slug) {
    return run(CreateOrganization{"Org " + slug, slug}).org->id;
  }
};

TEST_F(StateMachineTest, CreatingAnOrganizationAlsoCreatesItsFirstSecretKeyWithEveryScope) {
  Outcome o = run(CreateOrganization{"Acme Corp", "acme-corp"});
  ASSERT_FALSE(o.error);
  ASSERT_TRUE(o.key);
  EXPECT_EQ(o.key->type, KeyType::secret);
  EXPECT_EQ(o.key->scopes, kAllScopes);
  EXPECT_EQ(o.key->organization_id, o.org->id);
  EXPECT_TRUE(parse_key(o.revealed_key));
  {
    ReadSection rs;  // only the hash is kept, in the key's slot
    KeySlot* s = index.find_key(hash_key(o.revealed_key));
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->id(), o.key->id);
  }
  EXPECT_TRUE(o.key->public_value().empty());
  EXPECT_FALSE(o.key->extras) << "a secret key never rotated has no extras";
}

TEST_F(StateMachineTest, SlugsAreUniqueEvenWithinOneBatch) {
  Outcome a = sm.execute(CreateOrganization{"A", "same"}, now);
  Outcome b = sm.execute(CreateOrganization{"B", "same"}, now);
  EXPECT_FALSE(a.error);
  EXPECT_EQ(b.error.code, ErrorCode::slug_taken);
  sm.publish();
  EXPECT_EQ(run(CreateOrganization{"C", "same"}).error.code, ErrorCode::slug_taken);
}

TEST_F(StateMachineTest, DiscardForgetsTheBatchAndItsSlugs) {
  Outcome a = sm.execute(CreateOrganization{"A", "gone"}, now);
  ASSERT_FALSE(a.error);
  sm.discard();
  ReadSection rs;
  EXPECT_EQ(index.find_org(a.org->id), nullptr);
  EXPECT_FALSE(run(CreateOrganization{"A", "gone"}).error);
}

TEST_F(StateMachineTest, RenamingASlugFreesTheOldOne) {
  Id a = make_org("first");
  ASSERT_FALSE(run(UpdateOrganization{a, {}, std::string("second"), {}}).error);
  EXPECT_FALSE(run(CreateOrganization{"B", "first"}).error);
  EXPECT_EQ(run(UpdateOrganization{a, {}, std::string("first"), {}}).error.code,
            ErrorCode::slug_taken);
}

TEST_F(StateMachineTest, AnotherOrganizationsKeyIsNotFound) {
  Id a = make_org("a"), b = make_org("b");
  Outcome k = run(CreateApiKey{a, "k"});
  ASSERT_FALSE(k.error);
  EXPECT_EQ(run(RevokeApiKey{b, k.key->id}).error.code, ErrorCode::not_found);
  EXPECT_EQ(run(RotateApiKey{b, k.key->id, 0}).error.code, ErrorCode::not_found);
  EXPECT_EQ(run(UpdateApiKey{b, k.key->id, std::string("x")}).error.code, ErrorCode::not_found);
}

TEST_F(StateMachineTest, RevokingTwiceIsAConflict) {
  Id a = make_org("a");
  Id k = run(CreateApiKey{a, "k"}).key->id;
  Outcome r = run(RevokeApiKey{a, k});
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.key->status_at(now), KeyStatus::revoked);
  EXPECT_EQ(run(RevokeApiKey{a, k}).error.code, ErrorCode::already_revoked);
}

TEST_F(StateMachineTest, RotatingAPublishableKeyKeepsItsTypeAndOriginsUnderANewValue) {
  // Spec 4: the new key has the same type, environment, name and origins.
  Id a = make_org("a");
  CreateApiKey c{a, "web", KeyType::publishable, Environment::test};
  c.allowed_origins = {"https://app.example.com"};
  Outcome old = run(c);
  ASSERT_FALSE(old.error);
  Outcome fresh = run(RotateApiKey{a, old.key->id, 60});
  ASSERT_FALSE(fresh.error);
  EXPECT_EQ(fresh.key->type, KeyType::publishable);
  EXPECT_EQ(fresh.key->environment, Environment::test);
  EXPECT_EQ(fresh.key->allowed_origins(), c.allowed_origins);
  EXPECT_EQ(fresh.key->public_value(), fresh.revealed_key) << "its own value, not the old one";
  EXPECT_EQ(fresh.key->rotated_from(), old.key->id);
  ReadSection rs;
  const ApiKey& was = *index.find_key(old.key->id)->load();
  EXPECT_EQ(was.public_value(), old.revealed_key) << "the old version keeps its value";
  EXPECT_EQ(was.allowed_origins(), c.allowed_origins);
  EXPECT_EQ(was.replaced_by(), fresh.key->id);
  EXPECT_EQ(old.key->replaced_by(), Id{}) << "versions published before are never changed";
}

TEST_F(StateMachineTest, PatchingOriginsKeepsThePublicValueAndLeavesTheOldVersionAlone) {
  Id a = make_org("a");
  Outcome k = run(CreateApiKey{a, "web", KeyType::publishable});
  ASSERT_FALSE(k.error);
  EXPECT_TRUE(k.key->allowed_origins().empty());
  UpdateApiKey u{a, k.key->id};
  u.allowed_origins = std::vector<std::string>{"https://a.example.com"};
  Outcome p = run(u);
  ASSERT_FALSE(p.error);
  EXPECT_EQ(p.key->public_value(), k.revealed_key);
  EXPECT_EQ(p.key->allowed_origins(), *u.allowed_origins);
  EXPECT_TRUE(k.key->allowed_origins().empty()) << "the version readers may still hold";
}

TEST_F(StateMachineTest, RotationLinksBothKeysAndStartsTheGracePeriod) {
  Id a = make_org("a");
  CreateApiKey c{a, "web"};
  c.scopes = bit(Scope::api_keys_read);
  Outcome old = run(c);
  Outcome fresh = run(RotateApiKey{a, old.key->id, 60});
  ASSERT_FALSE(fresh.error);
  EXPECT_EQ(fresh.key->rotated_from(), old.key->id);
  EXPECT_EQ(fresh.key->name, "web");
  EXPECT_EQ(fresh.key->scopes, bit(Scope::api_keys_read));
  ReadSection rs;
  EXPECT_EQ(index.find_key(hash_key(fresh.revealed_key))->id(), fresh.key->id);
  EXPECT_EQ(index.find_key(hash_key(old.revealed_key))->id(), old.key->id);
  const ApiKey& was = *index.find_key(old.key->id)->load();
  EXPECT_EQ(was.replaced_by(), fresh.key->id);
  EXPECT_EQ(was.grace_expires_ms, now + 60'000);
  EXPECT_EQ(was.status_at(now), KeyStatus::rotating);
  EXPECT_EQ(was.status_at(now + 60'000), KeyStatus::expired);
}

TEST_F(StateMachineTest, RotatingARotatingRevokedOrExpiredKeyIsAConflict) {
  Id a = make_org("a");
  Id k = run(CreateApiKey{a, "k"}).key->id;
  ASSERT_FALSE(run(RotateApiKey{a, k, 100}).error);
  EXPECT_EQ(run(RotateApiKey{a, k, 100}).error.code, ErrorCode::already_rotated);
  Id r = run(CreateApiKey{a, "r"}).key->id;
  run(RevokeApiKey{a, r});
  EXPECT_EQ(run(RotateApiKey{a, r, 100}).error.code, ErrorCode::already_revoked);
  CreateApiKey soon{a, "soon"};
  soon.expires_ms = now + 1;
  Id e = run(soon).key->id;
  now += 2;
  EXPECT_EQ(run(RotateApiKey{a, e, 100}).error.code, ErrorCode::already_rotated);
}

TEST_F(StateMachineTest, RotationReplacesTheRemovedScopeWithItsThreeSuccessors) {
  Id a = make_org("a");
  CreateApiKey c{a, "legacy"};
  c.scopes = kLegacyScope | bit(Scope::api_keys_read);  // as migrated data may hold
  Id k = run(c).key->id;
  Outcome fresh = run(RotateApiKey{a, k, 0});
  EXPECT_EQ(fresh.key->scopes, bit(Scope::api_keys_read) | bit(Scope::organizations_create) |
                                   bit(Scope::organizations_read) |
                                   bit(Scope::organizations_update));
}

TEST_F(StateMachineTest, ReplayedRecordsRebuildTheSameState) {
  Id a = make_org("a");
  Outcome k = run(CreateApiKey{a, "k"});
  RcuThread again;
  Index copy;
  StateMachine replica(copy);
  {
    ReadSection rs;
    for (OrgSlot* o = index.first_org(); o; o = o->next()) {
      replica.apply(std::make_unique<Organization>(*o->load()));
      for (KeySlot* s = o->keys(); s; s = s->next())
        replica.apply(s->hash, std::make_unique<ApiKey>(*s->load()));
    }
  }
  ReadSection rs;
  EXPECT_EQ(copy.key_count(), index.key_count());
  ASSERT_NE(copy.find_key(hash_key(k.revealed_key)), nullptr);
  EXPECT_EQ(copy.find_key(hash_key(k.revealed_key))->id(), k.key->id);
  // The replica knows the slug is taken.
  EXPECT_EQ(replica.execute(CreateOrganization{"x", "a"}, now).error.code, ErrorCode::slug_taken);
}
