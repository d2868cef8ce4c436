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

// discard() undoes what the batch did to the slugs, in reverse, without walking every
// organization (cluster mode discards every transaction: the watch publishes).
TEST_F(StateMachineTest, DiscardUndoesABatchsRenamesAndCreations) {
  const Id a = make_org("x");
  UpdateOrganization rename{a};
  rename.slug = "y";
  ASSERT_FALSE(sm.execute(rename, now).error);
  ASSERT_FALSE(sm.execute(CreateOrganization{"Takes x", "x"}, now).error) << "x is free now";
  sm.discard();
  EXPECT_EQ(sm.execute(CreateOrganization{"Wants x", "x"}, now).error.code, ErrorCode::slug_taken)
      << "x is a's again";
  sm.discard();
  EXPECT_FALSE(run(CreateOrganization{"Wants y", "y"}).error) << "y was never taken";
}

// discard_from() undoes the last command of a batch alone (a cluster transaction it does not
// fit): its records and its slug changes go, what the commands before it staged stays.
TEST_F(StateMachineTest, DiscardFromUndoesTheLastCommandAloneAndKeepsTheRest) {
  const Id a = make_org("a");
  const Outcome k = sm.execute(CreateApiKey{a, "kept"}, now);
  ASSERT_FALSE(k.error);
  const size_t records = sm.staged().size(), slugs = sm.slug_changes();
  UpdateOrganization rename{a};
  rename.slug = "renamed";
  ASSERT_FALSE(sm.execute(rename, now).error);
  ASSERT_FALSE(sm.execute(CreateOrganization{"B", "b"}, now).error);
  ASSERT_GT(sm.slug_changes(), slugs);
  sm.discard_from(records, slugs);
  EXPECT_EQ(sm.staged().size(), records);
  EXPECT_EQ(sm.slug_changes(), slugs);
  // The key the first command staged is still there for the batch; the slugs are as before.
  EXPECT_FALSE(sm.execute(RevokeApiKey{a, k.key->id}, now).error);
  EXPECT_EQ(sm.execute(CreateOrganization{"Wants a", "a"}, now).error.code, ErrorCode::slug_taken)
      << "a is a's again";
  EXPECT_FALSE(sm.execute(CreateOrganization{"Takes b", "b"}, now).error) << "b is free again";
  sm.publish();
  ReadSection rs;
  const KeySlot* slot = index.find_key(k.key->id);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(slot->load()->status_at(now), KeyStatus::revoked);
  EXPECT_EQ(index.find_org(a)->load()->slug, "a");
}

// --max-keys-per-org counts the keys a batch stages on top of those the index holds, and
// forgets those of a command undone by discard_from().
TEST_F(StateMachineTest, ABatchsNewKeysCountAgainstTheLimitUntilUndone) {
  sm.set_max_keys_per_org(4);
  const Id a = make_org("a");  // and its first key
  ASSERT_FALSE(sm.execute(CreateApiKey{a, "2"}, now).error);
  const Outcome third = sm.execute(CreateApiKey{a, "3"}, now);
  ASSERT_FALSE(third.error);
  ASSERT_FALSE(sm.execute(UpdateApiKey{a, third.key->id, std::string("3 again")}, now).error)
      << "a staged key changed again is still one key";
  const size_t records = sm.staged().size(), slugs = sm.slug_changes();
  ASSERT_FALSE(sm.execute(CreateApiKey{a, "4"}, now).error);
  EXPECT_EQ(sm.execute(CreateApiKey{a, "5"}, now).error.code, ErrorCode::key_limit_reached);
  sm.discard_from(records, slugs);
  ASSERT_FALSE(sm.execute(CreateApiKey{a, "4 instead"}, now).error);
  EXPECT_EQ(sm.execute(CreateApiKey{a, "5"}, now).error.code, ErrorCode::key_limit_reached);
  sm.publish();
  EXPECT_EQ(run(CreateApiKey{a, "5"}).error.code, ErrorCode::key_limit_reached);
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

// Projects (docs/api.md §7): numbered in creation order per organization, renamed,
// archived once; a key names its project by number and keeps it through rotation.
TEST_F(StateMachineTest, ProjectsAreNumberedPerOrganizationAndArchivedOnce) {
  const Id a = make_org("proj-a"), b = make_org("proj-b");
  Outcome p1 = run(CreateProject{a, "one"});
  Outcome p2 = run(CreateProject{a, "two"});
  Outcome q1 = run(CreateProject{b, "other"});
  ASSERT_FALSE(p1.error);
  EXPECT_EQ(p1.project->number, 1);
  EXPECT_EQ(p2.project->number, 2);
  EXPECT_EQ(q1.project->number, 1) << "numbers are per organization";
  EXPECT_EQ(run(UpdateProject{a, p2.project->id, "deux"}).project->name, "deux");
  // Another organization's project does not exist, as far as this one can tell.
  EXPECT_EQ(run(UpdateProject{b, p2.project->id, "x"}).error.code, ErrorCode::not_found);
  EXPECT_EQ(run(ArchiveProject{b, p1.project->id}).error.code, ErrorCode::not_found);

  Outcome archived = run(ArchiveProject{a, p1.project->id});
  ASSERT_FALSE(archived.error);
  EXPECT_EQ(archived.project->archived_ms, now);
  now += 1000;
  Outcome again = run(ArchiveProject{a, p1.project->id});
  EXPECT_FALSE(again.error) << "idempotent";
  EXPECT_EQ(again.project->archived_ms, now - 1000) << "the first archiving stands";
  EXPECT_EQ(run(UpdateProject{a, p1.project->id, "renamed"}).error.code,
            ErrorCode::project_archived);

  ReadSection rs;
  const ProjectSet* set = index.find_org(a)->project_set();
  ASSERT_NE(set, nullptr);
  ASSERT_EQ(set->items.size(), 2u);
  EXPECT_EQ(set->by_number(2)->name, "deux");
  EXPECT_NE(set->by_number(1)->archived_ms, 0u);
  EXPECT_EQ(set->by_number(3), nullptr);
}

TEST_F(StateMachineTest, AKeyLivesInAnActiveProjectOfItsOwnOrganizationForLife) {
  const Id a = make_org("keys-a"), b = make_org("keys-b");
  const Id live = run(CreateProject{a, "live"}).project->id;
  const Id done = run(CreateProject{a, "done"}).project->id;
  const Id theirs = run(CreateProject{b, "theirs"}).project->id;
  run(ArchiveProject{a, done});

  CreateApiKey c{a, "in a project"};
  c.project = live;
  Outcome k = run(c);
  ASSERT_FALSE(k.error);
  EXPECT_EQ(k.key->project, 1);
  c.project = done;
  EXPECT_EQ(run(c).error.code, ErrorCode::project_archived);
  c.project = theirs;
  EXPECT_EQ(run(c).error.code, ErrorCode::not_found);
  EXPECT_EQ(run(c).error.param, "project_id");

  Outcome rotated = run(RotateApiKey{a, k.key->id, 60});
  ASSERT_FALSE(rotated.error);
  EXPECT_EQ(rotated.key->project, 1) << "a rotation stays in the project";
}

TEST_F(StateMachineTest, AProjectAndAKeyInItCanBeCreatedInOneBatch) {
  const Id a = make_org("batch");
  Outcome p = sm.execute(CreateProject{a, "new"}, now);
  ASSERT_FALSE(p.error);
  CreateApiKey c{a, "k"};
  c.project = p.project->id;
  Outcome k = sm.execute(c, now);
  ASSERT_FALSE(k.error) << k.error.message;
  EXPECT_EQ(k.key->project, 1);
  Outcome p2 = sm.execute(CreateProject{a, "newer"}, now);
  EXPECT_EQ(p2.project->number, 2) << "the batch's own projects count";
  sm.publish();
}

// Certificates per project: idempotent, atomic, of the organization's own projects, and a
// certificate active anywhere cannot be deleted.
TEST_F(StateMachineTest, CertificatesAreActivatedPerProject) {
  const Id a = make_org("pc-a"), b = make_org("pc-b");
  auto upload = [&](Id org, uint8_t tag) {
    CreateCertificate c{org, std::nullopt, "pem", {}, 0, 0};
    c.fingerprint.fill(tag);
    return run(c).certificates.at(0).id;
  };
  const Id c1 = upload(a, 1), c2 = upload(a, 2);
  const Id p = run(CreateProject{a, "p"}).project->id;
  const Id q = run(CreateProject{a, "q"}).project->id;
  const Id theirs = run(CreateProject{b, "theirs"}).project->id;

  Outcome on = run(SetCertificatesActive{a, {c1, c2}, true, q});
  ASSERT_FALSE(on.error);
  ASSERT_FALSE(run(SetCertificatesActive{a, {c1}, true, p}).error);
  Outcome again = run(SetCertificatesActive{a, {c1}, true, p});
  ASSERT_FALSE(again.error);
  EXPECT_EQ(again.certificates.at(0).active_projects, (std::vector<uint16_t>{1, 2}))
      << "idempotent, and kept in ascending order";
  EXPECT_FALSE(again.certificates.at(0).active) << "the organization's flag is its own";

  EXPECT_EQ(run(SetCertificatesActive{a, {c1}, true, theirs}).error.code, ErrorCode::not_found);
  EXPECT_EQ(run(DeleteCertificate{a, c1}).error.code, ErrorCode::certificate_active);
  // Atomic: one unknown certificate, nothing changes.
  EXPECT_EQ(run(SetCertificatesActive{a, {c2, Id{1, 1}}, false, q}).error.code,
            ErrorCode::not_found);
  {
    ReadSection rs;
    EXPECT_TRUE(index.find_org(a)->certs()->find(c2)->active_in(2));
  }
  ASSERT_FALSE(run(SetCertificatesActive{a, {c1}, false, p}).error);
  ASSERT_FALSE(run(SetCertificatesActive{a, {c1}, false, q}).error);
  EXPECT_FALSE(run(DeleteCertificate{a, c1}).error) << "active nowhere now";
}

// Scopes only narrow (docs/security.md), decided by the writer against the keys as this
// batch sees them: a key narrowed earlier in the same batch is narrow for what follows.
TEST_F(StateMachineTest, ScopesOnlyNarrowAndTheRemovedScopeCountsAsItsThree) {
  Id a = make_org("a");
  auto as = [&](Command c, ScopeSet authority) {
    Outcome o = sm.execute(c, now, Actor{}, authority);
    if (!o.error) sm.publish();
    return o;
  };
  const ScopeSet legacy = kLegacyScope | bit(Scope::api_keys_manage);
  CreateApiKey wants_update{a, "u"};
  wants_update.scopes = bit(Scope::organizations_update);
  EXPECT_FALSE(as(wants_update, legacy).error) << "organizations:manage holds :update";
  CreateApiKey wants_certs{a, "c"};
  wants_certs.scopes = bit(Scope::certificates_read);
  EXPECT_EQ(as(wants_certs, legacy).error.code, ErrorCode::insufficient_scope);
  // Omitted scopes: the caller's own, as they are today (the removed one read as its three).
  Outcome own = as(CreateApiKey{a, "own"}, legacy);
  ASSERT_FALSE(own.error);
  EXPECT_EQ(own.key->scopes, current_scopes(legacy));
  EXPECT_EQ(as(CreateApiKey{a, "all"}, kEveryScope).key->scopes, kAllScopes);

  // A key narrowed in a batch cannot then be rotated by a caller it exceeded before.
  Id wide = run(CreateApiKey{a, "wide"}).key->id;
  const ScopeSet manager = bit(Scope::api_keys_manage) | bit(Scope::api_keys_read);
  EXPECT_EQ(sm.execute(RotateApiKey{a, wide, 0}, now, Actor{}, manager).error.code,
            ErrorCode::insufficient_scope);
  UpdateApiKey narrow{a, wide};
  narrow.scopes = bit(Scope::api_keys_read);
  ASSERT_FALSE(sm.execute(narrow, now, Actor{}, kEveryScope).error);
  EXPECT_FALSE(sm.execute(RotateApiKey{a, wide, 0}, now, Actor{}, manager).error)
      << "the staged, narrowed version is what the check reads";
  sm.publish();
}
