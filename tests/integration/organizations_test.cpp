// Organizations over real HTTP (docs/api.md §3), authentication (section 1 and 2).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "support/harness.hpp"

using namespace keygate::testing;

namespace {
std::string body_error(const HttpResponse& r) {
  return str(parse_json(r.body), "/error/code");
}
}  // namespace

TEST(Organizations, RootCreatesAnOrganizationWithItsFirstSecretKeyShownOnce) {
  ServerProcess s;
  auto r = http(s.port(), "POST", "/v1/organizations", R"({"name":"Acme Corp"})", s.root_key());
  ASSERT_EQ(r.status, 201) << r.body;
  auto j = parse_json(r.body);
  EXPECT_EQ(str(j, "/data/object"), "organization");
  EXPECT_EQ(str(j, "/data/slug"), "acme-corp");
  EXPECT_EQ(str(j, "/data/status"), "active");
  EXPECT_EQ(str(j, "/data/created_at").back(), 'Z');
  EXPECT_EQ(str(j, "/data/api_key/object"), "api_key");
  const std::string key = str(j, "/data/api_key/revealed_key");
  EXPECT_EQ(key.substr(0, 8), "sk_live_");
  EXPECT_EQ(str(j, "/meta/request_id"), r.header("x-request-id"));
  // Never again: the key listing shows only its preview.
  const std::string id = str(j, "/data/id");
  auto list = http(s.port(), "GET", "/v1/organizations/" + id + "/api-keys", "", key);
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(list.body.find(key), std::string::npos);
  EXPECT_EQ(list.body.find("revealed_key"), std::string::npos);
  EXPECT_EQ(s.log().find(key), std::string::npos);  // nor in a log line
}

TEST(Organizations, CreationWithoutAKeyNeedsOpenSignup) {
  ServerProcess closed;
  auto r = http(closed.port(), "POST", "/v1/organizations", R"({"name":"x"})");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(body_error(r), "missing_api_key");
  ServerProcess open({"--open-signup"});
  EXPECT_EQ(http(open.port(), "POST", "/v1/organizations", R"({"name":"x"})").status, 201);
}

TEST(Organizations, InputIsValidatedFieldByField) {
  ServerProcess s;
  auto post = [&](const std::string& b) {
    return http(s.port(), "POST", "/v1/organizations", b, s.root_key());
  };
  auto r = post("not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_error(r), "invalid_json");
  r = post(R"({"slug":"x"})");
  EXPECT_EQ(body_error(r), "missing_field");
  EXPECT_EQ(str(parse_json(r.body), "/error/param"), "name");
  r = post(R"({"name":5})");
  EXPECT_EQ(body_error(r), "invalid_field");
  EXPECT_EQ(str(parse_json(r.body), "/error/param"), "name");
  r = post(R"({"name":"a","color":"red"})");
  EXPECT_EQ(body_error(r), "unknown_field");
  EXPECT_EQ(str(parse_json(r.body), "/error/param"), "color");
  EXPECT_EQ(body_error(post(R"({"name":"a","slug":"Not Valid"})")), "invalid_field");
  EXPECT_EQ(body_error(post(R"({"name":")" + std::string(201, 'a') + "\"}")), "invalid_field");
  EXPECT_EQ(body_error(post("[1,2]")), "invalid_json");
  EXPECT_EQ(body_error(post("{\"name\":\"a\"} trailing")), "invalid_json");
  EXPECT_EQ(body_error(post("{\"name\":\"\xff\"}")), "invalid_json");  // not UTF-8
  EXPECT_EQ(post(R"({"name":"Tripwire Production","slug":"tripwire-production"})").status, 201);
}

TEST(Organizations, SlugsAreUniqueUnderConcurrency) {
  ServerProcess s;
  std::atomic<int> created{0}, taken{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        auto r = http(s.port(), "POST", "/v1/organizations",
                      R"({"name":"Same Name )" + std::to_string(t) + "\",\"slug\":\"same\"}",
                      s.root_key());
        if (r.status == 201)
          ++created;
        else if (r.status == 409 && body_error(r) == "slug_taken")
          ++taken;
        else
          ++other;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(taken.load(), 999);
  EXPECT_EQ(other.load(), 0);
}

TEST(Organizations, GetPatchAndSuspend) {
  ServerProcess s;
  auto c =
      parse_json(http(s.port(), "POST", "/v1/organizations", R"({"name":"A"})", s.root_key()).body);
  const std::string id = str(c, "/data/id"), key = str(c, "/data/api_key/revealed_key");
  auto g = http(s.port(), "GET", "/v1/organizations/" + id, "", key);
  ASSERT_EQ(g.status, 200);
  EXPECT_EQ(str(parse_json(g.body), "/data/name"), "A");
  auto p = http(s.port(), "PATCH", "/v1/organizations/" + id, R"({"name":"B","slug":"bee"})", key);
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(str(parse_json(p.body), "/data/slug"), "bee");
  EXPECT_EQ(
      body_error(http(s.port(), "PATCH", "/v1/organizations/" + id, R"({"status":"gone"})", key)),
      "invalid_field");
  EXPECT_EQ(
      body_error(http(s.port(), "PATCH", "/v1/organizations/" + id, R"({"id":"org_x"})", key)),
      "immutable_field");
  ASSERT_EQ(
      http(s.port(), "PATCH", "/v1/organizations/" + id, R"({"status":"suspended"})", s.root_key())
          .status,
      200);
  auto refused = http(s.port(), "GET", "/v1/organizations/" + id, "", key);
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(body_error(refused), "organization_suspended");
  ASSERT_EQ(
      http(s.port(), "PATCH", "/v1/organizations/" + id, R"({"status":"active"})", s.root_key())
          .status,
      200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations/" + id, "", key).status, 200);
}

TEST(Organizations, ListShowsATenantItsOwnAndRootEveryPageByPage) {
  ServerProcess s;
  std::vector<std::string> ids;
  std::string tenant_key;
  for (int i = 0; i < 5; ++i) {
    auto c = parse_json(http(s.port(), "POST", "/v1/organizations",
                             R"({"name":"Org )" + std::to_string(i) + "\"}", s.root_key())
                            .body);
    ids.push_back(str(c, "/data/id"));
    if (i == 2) tenant_key = str(c, "/data/api_key/revealed_key");
  }
  auto mine = parse_json(http(s.port(), "GET", "/v1/organizations", "", tenant_key).body);
  EXPECT_EQ(str(mine, "/data/0/id"), ids[2]);
  EXPECT_EQ(str(mine, "/data/1"), "<missing>");
  EXPECT_EQ(str(mine, "/pagination/has_more"), "false");
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 5; ++page) {
    auto r = http(s.port(), "GET",
                  "/v1/organizations?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor), "",
                  s.root_key());
    ASSERT_EQ(r.status, 200);
    auto j = parse_json(r.body);
    for (int i = 0; i < 2; ++i)
      if (str(j, ("/data/" + std::to_string(i) + "/id").c_str()) != "<missing>")
        seen.push_back(str(j, ("/data/" + std::to_string(i) + "/id").c_str()));
    if (str(j, "/pagination/has_more") == "false") {
      EXPECT_EQ(str(j, "/pagination/next_cursor"), "null");
      break;
    }
    cursor = str(j, "/pagination/next_cursor");
  }
  EXPECT_EQ(seen, ids);  // ascending by creation, each once
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations?limit=0", "", s.root_key()).status, 400);
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations?limit=201", "", s.root_key()).status, 400);
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations?cursor=nonsense", "", s.root_key()).status,
            400);
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations?after=" + ids[3], "", s.root_key()).status,
            200);
}

TEST(Authentication, CredentialsAreReadFromBearerOrXApiKey) {
  ServerProcess s;
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations", "",
                 std::vector<std::string>{"X-API-Key: " + s.root_key()})
                .status,
            200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations", "",
                 std::vector<std::string>{"Authorization: Bearer " + s.root_key()})
                .status,
            200);
  auto both = http(s.port(), "GET", "/v1/organizations", "",
                   {"Authorization: Bearer " + s.root_key(), "X-API-Key: other"});
  EXPECT_EQ(both.status, 400);
  auto none = http(s.port(), "GET", "/v1/organizations");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(body_error(none), "missing_api_key");
  auto bad = http(s.port(), "GET", "/v1/organizations", "", std::string("sk_live_nope"));
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(body_error(bad), "invalid_api_key");
  EXPECT_EQ(bad.body.find("sk_live_nope"),
            std::string::npos);  // a secret never appears in an error
}

TEST(Idempotency, ARepeatedPostReturnsTheFirstResponseByteForByte) {
  ServerProcess s;
  const std::vector<std::string> h = {"Authorization: Bearer " + s.root_key(),
                                      "Idempotency-Key: abc-1"};
  auto first = http(s.port(), "POST", "/v1/organizations", R"({"name":"Once"})", h);
  ASSERT_EQ(first.status, 201);
  auto again = http(s.port(), "POST", "/v1/organizations", R"({"name":"Once"})", h);
  EXPECT_EQ(again.status, 201);
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.header("x-request-id"), first.header("x-request-id"));
  auto list = parse_json(http(s.port(), "GET", "/v1/organizations", "", s.root_key()).body);
  EXPECT_EQ(str(list, "/data/1"), "<missing>");  // created once
  auto different = http(s.port(), "POST", "/v1/organizations", R"({"name":"Twice"})", h);
  EXPECT_EQ(different.status, 409);
  EXPECT_EQ(body_error(different), "idempotency_key_reused");
}
