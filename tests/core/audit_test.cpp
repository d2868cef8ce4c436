#include "core/audit.hpp"

#include <gtest/gtest.h>

#include "core/state_machine.hpp"

using namespace keygate::core;

namespace {

const Id kOrg{1, 1}, kOther{2, 2};
constexpr uint64_t kT0 = 1'800'000'000'000;  // ms

// Event n of `org`: at kT0 + n seconds, type alternating between key created and deleted.
AuditEvent event(Id org, uint64_t n, AuditType type = AuditType::api_key_created) {
  AuditEvent e;
  e.id = Id{(kT0 + n * 1000) << 16, n};
  e.organization_id = org;
  e.type = type;
  e.resources = {Id{100, n}};
  e.payload = "{}";
  return e;
}

std::vector<uint64_t> numbers(const AuditPage& p) {
  std::vector<uint64_t> out;
  for (const auto& e : p.events) out.push_back(e.id.lo);
  return out;
}

}  // namespace

TEST(AuditLog, PagesNewestFirstForwardWithAfterAndBackWithBefore) {
  AuditLog log;
  for (uint64_t n = 1; n <= 10; ++n) log.insert(event(kOrg, n));
  AuditQuery q;
  q.limit = 4;
  AuditPage p = log.page(kOrg, q);
  EXPECT_EQ(numbers(p), (std::vector<uint64_t>{10, 9, 8, 7}));
  EXPECT_TRUE(p.has_more);
  q.after = p.events.back().id;
  p = log.page(kOrg, q);
  EXPECT_EQ(numbers(p), (std::vector<uint64_t>{6, 5, 4, 3}));
  q.after = p.events.back().id;
  p = log.page(kOrg, q);
  EXPECT_EQ(numbers(p), (std::vector<uint64_t>{2, 1}));
  EXPECT_FALSE(p.has_more);
  // Back from the last page: the events just newer than its first, still newest first.
  q.after.reset();
  q.before = p.events.front().id;
  p = log.page(kOrg, q);
  EXPECT_EQ(numbers(p), (std::vector<uint64_t>{6, 5, 4, 3}));
  EXPECT_TRUE(p.has_more);
  q.before = p.events.front().id;
  p = log.page(kOrg, q);
  EXPECT_EQ(numbers(p), (std::vector<uint64_t>{10, 9, 8, 7}));
  EXPECT_FALSE(p.has_more);
}

TEST(AuditLog, TimeBoundsAreInclusiveSecondsAndOtherFiltersCombine) {
  AuditLog log;
  for (uint64_t n = 1; n <= 10; ++n)
    log.insert(event(kOrg, n, n % 2 ? AuditType::api_key_created : AuditType::api_key_deleted));
  const int64_t t0 = kT0 / 1000;
  AuditQuery q;
  q.from_s = t0 + 3;
  q.to_s = t0 + 6;
  EXPECT_EQ(numbers(log.page(kOrg, q)), (std::vector<uint64_t>{6, 5, 4, 3}));
  q.types = {AuditType::api_key_deleted};
  EXPECT_EQ(numbers(log.page(kOrg, q)), (std::vector<uint64_t>{6, 4}));
  q.resources = {Id{100, 4}};
  EXPECT_EQ(numbers(log.page(kOrg, q)), (std::vector<uint64_t>{4}));
  q.resources = {Id{100, 5}};  // created, not deleted
  EXPECT_TRUE(log.page(kOrg, q).events.empty());
}

TEST(AuditLog, ActorsAndProjectsFilter) {
  AuditLog log;
  AuditEvent a = event(kOrg, 1);
  a.actor = {ActorKind::api_key, Id{7, 7}};
  a.project_id = Id{9, 9};
  AuditEvent b = event(kOrg, 2);  // root, no project
  log.insert(a);
  log.insert(b);
  AuditQuery q;
  q.actors = {actor_id(a.actor)};
  EXPECT_EQ(numbers(log.page(kOrg, q)), (std::vector<uint64_t>{1}));
  q.actors = {"root"};
  EXPECT_EQ(numbers(log.page(kOrg, q)), (std::vector<uint64_t>{2}));
  q.actors.clear();
  q.projects = {Id{9, 9}};
  EXPECT_EQ(numbers(log.page(kOrg, q)), (std::vector<uint64_t>{1}));
}

TEST(AuditLog, TenantsAreApartAndDuplicatesAndOutOfOrderInsertsAreHandled) {
  AuditLog log;
  log.insert(event(kOrg, 3));
  log.insert(event(kOrg, 1));  // a cluster node may learn of an older event later
  log.insert(event(kOrg, 2));
  log.insert(event(kOrg, 2));  // a snapshot and the log after it may both hold one
  log.insert(event(kOther, 5));
  AuditQuery q;
  EXPECT_EQ(numbers(log.page(kOrg, q)), (std::vector<uint64_t>{3, 2, 1}));
  EXPECT_EQ(numbers(log.page(kOther, q)), (std::vector<uint64_t>{5}));
  EXPECT_TRUE(log.page(Id{3, 3}, q).events.empty());
  log.erase(kOrg, event(kOrg, 2).id);
  EXPECT_EQ(numbers(log.page(kOrg, q)), (std::vector<uint64_t>{3, 1}));
  EXPECT_EQ(log.size(), 3u);
}

TEST(AuditLog, DropBeforeCutsTheOldOnesAndPagingAcrossTheCutStaysConsistent) {
  AuditLog log;
  for (uint64_t n = 1; n <= 10; ++n) log.insert(event(kOrg, n));
  AuditQuery q;
  q.limit = 3;
  AuditPage first = log.page(kOrg, q);  // 10 9 8
  q.after = first.events.back().id;
  EXPECT_EQ(log.drop_before(kT0 + 5'000), 4u);  // 1..4 go
  AuditPage next = log.page(kOrg, q);
  EXPECT_EQ(numbers(next), (std::vector<uint64_t>{7, 6, 5}));
  q.after = next.events.back().id;
  next = log.page(kOrg, q);
  EXPECT_TRUE(next.events.empty());
  EXPECT_FALSE(next.has_more);
  std::vector<uint64_t> kept;
  log.for_each(kT0 + 7'000, [&](const AuditEvent& e, bool) { kept.push_back(e.id.lo); });
  EXPECT_EQ(kept, (std::vector<uint64_t>{7, 8, 9, 10}));
}

TEST(AuditLog, TypeNamesRoundTrip) {
  for (uint8_t i = 1; i <= kAuditTypeCount; ++i) {
    const auto t = static_cast<AuditType>(i);
    ASSERT_FALSE(to_string(t).empty());
    EXPECT_EQ(parse_audit_type(to_string(t)), t);
  }
  EXPECT_FALSE(parse_audit_type("login.failed"));
  EXPECT_TRUE(to_string(static_cast<AuditType>(0)).empty());
}

// The state machine stages one event per change, in the batch, with the change.
class AuditedStateMachine : public ::testing::Test {
 protected:
  RcuThread rcu;
  Index index;
  StateMachine sm{index};
  uint64_t now = kT0;
  Actor actor{ActorKind::api_key, Id{42, 42}};

  Outcome run(Command c) {
    Outcome o = sm.execute(c, now, actor);
    if (!o.error) sm.publish();
    now += 1000;
    return o;
  }
  std::vector<std::string> types(Id org) {
    AuditQuery q;
    q.limit = 100;
    std::vector<std::string> out;
    for (const auto& e : index.audit().page(org, q).events) out.emplace_back(to_string(e.type));
    return {out.rbegin(), out.rend()};  // oldest first
  }
};

TEST_F(AuditedStateMachine, EveryChangeHasItsEventAndARefusalOrANoOpHasNone) {
  Outcome o = run(CreateOrganization{"Acme", "acme"});
  const Id org = o.org->id;
  Outcome k = run(CreateApiKey{org, "ci"});
  run(UpdateApiKey{org, k.key->id, std::string("ci-2")});
  Outcome r = run(RotateApiKey{org, k.key->id, 60});
  run(RevokeApiKey{org, r.key->id});
  EXPECT_TRUE(run(RevokeApiKey{org, r.key->id}).error);  // refused: no event
  Outcome p = run(CreateProject{org, "web"});
  run(UpdateProject{org, p.project->id, "site"});
  run(ArchiveProject{org, p.project->id});
  run(ArchiveProject{org, p.project->id});  // already archived: nothing changes, no event
  run(UpdateOrganization{org, std::string("Acme 2"), {}, {}});
  EXPECT_EQ(types(org),
            (std::vector<std::string>{"organization.created", "api_key.created", "api_key.created",
                                      "api_key.updated", "api_key.updated", "api_key.created",
                                      "api_key.deleted", "project.created", "project.updated",
                                      "project.archived", "organization.updated"}));
  AuditQuery q;
  q.limit = 1;
  const AuditEvent last = index.audit().page(org, q).events.at(0);
  EXPECT_EQ(last.actor.kind, ActorKind::api_key);
  EXPECT_EQ(last.actor.key, actor.key);
  EXPECT_EQ(last.effective_at(), static_cast<int64_t>((now - 1000) / 1000));
}

TEST_F(AuditedStateMachine, NoEventNamesASecretAndAnEventIsStagedWithItsChange) {
  Outcome o = sm.execute(CreateOrganization{"Acme", "acme"}, now, actor);
  ASSERT_FALSE(o.error);
  size_t events = 0;
  for (const auto& st : sm.staged()) {
    if (!st.event) continue;
    ++events;
    EXPECT_EQ(st.event->payload.find(o.revealed_key), std::string::npos);
  }
  EXPECT_EQ(events, 2u);  // the organization and its first key
  sm.discard();
  EXPECT_TRUE(types(o.org->id).empty()) << "a discarded batch leaves no event";
}

TEST_F(AuditedStateMachine, AuditingOffStagesNoEvents) {
  sm.set_auditing(false);
  Outcome o = run(CreateOrganization{"Acme", "acme"});
  EXPECT_TRUE(types(o.org->id).empty());
}

// A filter that matches rarely walks at most kMaxScan events a page (the walk holds the
// organization's lock, which the writer needs): the page comes back short with has_more
// and `resume`, and following `resume` in either direction finds every match exactly once.
TEST(AuditLog, ARareFilterWalksABoundedStretchAPageAndResumes) {
  AuditLog log;
  const uint64_t n = AuditLog::kMaxScan * 2 + 500;
  for (uint64_t i = 1; i <= n; ++i)
    log.insert(event(
        kOrg, i, i == 3 || i == n - 1 ? AuditType::api_key_deleted : AuditType::api_key_created));
  AuditQuery q;
  q.types = {AuditType::api_key_deleted};
  std::vector<uint64_t> found;
  int pages = 0;
  for (;;) {
    const AuditPage p = log.page(kOrg, q);
    ++pages;
    for (uint64_t x : numbers(p)) found.push_back(x);
    if (!p.has_more) break;
    ASSERT_LT(pages, 10);
    q.after = p.resume ? *p.resume : p.events.back().id;
  }
  EXPECT_EQ(found, (std::vector<uint64_t>{n - 1, 3}));
  EXPECT_EQ(pages, 3) << "three stretches of at most kMaxScan events";

  // Backwards from the oldest with `before`.
  q.after.reset();
  q.before = Id{(kT0 + 1000) << 16, 1};
  found.clear();
  for (pages = 0;;) {
    const AuditPage p = log.page(kOrg, q);
    ++pages;
    for (uint64_t x : numbers(p)) found.push_back(x);
    if (!p.has_more) break;
    ASSERT_LT(pages, 10);
    q.before = p.resume ? *p.resume : p.events.front().id;
  }
  std::sort(found.begin(), found.end());
  EXPECT_EQ(found, (std::vector<uint64_t>{3, n - 1}));
}
