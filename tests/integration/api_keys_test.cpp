// API keys over real HTTP (docs/api.md §2 and §4): the whole life of a key, tenancy,
// scopes, the removed scope, rate limits.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "core/key_format.hpp"
#include "persistence/codec.hpp"
#include "persistence/record.hpp"
#include "persistence/segment.hpp"
#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

std::string error_code(const HttpResponse& r) {
  return str(parse_json(r.body), "/error/code");
}

HttpResponse auth(const ServerProcess& s, const std::string& key, const std::string& query = "") {
  return http(s.port(), "GET", "/v1/auth" + query, "", key);
}

}  // namespace

TEST(ApiKeys, TheWholeLifeOfAKey) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Life");
  const std::string base = "/v1/organizations/" + t.id + "/api-keys";
  // create a scoped key
  auto c = http(s.port(), "POST", base,
                R"({"name":"backend","scopes":["api_keys:read"],"environment":"test"})", t.key);
  ASSERT_EQ(c.status, 201) << c.body;
  auto cj = parse_json(c.body);
  const std::string id = str(cj, "/data/id"), value = str(cj, "/data/revealed_key");
  EXPECT_EQ(value.substr(0, 8), "sk_test_");
  EXPECT_EQ(str(cj, "/data/key_preview"), value.substr(value.size() - 4));
  EXPECT_EQ(str(cj, "/data/display_key"), "sk_test_\u2026" + value.substr(value.size() - 4));
  EXPECT_EQ(str(cj, "/data/status"), "active");
  EXPECT_EQ(str(cj, "/data/scopes/0"), "api_keys:read");
  for (const char* field :
       {"/data/rotated_at", "/data/revoked_at", "/data/grace_expires_at", "/data/expires_at",
        "/data/last_used_at", "/data/replaced_by", "/data/rotated_from"})
    EXPECT_EQ(str(cj, field), "null") << field;
  // use it
  EXPECT_EQ(auth(s, value).status, 200);
  EXPECT_EQ(http(s.port(), "GET", base, "", value).status, 200);  // api_keys:read
  auto denied = http(s.port(), "POST", base, R"({"name":"x"})", value);
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(error_code(denied), "missing_scope");
  auto got = parse_json(http(s.port(), "GET", base + "/" + id, "", t.key).body);
  EXPECT_NE(str(got, "/data/last_used_at"), "null");
  EXPECT_EQ(str(got, "/data/revealed_key"), "<missing>");
  // rotate with a one-second grace period
  auto r = http(s.port(), "POST", base + "/" + id + "/rotations", R"({"grace_period_seconds":1})",
                t.key);
  ASSERT_EQ(r.status, 201) << r.body;
  auto rj = parse_json(r.body);
  const std::string new_id = str(rj, "/data/id"), new_value = str(rj, "/data/revealed_key");
  EXPECT_EQ(str(rj, "/data/rotated_from"), id);
  EXPECT_EQ(str(rj, "/data/name"), "backend");
  EXPECT_EQ(str(rj, "/data/environment"), "test");
  EXPECT_EQ(str(rj, "/data/scopes/0"), "api_keys:read");
  auto old = parse_json(http(s.port(), "GET", base + "/" + id, "", t.key).body);
  EXPECT_EQ(str(old, "/data/status"), "rotating");
  EXPECT_EQ(str(old, "/data/replaced_by"), new_id);
  EXPECT_NE(str(old, "/data/grace_expires_at"), "null");
  EXPECT_EQ(auth(s, value).status, 200);  // still valid during the grace period
  EXPECT_EQ(auth(s, new_value).status, 200);
  EXPECT_EQ(error_code(http(s.port(), "POST", base + "/" + id + "/rotations", "", t.key)),
            "already_rotated");
  // grace over: expired
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  auto expired = auth(s, value);
  EXPECT_EQ(expired.status, 401);
  EXPECT_EQ(expired.header("x-keygate-code"), "EXPIRED");
  EXPECT_EQ(str(parse_json(http(s.port(), "GET", base + "/" + id, "", t.key).body), "/data/status"),
            "expired");
  EXPECT_EQ(error_code(http(s.port(), "GET", base, "", value)), "expired_api_key");
  // revoke the replacement
  auto d = http(s.port(), "DELETE", base + "/" + new_id, "", t.key);
  ASSERT_EQ(d.status, 200);
  EXPECT_EQ(str(parse_json(d.body), "/data/status"), "revoked");
  EXPECT_NE(str(parse_json(d.body), "/data/revoked_at"), "null");
  EXPECT_EQ(auth(s, new_value).header("x-keygate-code"), "REVOKED");
  EXPECT_EQ(error_code(http(s.port(), "GET", base, "", new_value)), "revoked_api_key");
  auto twice = http(s.port(), "DELETE", base + "/" + new_id, "", t.key);
  EXPECT_EQ(twice.status, 409);
  EXPECT_EQ(error_code(twice), "already_revoked");
  EXPECT_EQ(error_code(http(s.port(), "POST", base + "/" + new_id + "/rotations", "", t.key)),
            "already_revoked");
}

TEST(ApiKeys, CreateRulesAndDefaults) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Rules");
  const std::string base = "/v1/organizations/" + t.id + "/api-keys";
  auto post = [&](const std::string& b) { return http(s.port(), "POST", base, b, t.key); };
  auto full = parse_json(post(R"({"name":"all"})").body);
  EXPECT_EQ(str(full, "/data/type"), "secret");
  EXPECT_EQ(str(full, "/data/environment"), "live");
  EXPECT_EQ(str(full, "/data/scopes/16"), "certificates:manage");  // the whole set by default
  EXPECT_EQ(str(full, "/data/rate_limit/requests_per_second"), "10000");
  EXPECT_EQ(error_code(post(R"({"name":""})")), "invalid_field");
  EXPECT_EQ(error_code(post(R"({})")), "missing_field");
  EXPECT_EQ(error_code(post(R"({"name":"x","scopes":["nope"]})")), "invalid_scope");
  EXPECT_EQ(error_code(post(R"({"name":"x","scopes":["organizations:manage"]})")), "removed_scope");
  EXPECT_EQ(error_code(post(R"({"name":"x","allowed_origins":["https://a.com"]})")),
            "invalid_field");
  EXPECT_EQ(error_code(post(R"({"name":"x","type":"publishable","scopes":["api_keys:read"]})")),
            "invalid_field");
  EXPECT_EQ(error_code(post(
                R"({"name":"x","type":"publishable","allowed_origins":["https://a.com/path"]})")),
            "invalid_field");
  EXPECT_EQ(error_code(post(R"({"name":"x","type":"admin"})")), "invalid_field");
  EXPECT_EQ(error_code(post(R"({"name":"x","expires_at":"2001-01-01T00:00:00Z"})")),
            "invalid_field");
  EXPECT_EQ(error_code(post(R"({"name":"x","expires_at":"soon"})")), "invalid_field");
  // A day the month does not have is refused, not rolled over into March, and the message
  // says what was wrong.
  auto feb31 = post(R"({"name":"x","expires_at":"2037-02-31T00:00:00Z"})");
  EXPECT_EQ(error_code(feb31), "invalid_field");
  EXPECT_NE(feb31.body.find("has day 31, but 2037-02 has 28 days"), std::string::npos)
      << feb31.body;
  EXPECT_EQ(error_code(post(R"({"name":"x","expires_at":"2037-01-01T00:00:00+99:00"})")),
            "invalid_field");
  auto rl = post(R"({"name":"x","rate_limit":{"requests_per_second":1,"burst":1}})");
  EXPECT_EQ(rl.status, 400);
  EXPECT_EQ(str(parse_json(rl.body), "/error/param"), "rate_limit");
  auto pk = parse_json(
      post(R"({"name":"web","type":"publishable","allowed_origins":["https://*.example.com"]})")
          .body);
  const std::string pk_value = str(pk, "/data/revealed_key");
  EXPECT_EQ(str(pk, "/data/display_key"), pk_value);  // public by design
  EXPECT_EQ(pk_value.substr(0, 8), "pk_live_");
  // Root may set a key's rate limit.
  auto custom =
      http(s.port(), "POST", base,
           R"({"name":"x","rate_limit":{"requests_per_second":5,"burst":7}})", s.root_key());
  ASSERT_EQ(custom.status, 201) << custom.body;
  EXPECT_EQ(str(parse_json(custom.body), "/data/rate_limit/burst"), "7");
}

TEST(ApiKeys, UpdateChangesMetadataAndRefusesImmutableFields) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Upd");
  const std::string base = "/v1/organizations/" + t.id + "/api-keys";
  auto k = parse_json(http(s.port(), "POST", base, R"({"name":"a"})", t.key).body);
  const std::string id = str(k, "/data/id");
  auto p =
      http(s.port(), "PATCH", base + "/" + id, R"({"name":"b","scopes":["sessions:list"]})", t.key);
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(str(parse_json(p.body), "/data/name"), "b");
  EXPECT_EQ(str(parse_json(p.body), "/data/scopes/0"), "sessions:list");
  EXPECT_EQ(str(parse_json(p.body), "/data/scopes/1"), "<missing>");
  for (const char* f :
       {R"({"type":"publishable"})", R"({"environment":"test"})", R"({"key":"sk_live_x"})"})
    EXPECT_EQ(error_code(http(s.port(), "PATCH", base + "/" + id, f, t.key)), "immutable_field")
        << f;
  EXPECT_EQ(
      error_code(http(s.port(), "PATCH", base + "/" + id, R"({"allowed_origins":[]})", t.key)),
      "invalid_field");
  EXPECT_EQ(error_code(http(s.port(), "PATCH", base + "/" + id, R"({"colour":1})", t.key)),
            "unknown_field");
}

TEST(ApiKeys, APublishableKeyKeepsItsOriginsThroughAPatchAndARotation) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Pub");
  const std::string base = "/v1/organizations/" + t.id + "/api-keys";
  const CreatedKey pk =
      make_key(s, t, R"({"name":"web","type":"publishable","environment":"test"})");
  auto p = http(s.port(), "PATCH", base + "/" + pk.id,
                R"({"allowed_origins":["https://app.example.com"]})", t.key);
  ASSERT_EQ(p.status, 200) << p.body;
  auto pj = parse_json(p.body);
  EXPECT_EQ(str(pj, "/data/allowed_origins/0"), "https://app.example.com");
  EXPECT_EQ(str(pj, "/data/display_key"), pk.value) << "a patch keeps the public value";
  auto r = http(s.port(), "POST", base + "/" + pk.id + "/rotations",
                R"({"grace_period_seconds":60})", t.key);
  ASSERT_EQ(r.status, 201) << r.body;
  auto rj = parse_json(r.body);
  const std::string fresh = str(rj, "/data/revealed_key");
  EXPECT_EQ(str(rj, "/data/type"), "publishable");
  EXPECT_EQ(str(rj, "/data/environment"), "test");
  EXPECT_EQ(str(rj, "/data/name"), "web");
  EXPECT_EQ(str(rj, "/data/allowed_origins/0"), "https://app.example.com");
  EXPECT_EQ(str(rj, "/data/allowed_origins/1"), "<missing>");
  EXPECT_EQ(str(rj, "/data/display_key"), fresh);
  EXPECT_NE(fresh, pk.value);
  EXPECT_EQ(str(rj, "/data/rotated_from"), pk.id);
  auto old = parse_json(http(s.port(), "GET", base + "/" + pk.id, "", t.key).body);
  EXPECT_EQ(str(old, "/data/display_key"), pk.value);
  EXPECT_EQ(str(old, "/data/replaced_by"), str(rj, "/data/id"));
  EXPECT_EQ(str(old, "/data/allowed_origins/0"), "https://app.example.com");
  // The origins hold for the new value at verification.
  auto allowed =
      http(s.port(), "GET", "/v1/auth", "",
           std::vector<std::string>{"X-API-Key: " + fresh, "Origin: https://app.example.com"});
  EXPECT_EQ(allowed.status, 200);
  auto denied =
      http(s.port(), "GET", "/v1/auth", "",
           std::vector<std::string>{"X-API-Key: " + fresh, "Origin: https://evil.example"});
  EXPECT_EQ(denied.header("x-keygate-code"), "ORIGIN_NOT_ALLOWED");
}

TEST(ApiKeys, ListFiltersAndPaginates) {
  ServerProcess s;
  Tenant t = make_tenant(s, "List");
  const std::string base = "/v1/organizations/" + t.id + "/api-keys";
  for (int i = 0; i < 5; ++i)
    http(s.port(), "POST", base, R"({"name":"s)" + std::to_string(i) + "\"}", t.key);
  for (int i = 0; i < 3; ++i)
    http(s.port(), "POST", base, R"({"name":"p","type":"publishable"})", t.key);
  auto pubs = parse_json(http(s.port(), "GET", base + "?type=publishable", "", t.key).body);
  EXPECT_EQ(str(pubs, "/data/2/type"), "publishable");
  EXPECT_EQ(str(pubs, "/data/3"), "<missing>");
  int total = 0;
  std::string cursor, last;
  for (int page = 0; page < 10; ++page) {
    auto r = parse_json(
        http(s.port(), "GET",
             base + "?type=secret&limit=2" + (cursor.empty() ? "" : "&after=" + cursor), "", t.key)
            .body);
    for (int i = 0; i < 2; ++i) {
      const std::string id = str(r, ("/data/" + std::to_string(i) + "/id").c_str());
      if (id == "<missing>") continue;
      EXPECT_GT(id, last);  // ascending
      last = id;
      ++total;
    }
    if (str(r, "/pagination/has_more") == "false") break;
    cursor = str(r, "/pagination/next_cursor");
  }
  EXPECT_EQ(total, 6);  // the first key and five more
  EXPECT_EQ(http(s.port(), "GET", base + "?status=sleeping", "", t.key).status, 400);
  EXPECT_EQ(http(s.port(), "GET", base + "?environment=prod", "", t.key).status, 400);
  EXPECT_EQ(http(s.port(), "GET", base + "?cursor=key_bad", "", t.key).status, 400);
}

// Every endpoint, given another organization's ids, answers 404 and changes nothing.
TEST(Tenancy, AnotherOrganizationsIdsAreNotFoundOnEveryEndpoint) {
  ServerProcess s;
  Tenant a = make_tenant(s, "Alpha"), b = make_tenant(s, "Beta");
  auto bk = parse_json(
      http(s.port(), "POST", "/v1/organizations/" + b.id + "/api-keys", R"({"name":"b"})", b.key)
          .body);
  const std::string b_key_id = str(bk, "/data/id"), b_key_value = str(bk, "/data/revealed_key");
  const std::string b_base = "/v1/organizations/" + b.id;
  const std::string mixed =
      "/v1/organizations/" + a.id + "/api-keys/" + b_key_id;  // A's path, B's key
  struct Call {
    const char* method;
    std::string path;
    std::string body;
  };
  const Call calls[] = {
      {"GET", b_base, ""},
      {"PATCH", b_base, R"({"name":"pwned"})"},
      {"POST", b_base + "/api-keys", R"({"name":"x"})"},
      {"GET", b_base + "/api-keys", ""},
      {"GET", b_base + "/api-keys/" + b_key_id, ""},
      {"PATCH", b_base + "/api-keys/" + b_key_id, R"({"name":"x"})"},
      {"DELETE", b_base + "/api-keys/" + b_key_id, ""},
      {"POST", b_base + "/api-keys/" + b_key_id + "/rotations", ""},
      {"GET", mixed, ""},
      {"PATCH", mixed, R"({"name":"x"})"},
      {"DELETE", mixed, ""},
      {"POST", mixed + "/rotations", ""},
  };
  for (const Call& c : calls) {
    auto r = http(s.port(), c.method, c.path, c.body, a.key);
    EXPECT_EQ(r.status, 404) << c.method << " " << c.path << " " << r.body;
    EXPECT_EQ(error_code(r), "not_found");
  }
  // Verification by A of B's key: NOT_FOUND, without B's ids.
  auto v = parse_json(
      http(s.port(), "POST", "/v1/keys/verify", R"({"key":")" + b_key_value + "\"}", a.key).body);
  EXPECT_EQ(str(v, "/data/code"), "NOT_FOUND");
  EXPECT_EQ(str(v, "/data/key_id"), "<missing>");
  // Nothing changed.
  auto still = parse_json(http(s.port(), "GET", b_base + "/api-keys/" + b_key_id, "", b.key).body);
  EXPECT_EQ(str(still, "/data/name"), "b");
  EXPECT_EQ(str(still, "/data/status"), "active");
  EXPECT_EQ(str(parse_json(http(s.port(), "GET", b_base, "", b.key).body), "/data/name"), "Beta");
}

TEST(Scopes, PublishableKeysCannotManageAndSecretKeysNeedTheScope) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Scoped");
  const std::string base = "/v1/organizations/" + t.id + "/api-keys";
  const std::string pk = str(
      parse_json(http(s.port(), "POST", base, R"({"name":"p","type":"publishable"})", t.key).body),
      "/data/revealed_key");
  auto r = http(s.port(), "GET", base, "", pk);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(error_code(r), "publishable_key_not_allowed");
  const std::string narrow = str(
      parse_json(
          http(s.port(), "POST", base, R"({"name":"n","scopes":["sessions:read"]})", t.key).body),
      "/data/revealed_key");
  EXPECT_EQ(error_code(http(s.port(), "GET", "/v1/organizations/" + t.id, "", narrow)),
            "missing_scope");
  EXPECT_EQ(error_code(http(s.port(), "GET", base, "", narrow)), "missing_scope");
  EXPECT_EQ(error_code(http(s.port(), "POST", "/v1/keys/verify", R"({"key":"x"})", narrow)),
            "missing_scope");
}

TEST(RateLimits, EveryAuthenticatedRequestCountsAndExcessGets429WithRetryAfter) {
  ServerProcess s({"--secret-rate", "1", "--secret-burst", "3"});
  Tenant t = make_tenant(s, "Limited");
  int ok = 0;
  HttpResponse last;
  for (int i = 0; i < 5; ++i) {
    last = http(s.port(), "GET", "/v1/organizations/" + t.id, "", t.key);
    ok += last.status == 200;
  }
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(last.status, 429);
  EXPECT_EQ(error_code(last), "rate_limited");
  EXPECT_GE(std::stoi(last.header("retry-after")), 1);
  auto a = auth(s, t.key);
  EXPECT_EQ(a.status, 429);
  EXPECT_EQ(a.header("x-keygate-code"), "RATE_LIMITED");
  EXPECT_FALSE(a.header("retry-after").empty());
  // The root key is not limited.
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(http(s.port(), "GET", "/v1/organizations", "", s.root_key()).status, 200);
}

// A key that still carries organizations:manage (migrated data, written straight into the
// log here) is refused by organization endpoints until it is rotated.
TEST(Scopes, TheRemovedScopeRequiresRotation) {
  using namespace keygate;
  const std::string dir = make_temp_dir() + "/data";
  std::filesystem::create_directories(dir);
  const std::string value = core::generate_key(core::KeyType::secret, core::Environment::live);
  std::string org_id;
  {
    persistence::DataDir dd(dir);
    persistence::Segment seg;
    std::string err, buf, payload;
    ASSERT_TRUE(persistence::Segment::create(dd, 0, seg, err)) << err;
    core::IdGenerator ids;
    core::Organization o;
    o.id = ids.next(1'700'000'000'000);
    o.name = "Old";
    o.slug = "old";
    persistence::encode(o, payload);
    persistence::append_record(buf, persistence::RecordType::organization, payload);
    core::ApiKey k;
    k.id = ids.next(1'700'000'000'000);
    k.organization_id = o.id;
    std::copy_n(value.end() - 4, 4, k.preview);
    k.name = "legacy";
    k.scopes = core::kLegacyScope | core::bit(core::Scope::api_keys_manage) |
               core::bit(core::Scope::api_keys_read);
    k.created_ms = 1'700'000'000'000;
    payload.clear();
    persistence::encode(core::hash_key(value), k, 0, payload);
    persistence::append_record(buf, persistence::RecordType::api_key, payload);
    ASSERT_TRUE(seg.append(buf, 2, err) && seg.sync(err)) << err;
    org_id = core::to_string(core::IdKind::organization, o.id);
  }
  ServerProcess s({}, dir);
  auto r = http(s.port(), "GET", "/v1/organizations/" + org_id, "", value);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(error_code(r), "legacy_scope_requires_rotation");
  auto list = parse_json(
      http(s.port(), "GET", "/v1/organizations/" + org_id + "/api-keys", "", value).body);
  const std::string key_id = str(list, "/data/0/id");
  EXPECT_NE(list.at_pointer("/data/0/scopes").get_array().size(), 0u);
  auto rot =
      http(s.port(), "POST", "/v1/organizations/" + org_id + "/api-keys/" + key_id + "/rotations",
           R"({"grace_period_seconds":0})", value);
  ASSERT_EQ(rot.status, 201) << rot.body;
  const std::string fresh = str(parse_json(rot.body), "/data/revealed_key");
  EXPECT_EQ(rot.body.find("organizations:manage"), std::string::npos);
  EXPECT_NE(rot.body.find("organizations:update"), std::string::npos);
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations/" + org_id, "", fresh).status, 200);
  s.stop();
  remove_tree(std::filesystem::path(dir).parent_path());
}
