// The idempotency store's promises (handlers/idempotency.hpp, docs/security.md): an answer
// is replayed only to the principal that asked, the store keeps to its byte budget, and
// when full the largest organization gives way, never one within its fair share.
#include "handlers/idempotency.hpp"

#include <gtest/gtest.h>

#include <string>

#include "handlers/shared_idempotency.hpp"

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

// The fleet's sealed answers (handlers/shared_idempotency.hpp): only the key they were
// sealed with, for the name they were filed under, opens them; a changed byte is refused.
namespace keygate::handlers {
namespace {

TEST(SharedIdempotency, AnAnswerOpensOnlyWithItsCredentialAndName) {
  net::Response res;
  res.status = 201;
  res.add_header("X-Request-Id", "req_1");
  res.body = R"({"data":{"revealed_key":"sk_live_secret"}})";
  const auto key = seal_key("sk_live_caller", "retry-1");
  const std::string name = "idem/abc";
  const std::string sealed = seal_answer(res, key, name);
  ASSERT_FALSE(sealed.empty());
  EXPECT_EQ(sealed.find("sk_live_secret"), std::string::npos) << "no secret in the clear";
  net::Response out;
  ASSERT_TRUE(open_answer(sealed, key, name, out));
  EXPECT_EQ(out.status, 201);
  EXPECT_EQ(out.body, res.body);
  EXPECT_EQ(out.headers, res.headers);
  EXPECT_EQ(out.content_type, "application/json");
  EXPECT_FALSE(open_answer(sealed, seal_key("sk_live_other", "retry-1"), name, out));
  EXPECT_FALSE(open_answer(sealed, seal_key("sk_live_caller", "retry-2"), name, out));
  EXPECT_FALSE(open_answer(sealed, key, "idem/abd", out));
  std::string tampered = sealed;
  tampered[20] ^= 1;
  EXPECT_FALSE(open_answer(tampered, key, name, out));
  EXPECT_FALSE(open_answer(sealed.substr(0, 10), key, name, out));
  EXPECT_NE(seal_answer(res, key, name), sealed) << "a fresh nonce each time";
}

TEST(SharedIdempotency, NamesBelongToAPrincipalAndAKey) {
  Principal a, b, root;
  a.key = core::Id{1, 2};
  b.key = core::Id{1, 3};
  root.root = true;
  EXPECT_EQ(shared_name(a, "k"), shared_name(a, "k"));
  EXPECT_NE(shared_name(a, "k"), shared_name(b, "k"));
  EXPECT_NE(shared_name(a, "k"), shared_name(a, "k2"));
  EXPECT_NE(shared_name(root, "k"), shared_name(a, "k"));
  EXPECT_EQ(shared_name(a, "k").find("idem/"), 0u);
  EXPECT_EQ(shared_name(a, "k").size(), 5u + 64u);
}

}  // namespace
}  // namespace keygate::handlers
