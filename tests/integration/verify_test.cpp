// The verification endpoints over real HTTP (docs/api.md §5).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

struct Fixture {
  std::string org, admin, secret, secret_id, publishable;
};

Fixture setup(const ServerProcess& s) {
  Fixture x;
  const Tenant t = make_tenant(s, "Verify");
  x.org = t.id;
  x.admin = t.key;
  const CreatedKey sk =
      make_key(s, t, R"({"name":"svc","scopes":["api_keys:read","sessions:list"]})");
  x.secret = sk.value;
  x.secret_id = sk.id;
  x.publishable =
      make_key(s, t,
               R"({"name":"web","type":"publishable","allowed_origins":["https://*.example.com"]})")
          .value;
  return x;
}

std::string verify_code(const ServerProcess& s, const std::string& caller,
                        const std::string& body) {
  auto r = http(s.port(), "POST", "/v1/keys/verify", body, caller);
  EXPECT_EQ(r.status, 200) << r.body;
  return str(parse_json(r.body), "/data/code");
}

}  // namespace

TEST(ForwardAuth, AValidKeyGets200WithIdentityHeadersAndNoBody) {
  ServerProcess s;
  Fixture x = setup(s);
  auto r = http(s.port(), "GET", "/v1/auth", "",
                std::vector<std::string>{"X-API-Key: " + x.secret,
                                         "X-Required-Scopes: api_keys:read, sessions:list"});
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.header("x-keygate-organization-id"), x.org);
  EXPECT_EQ(r.header("x-keygate-key-id"), x.secret_id);
  EXPECT_EQ(r.header("x-keygate-key-type"), "secret");
  EXPECT_EQ(r.header("x-keygate-environment"), "live");
  EXPECT_EQ(r.header("x-keygate-scopes"), "sessions:list,api_keys:read");
  EXPECT_EQ(r.header("x-ratelimit-limit"), "20000");
  EXPECT_FALSE(r.header("x-ratelimit-remaining").empty());
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth?scopes=api_keys%3Aread", "", x.secret).status, 200);
  EXPECT_EQ(http(s.port(), "HEAD", "/v1/auth", "", x.secret).status, 200);
  // Envoy's ext_authz asks with the checked request's own method.
  EXPECT_EQ(http(s.port(), "POST", "/v1/auth", "", x.secret).status, 200);
  EXPECT_EQ(http(s.port(), "PUT", "/v1/auth", "", x.secret).status, 200);
  EXPECT_EQ(http(s.port(), "PATCH", "/v1/auth", "", x.secret).status, 200);
  EXPECT_EQ(http(s.port(), "DELETE", "/v1/auth", "", x.secret).status, 200);
}

// docs/api.md §1.2: the key from `Authorization: Bearer` or `X-API-Key`; both present and
// different is a 400. Header names and the scheme in any case (/v1/auth reads its headers
// in one pass, handlers/verify.cpp).
TEST(ForwardAuth, ReadsTheKeyFromEitherHeaderInAnyCaseAndRefusesTwoDifferentKeys) {
  ServerProcess s;
  Fixture x = setup(s);
  auto answer = [&](std::vector<std::string> headers) {
    auto r = http(s.port(), "GET", "/v1/auth", "", headers);
    return std::to_string(r.status) + " " + r.header("x-keygate-code");
  };
  EXPECT_EQ(answer({"AUTHORIZATION: bearer " + x.secret}), "200 ");
  EXPECT_EQ(answer({"x-api-key: " + x.secret}), "200 ");
  EXPECT_EQ(answer({"Authorization: Bearer " + x.secret, "X-API-Key: " + x.secret}), "200 ");
  EXPECT_EQ(answer({"Authorization: Bearer " + x.secret, "X-API-Key: " + x.publishable}),
            "400 MALFORMED");
  EXPECT_EQ(answer({"Authorization: Basic " + x.secret}), "401 MALFORMED");
}

// The header is formatted once per scope set and reused (handlers/verify.cpp): keys with
// different sets, one after the other on one reactor thread, each get their own list, and a
// key's new scopes show at once.
TEST(ForwardAuth, TheScopesHeaderFollowsEachKeyAndItsUpdates) {
  ServerProcess s({"--threads", "1"});
  Fixture x = setup(s);
  const CreatedKey other =
      make_key(s, make_tenant(s, "Other"), R"({"name":"o","scopes":["certificates:read"]})");
  auto scopes = [&](const std::string& key) {
    auto r = http(s.port(), "GET", "/v1/auth", "", key);
    EXPECT_EQ(r.status, 200) << key;
    return r.header("x-keygate-scopes");
  };
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(scopes(x.secret), "sessions:list,api_keys:read");
    EXPECT_EQ(scopes(other.value), "certificates:read");
    // A publishable key has no scopes: the header is there, empty.
    auto p = http(
        s.port(), "GET", "/v1/auth", "",
        std::vector<std::string>{"X-API-Key: " + x.publishable, "Origin: https://app.example.com"});
    EXPECT_EQ(p.status, 200);
    EXPECT_EQ(p.headers.count("x-keygate-scopes"), 1u);
    EXPECT_EQ(p.header("x-keygate-scopes"), "");
  }
  ASSERT_EQ(http(s.port(), "PATCH", "/v1/organizations/" + x.org + "/api-keys/" + x.secret_id,
                 R"({"scopes":["api_keys:verify"]})", x.admin)
                .status,
            200);
  EXPECT_EQ(scopes(x.secret), "api_keys:verify");
  EXPECT_EQ(scopes(other.value), "certificates:read");
}

TEST(ForwardAuth, FailuresMapTo401And403WithTheirCodes) {
  ServerProcess s;
  Fixture x = setup(s);
  auto code = [&](const HttpResponse& r) {
    return std::to_string(r.status) + " " + r.header("x-keygate-code");
  };
  auto missing = http(s.port(), "GET", "/v1/auth");
  EXPECT_EQ(code(missing), "401 MALFORMED");
  EXPECT_EQ(missing.header("www-authenticate"), "Bearer");
  EXPECT_EQ(code(http(s.port(), "GET", "/v1/auth", "", std::string("sk_live_garbage"))),
            "401 MALFORMED");
  std::string unknown = x.secret;
  EXPECT_EQ(code(http(s.port(), "GET", "/v1/auth", "",
                      std::string("sk_live_0000000000000000000000000000000000") + "XXXXXX")),
            "401 MALFORMED");
  EXPECT_EQ(code(http(s.port(), "GET", "/v1/auth?scopes=certificates:manage", "", x.secret)),
            "403 INSUFFICIENT_SCOPE");
  EXPECT_EQ(code(http(s.port(), "GET", "/v1/auth?scopes=made:up", "", x.secret)),
            "403 INSUFFICIENT_SCOPE");
  EXPECT_EQ(code(http(s.port(), "GET", "/v1/auth", "",
                      std::vector<std::string>{"X-API-Key: " + x.publishable,
                                               "Origin: https://evil.com"})),
            "403 ORIGIN_NOT_ALLOWED");
  EXPECT_EQ(code(http(s.port(), "GET", "/v1/auth", "",
                      std::vector<std::string>{"X-API-Key: " + x.publishable,
                                               "Origin: https://app.example.com"})),
            "200 ");
  ASSERT_EQ(http(s.port(), "PATCH", "/v1/organizations/" + x.org, R"({"status":"suspended"})",
                 s.root_key())
                .status,
            200);
  EXPECT_EQ(code(http(s.port(), "GET", "/v1/auth", "", x.secret)), "403 ORGANIZATION_SUSPENDED");
}

TEST(VerifyEndpoint, ReportsEveryCodeAndTheIdentityOfValidKeys) {
  ServerProcess s;
  Fixture x = setup(s);
  auto r = http(s.port(), "POST", "/v1/keys/verify",
                R"({"key":")" + x.secret + R"(","scopes":["api_keys:read"]})", x.admin);
  ASSERT_EQ(r.status, 200);
  auto j = parse_json(r.body);
  EXPECT_EQ(str(j, "/data/valid"), "true");
  EXPECT_EQ(str(j, "/data/code"), "VALID");
  EXPECT_EQ(str(j, "/data/key_id"), x.secret_id);
  EXPECT_EQ(str(j, "/data/organization_id"), x.org);
  EXPECT_EQ(str(j, "/data/type"), "secret");
  EXPECT_EQ(str(j, "/data/expires_at"), "null");
  EXPECT_EQ(str(j, "/data/rate_limit/limit"), "20000");
  EXPECT_EQ(verify_code(s, x.admin, R"({"key":"nope"})"), "MALFORMED");
  EXPECT_EQ(
      verify_code(s, x.admin, R"({"key":")" + x.secret + R"(","scopes":["certificates:read"]})"),
      "INSUFFICIENT_SCOPE");
  EXPECT_EQ(
      verify_code(s, x.admin, R"({"key":")" + x.publishable + R"(","origin":"https://evil.com"})"),
      "ORIGIN_NOT_ALLOWED");
  EXPECT_EQ(verify_code(s, x.admin,
                        R"({"key":")" + x.publishable +
                            R"(","origin":"https://a.example.com","scopes":["sessions:list"]})"),
            "INSUFFICIENT_SCOPE");
  auto bad =
      parse_json(http(s.port(), "POST", "/v1/keys/verify",
                      R"({"key":")" + x.secret + R"(","scopes":["certificates:read"]})", x.admin)
                     .body);
  EXPECT_EQ(str(bad, "/data/valid"), "false");
  EXPECT_EQ(str(bad, "/data/type"), "<missing>");  // only valid, code and the ids when not valid
  EXPECT_EQ(str(bad, "/data/key_id"), x.secret_id);
  http(s.port(), "DELETE", "/v1/organizations/" + x.org + "/api-keys/" + x.secret_id, "", x.admin);
  EXPECT_EQ(verify_code(s, x.admin, R"({"key":")" + x.secret + R"("})"), "REVOKED");
  EXPECT_EQ(verify_code(s, s.root_key(),
                        R"({"key":")" + x.publishable + R"(","origin":"https://b.example.com"})"),
            "VALID");
  // Bad input to the endpoint itself is a 400.
  auto r400 = http(s.port(), "POST", "/v1/keys/verify", R"({"scopes":[]})", x.admin);
  EXPECT_EQ(r400.status, 400);
  EXPECT_EQ(str(parse_json(r400.body), "/error/param"), "key");
  EXPECT_EQ(http(s.port(), "POST", "/v1/keys/verify", R"({"key":"a","extra":1})", x.admin).status,
            400);
}

// Several connections hammer /v1/auth with a key; once DELETE has returned, no request that
// starts afterwards succeeds.
TEST(Revocation, NoVerificationStartedAfterTheDeleteReturnedSucceeds) {
  ServerProcess s({"--threads", "2", "--secret-rate", "0"});
  Fixture x = setup(s);
  std::atomic<bool> revoked{false}, stop{false};
  std::atomic<int> violations{0}, before{0}, after{0};
  std::vector<std::thread> hammer;
  for (int t = 0; t < 4; ++t)
    hammer.emplace_back([&] {
      while (!stop.load()) {
        const bool was_revoked = revoked.load(std::memory_order_acquire);  // read before sending
        auto r = http(s.port(), "GET", "/v1/auth", "", x.secret);
        if (was_revoked) {
          ++after;
          if (r.status == 200) ++violations;
        } else {
          ++before;
        }
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto d = http(s.port(), "DELETE", "/v1/organizations/" + x.org + "/api-keys/" + x.secret_id, "",
                x.admin);
  ASSERT_EQ(d.status, 200);
  revoked.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (auto& t : hammer) t.join();
  EXPECT_GT(before.load(), 10);
  EXPECT_GT(after.load(), 10);
  EXPECT_EQ(violations.load(), 0);
}
