// The idempotency store's promises (handlers/idempotency.hpp, docs/security.md): an answer
// is replayed only to the principal that asked, the store keeps to its byte budget, and
// when full the largest organization gives way, never one within its fair share.
#include "handlers/idempotency.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace keygate;
using handlers::Idempotency;

namespace {

std::array<uint8_t, 32> fp(uint8_t tag) {
  std::array<uint8_t, 32> f;
  f.fill(tag);
  return f;
}

// Begins and finishes one request of `owner` under `key` with a body of `bytes`.
void remember(Idempotency& store, const Idempotency::Owner& owner, const std::string& key,
              size_t bytes = 100, uint64_t now = 1) {
  net::Response res;
  ASSERT_EQ(store.begin(owner, key, fp(1), now, res), Idempotency::Begin::fresh);
  res.status = 201;
  res.body.assign(bytes, 'x');
  store.finish(owner, key, res, true);
}

bool remembered(Idempotency& store, const Idempotency::Owner& owner, const std::string& key) {
  net::Response res;
  const auto b = store.begin(owner, key, fp(1), 2, res);
  if (b == Idempotency::Begin::fresh) store.finish(owner, key, res, false);  // leave no trace
  return b == Idempotency::Begin::replay;
}

const core::Id kOrgA{1, 1}, kOrgB{2, 2}, kKeyA{10, 1}, kKeyA2{11, 1}, kKeyB{20, 2};

}  // namespace

TEST(Idempotency, AnAnswerIsReplayedOnlyToThePrincipalThatAsked) {
  Idempotency store;
  remember(store, {kOrgA, kKeyA}, "k");
  EXPECT_TRUE(remembered(store, {kOrgA, kKeyA}, "k"));
  EXPECT_FALSE(remembered(store, {kOrgA, kKeyA2}, "k")) << "another key of the same tenant";
  EXPECT_FALSE(remembered(store, {kOrgB, kKeyB}, "k"));
  EXPECT_FALSE(remembered(store, {}, "k")) << "the root key";
  net::Response res;
  EXPECT_EQ(store.begin({kOrgA, kKeyA}, "k", fp(2), 2, res), Idempotency::Begin::reused);
}

TEST(Idempotency, ALargeErrorIsNotKeptAndAFailureIsForgotten) {
  Idempotency store;
  net::Response res;
  ASSERT_EQ(store.begin({kOrgA, kKeyA}, "big", fp(1), 1, res), Idempotency::Begin::fresh);
  res.status = 400;
  res.body.assign(Idempotency::kMaxErrorBytes + 1, 'x');
  store.finish({kOrgA, kKeyA}, "big", res, true);
  EXPECT_FALSE(remembered(store, {kOrgA, kKeyA}, "big"));
  ASSERT_EQ(store.begin({kOrgA, kKeyA}, "503", fp(1), 1, res), Idempotency::Begin::fresh);
  store.finish({kOrgA, kKeyA}, "503", res, false);
  EXPECT_FALSE(remembered(store, {kOrgA, kKeyA}, "503"));
  EXPECT_EQ(store.entries(), 0u);
  EXPECT_EQ(store.bytes(), 0u);
}

TEST(Idempotency, TheStoreKeepsToItsBudgetAndTheLargestTenantGivesWay) {
  constexpr size_t kBudget = 1 << 20;
  Idempotency store(kBudget);
  // B holds a little, well within a fair share (half the budget with two tenants).
  for (int i = 0; i < 4; ++i) remember(store, {kOrgB, kKeyB}, "b" + std::to_string(i), 10'000);
  // A floods the store with many times the budget.
  for (int i = 0; i < 400; ++i) remember(store, {kOrgA, kKeyA}, "a" + std::to_string(i), 10'000);
  EXPECT_LE(store.bytes(), kBudget);
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(remembered(store, {kOrgB, kKeyB}, "b" + std::to_string(i)))
        << "a tenant within its share lost an answer to another";
  EXPECT_TRUE(remembered(store, {kOrgA, kKeyA}, "a399")) << "A's newest stays";
  EXPECT_FALSE(remembered(store, {kOrgA, kKeyA}, "a0")) << "A's oldest went";
}

TEST(Idempotency, AnswersAreForgottenAfterADay) {
  Idempotency store;
  remember(store, {kOrgA, kKeyA}, "k", 10, 1'000);
  net::Response res;
  EXPECT_EQ(store.begin({kOrgA, kKeyA}, "k", fp(1), 1'000 + Idempotency::kTtlMs, res),
            Idempotency::Begin::fresh);
}
