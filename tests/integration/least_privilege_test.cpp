// Least privilege and hostile tenants over real HTTP (docs/security.md): scopes only narrow,
// idempotent answers belong to one principal, every list and free-text field has a bound,
// the operator's per-organization bounds hold, flags have ranges, and what a gateway
// forwards is taken only as docs/api.md §6 says.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "support/certs.hpp"
#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

std::string error_code(const HttpResponse& r) {
  return str(parse_json(r.body), "/error/code");
}

std::set<std::string> scopes_of(const HttpResponse& r) {
  std::set<std::string> out;
  for (auto s : parse_json(r.body)["data"]["scopes"].get_array())
    out.insert(std::string(s.get_string().value()));
  return out;
}

std::string keys_path(const Tenant& t) {
  return "/v1/organizations/" + t.id + "/api-keys";
}

// A key of `t` holding only `scopes` (a JSON array's elements).
CreatedKey narrow_key(const ServerProcess& s, const Tenant& t, const std::string& scopes) {
  return make_key(s, t, R"({"name":"narrow","scopes":[)" + scopes + "]}");
}

}  // namespace

// A key holding only api_keys:manage (the finding: it got all 17 scopes, or any it named).
TEST(LeastPrivilege, AKeyCreatesKeysWithOnlyTheScopesItHolds) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Narrow");
  const CreatedKey manager = narrow_key(s, t, R"("api_keys:manage")");

  auto omitted = http(s.port(), "POST", keys_path(t), R"({"name":"child"})", manager.value);
  ASSERT_EQ(omitted.status, 201) << omitted.body;
  EXPECT_EQ(scopes_of(omitted), std::set<std::string>{"api_keys:manage"})
      << "omitted scopes are the caller's own, not every scope";

  auto wider = http(s.port(), "POST", keys_path(t),
                    R"({"name":"child","scopes":["certificates:manage"]})", manager.value);
  EXPECT_EQ(wider.status, 403) << wider.body;
  EXPECT_EQ(error_code(wider), "insufficient_scope");
  EXPECT_NE(wider.body.find("certificates:manage"), std::string::npos) << "names what is missing";

  auto same = http(s.port(), "POST", keys_path(t),
                   R"({"name":"child","scopes":["api_keys:manage"]})", manager.value);
  EXPECT_EQ(same.status, 201) << same.body;
  // A publishable key carries no scopes: any key that manages keys may make one.
  EXPECT_EQ(
      http(s.port(), "POST", keys_path(t), R"({"name":"web","type":"publishable"})", manager.value)
          .status,
      201);

  // The organization's admin key (every scope) still gets every scope by default.
  auto full = http(s.port(), "POST", keys_path(t), R"({"name":"admin2"})", t.key);
  ASSERT_EQ(full.status, 201);
  EXPECT_EQ(scopes_of(full).size(), 17u);
}

TEST(LeastPrivilege, AKeyCannotWidenItselfOrActOnAWiderKey) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Widen");
  const CreatedKey manager = narrow_key(s, t, R"("api_keys:manage","api_keys:read")");
  const std::string self = keys_path(t) + "/" + manager.id;

  auto widen = http(s.port(), "PATCH", self,
                    R"({"scopes":["api_keys:manage","organizations:update"]})", manager.value);
  EXPECT_EQ(widen.status, 403) << widen.body;
  EXPECT_EQ(error_code(widen), "insufficient_scope");
  EXPECT_NE(widen.body.find("organizations:update"), std::string::npos);

  // The organization's first key holds every scope: the narrow key may not touch it.
  auto list = parse_json(http(s.port(), "GET", keys_path(t), "", t.key).body);
  const std::string admin_id = str(list, "/data/0/id");
  const std::string admin = keys_path(t) + "/" + admin_id;
  for (const auto& [method, path, body] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"POST", admin + "/rotations", "{}"},
           {"PATCH", admin, R"({"name":"mine now"})"},
           {"DELETE", admin, ""}}) {
    auto r = http(s.port(), method, path, body, manager.value);
    EXPECT_EQ(r.status, 403) << method << " " << path << ": " << r.body;
    EXPECT_EQ(error_code(r), "insufficient_scope");
    EXPECT_EQ(r.body.find("revealed_key"), std::string::npos);
  }
  // The admin key is untouched and still works.
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", t.key).status, 200);

  // Narrowing is allowed, and so is acting on keys within the caller's scopes.
  auto narrower = http(s.port(), "PATCH", self, R"({"scopes":["api_keys:manage"]})", manager.value);
  EXPECT_EQ(narrower.status, 200) << narrower.body;
  const CreatedKey reader = narrow_key(s, t, R"("api_keys:manage")");
  auto rotated = http(s.port(), "POST", keys_path(t) + "/" + reader.id + "/rotations",
                      R"({"grace_period_seconds":0})", manager.value);
  EXPECT_EQ(rotated.status, 201) << rotated.body;
  // The root key may do anything.
  EXPECT_EQ(
      http(s.port(), "PATCH", self, R"({"scopes":["organizations:update"]})", s.root_key()).status,
      200);
}

// The OpenAI-shaped project key DELETE revokes as the native DELETE does, with the same rule.
TEST(LeastPrivilege, AProjectKeyWithMoreScopesCannotBeDeletedByANarrowerKey) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Projects");
  auto p = http(s.port(), "POST", "/v1/organization/projects", R"({"name":"p"})", t.key);
  ASSERT_EQ(p.status, 200) << p.body;
  const std::string project = str(parse_json(p.body), "/id");
  const CreatedKey wide =
      make_key(s, t, R"({"name":"wide","project_id":")" + project + R"("})");  // every scope
  const CreatedKey manager = narrow_key(s, t, R"("api_keys:manage")");
  auto r = http(s.port(), "DELETE", "/v1/organization/projects/" + project + "/api_keys/" + wide.id,
                "", manager.value);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", wide.value).status, 200);
}

// The finding: with --open-signup, a second anonymous sign-up with the same Idempotency-Key
// and body was replayed the first caller's organization and admin secret.
TEST(LeastPrivilege, AnAnonymousSignUpIsNeverReplayed) {
  ServerProcess s({"--open-signup"});
  const std::vector<std::string> h = {"Idempotency-Key: signup-1"};
  auto first = http(s.port(), "POST", "/v1/organizations", R"({"name":"Mine"})", h);
  ASSERT_EQ(first.status, 201) << first.body;
  auto second = http(s.port(), "POST", "/v1/organizations", R"({"name":"Mine"})", h);
  EXPECT_EQ(second.header("idempotent-replayed"), "");
  EXPECT_EQ(second.status, 409) << "the slug is taken: executed again, not replayed";
  EXPECT_EQ(second.body.find(str(parse_json(first.body), "/data/api_key/revealed_key")),
            std::string::npos);
}

TEST(LeastPrivilege, AnIdempotentAnswerIsReplayedOnlyToThePrincipalThatAsked) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Idem");
  const CreatedKey other = make_key(s, t, R"({"name":"other"})");
  const std::string body = R"({"name":"once"})";
  auto as = [&](const std::string& key) {
    return http(s.port(), "POST", keys_path(t), body,
                {"Authorization: Bearer " + key, "Idempotency-Key: k-1"});
  };
  auto first = as(t.key);
  ASSERT_EQ(first.status, 201);
  auto again = as(t.key);
  EXPECT_EQ(again.header("idempotent-replayed"), "true");
  EXPECT_EQ(again.body, first.body);
  auto stranger = as(other.value);
  ASSERT_EQ(stranger.status, 201) << stranger.body;
  EXPECT_EQ(stranger.header("idempotent-replayed"), "");
  EXPECT_NE(str(parse_json(stranger.body), "/data/revealed_key"),
            str(parse_json(first.body), "/data/revealed_key"));
  // The same principal with another path or body: 409, never the first answer.
  auto reused = http(s.port(), "POST", keys_path(t), R"({"name":"twice"})",
                     {"Authorization: Bearer " + t.key, "Idempotency-Key: k-1"});
  EXPECT_EQ(reused.status, 409);
  EXPECT_EQ(error_code(reused), "idempotency_key_reused");
}

// A refused request changed nothing, and its message may repeat a large input: it is not
// remembered when large, and the message quotes at most a short piece of the input.
TEST(LeastPrivilege, ALargeRefusalIsNeitherRememberedNorEchoed) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Echo");
  const std::string field(100'000, 'x');
  const std::string body = "{\"" + field + "\":1,\"name\":\"n\"}";
  const std::vector<std::string> h = {"Authorization: Bearer " + t.key, "Idempotency-Key: big"};
  auto r = http(s.port(), "POST", keys_path(t), body, h);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code(r), "unknown_field");
  EXPECT_LT(r.body.size(), 600u) << "the field name is quoted in part, not whole";
  auto again = http(s.port(), "POST", keys_path(t), body, h);
  EXPECT_EQ(again.status, 400);
  EXPECT_EQ(again.header("idempotent-replayed"), "true") << "a small refusal is remembered";

  // An origin too long to be one is quoted in part too.
  auto origin = http(s.port(), "POST", keys_path(t),
                     R"({"name":"w","type":"publishable","allowed_origins":["https://)" +
                         std::string(5000, 'a') + R"("]})",
                     t.key);
  EXPECT_EQ(origin.status, 400);
  EXPECT_LT(origin.body.size(), 600u);
}

TEST(LeastPrivilege, EveryListAndFreeTextFieldHasABound) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Bounds");
  std::string origins;
  for (int i = 0; i < 33; ++i)
    origins += (i ? "," : "") + std::string("\"https://a") + std::to_string(i) + ".example.com\"";
  auto many =
      http(s.port(), "POST", keys_path(t),
           R"({"name":"w","type":"publishable","allowed_origins":[)" + origins + "]}", t.key);
  EXPECT_EQ(many.status, 400) << many.body;
  EXPECT_EQ(str(parse_json(many.body), "/error/param"), "allowed_origins");
  EXPECT_NE(many.body.find("32"), std::string::npos) << "the message names the bound";

  const std::string long_host(263, 'a');  // "https://" + 263 = 271 bytes > 270
  auto long_origin = http(
      s.port(), "POST", keys_path(t),
      R"({"name":"w","type":"publishable","allowed_origins":["https://)" + long_host + R"("]})",
      t.key);
  EXPECT_EQ(long_origin.status, 400);
  EXPECT_EQ(str(parse_json(long_origin.body), "/error/param"), "allowed_origins");

  auto long_name =
      http(s.port(), "POST", keys_path(t), "{\"name\":\"" + std::string(201, 'n') + "\"}", t.key);
  EXPECT_EQ(long_name.status, 400);
  EXPECT_EQ(str(parse_json(long_name.body), "/error/param"), "name");

  const TestCert cert = make_cert("named");
  auto cert_name = http(
      s.port(), "POST", "/v1/organization/certificates",
      R"({"certificate":")" + pem_json(cert.pem) + R"(","name":")" + std::string(201, 'c') + "\"}",
      t.key);
  EXPECT_EQ(cert_name.status, 400) << cert_name.body;
  EXPECT_EQ(str(parse_json(cert_name.body), "/error/param"), "name");

  // 32 origins are fine, and verification with a foreign Origin answers as usual.
  origins = origins.substr(0, origins.rfind(','));
  auto ok = http(s.port(), "POST", keys_path(t),
                 R"({"name":"w","type":"publishable","allowed_origins":[)" + origins + "]}", t.key);
  ASSERT_EQ(ok.status, 201) << ok.body;
  const std::string pk = str(parse_json(ok.body), "/data/revealed_key");
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "",
                 {"Authorization: Bearer " + pk, "Origin: https://evil.example.org"})
                .header("x-keygate-code"),
            "ORIGIN_NOT_ALLOWED");
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "",
                 {"Authorization: Bearer " + pk, "Origin: https://a31.example.com"})
                .status,
            200);
}

TEST(LeastPrivilege, AnOrganizationHoldsAtMostTheOperatorsNumberOfKeys) {
  ServerProcess s({"--max-keys-per-org", "4"});
  Tenant t = make_tenant(s, "Capped");  // its first key is one
  std::string last;
  for (int i = 0; i < 3; ++i) last = make_key(s, t, R"({"name":"k"})").id;
  auto full = http(s.port(), "POST", keys_path(t), R"({"name":"one too many"})", t.key);
  EXPECT_EQ(full.status, 400) << full.body;
  EXPECT_EQ(error_code(full), "key_limit_reached");
  // A rotation needs room for the replacement; a revocation frees none until the key is
  // reclaimed (--reclaim-keys-after, 30 days by default).
  auto rotate = http(s.port(), "POST", keys_path(t) + "/" + last + "/rotations", "{}", t.key);
  EXPECT_EQ(rotate.status, 400);
  EXPECT_EQ(error_code(rotate), "key_limit_reached");
  // Another organization is not affected.
  Tenant u = make_tenant(s, "Other");
  EXPECT_EQ(http(s.port(), "POST", keys_path(u), R"({"name":"k"})", u.key).status, 201);
}

// --reclaim-keys-after: a revoked key is gone that long after its revocation (404, a
// verification answers NOT_FOUND), its place in --max-keys-per-org is free again, a list
// whose cursor was that key goes on after it, and a restart that replays its revocation
// from the log does not bring it back.
TEST(LeastPrivilege, ARevokedKeyIsReclaimedAfterTheOperatorsTime) {
  ServerProcess s({"--max-keys-per-org", "4", "--reclaim-keys-after", "2s"});
  Tenant t = make_tenant(s, "Reclaimed");
  const CreatedKey gone = make_key(s, t, R"({"name":"gone"})");
  const CreatedKey after = make_key(s, t, R"({"name":"after"})");
  make_key(s, t, R"({"name":"last"})");
  ASSERT_EQ(http(s.port(), "POST", keys_path(t), R"({"name":"full"})", t.key).status, 400);
  ASSERT_EQ(http(s.port(), "DELETE", keys_path(t) + "/" + gone.id, "", t.key).status, 200);
  auto verify = [&] {
    auto r = http(s.port(), "POST", "/v1/keys/verify", "{\"key\":\"" + gone.value + "\"}", t.key);
    return str(parse_json(r.body), "/data/code");
  };
  EXPECT_EQ(verify(), "REVOKED") << "kept, revoked, until its time";
  EXPECT_EQ(http(s.port(), "GET", keys_path(t) + "/" + gone.id, "", t.key).status, 200);
  const auto revoked_at = std::chrono::steady_clock::now();
  while (http(s.port(), "GET", keys_path(t) + "/" + gone.id, "", t.key).status == 200) {
    ASSERT_LT(std::chrono::steady_clock::now() - revoked_at, std::chrono::seconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GE(std::chrono::steady_clock::now() - revoked_at, std::chrono::milliseconds(1000));
  EXPECT_EQ(http(s.port(), "GET", keys_path(t) + "/" + gone.id, "", t.key).status, 404);
  EXPECT_EQ(verify(), "NOT_FOUND");
  EXPECT_NE(http(s.port(), "GET", "/metrics", "", s.root_key())
                .body.find("keygate_api_keys_reclaimed_total 1\n"),
            std::string::npos);
  // The cursor names a key that is gone: the page goes on after it.
  auto page = http(s.port(), "GET", keys_path(t) + "?limit=1&cursor=" + gone.id, "", t.key);
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(str(parse_json(page.body), "/data/0/id"), after.id);
  EXPECT_EQ(http(s.port(), "POST", keys_path(t), R"({"name":"in its place"})", t.key).status, 201);
  s.stop();
  s.start();
  EXPECT_EQ(http(s.port(), "GET", keys_path(t) + "/" + gone.id, "", t.key).status, 404);
  EXPECT_EQ(verify(), "NOT_FOUND");
  EXPECT_EQ(http(s.port(), "POST", keys_path(t), R"({"name":"full again"})", t.key).status, 400);
}

TEST(LeastPrivilege, AnonymousSignUpsAreLimitedPerAddress) {
  ServerProcess s({"--open-signup", "--signup-per-hour", "3"});
  for (int i = 0; i < 3; ++i) {
    auto r = http(s.port(), "POST", "/v1/organizations",
                  R"({"name":"Flood )" + std::to_string(i) + "\"}");
    ASSERT_EQ(r.status, 201) << r.body;
  }
  auto refused = http(s.port(), "POST", "/v1/organizations", R"({"name":"Flood 3"})");
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(error_code(refused), "rate_limited");
  EXPECT_FALSE(refused.header("retry-after").empty());
  // The operator is not limited by it.
  EXPECT_EQ(
      http(s.port(), "POST", "/v1/organizations", R"({"name":"By root"})", s.root_key()).status,
      201);
}

// Every numeric flag has a range: a bad value stops the start with a message naming the
// flag (the finding: --secret-rate 2000000000 died of SIGFPE at the first verification).
TEST(LeastPrivilege, NumericFlagsOutOfRangeStopTheStart) {
  const std::string dir = make_temp_dir();
  for (const std::string flag :
       {"--secret-rate 2000000000", "--secret-burst 20000000", "--publishable-rate 4294967295",
        "--publishable-burst 99999999", "--max-keys-per-org 0", "--signup-per-hour 2000000",
        "--idempotency-bytes 1000", "--threads 0", "--max-body-bytes 10",
        "--reclaim-keys-after soon"}) {
    int status = 0;
    const std::string out = run_command(
        std::string(KEYGATE_BINARY) + " serve --data-dir " + dir + " " + flag + " 2>&1", status);
    EXPECT_NE(status, 0) << flag;
    EXPECT_NE(out.find(flag.substr(0, flag.find(' '))), std::string::npos) << flag << ": " << out;
  }
  remove_tree(dir);
}

// keygate always sends every X-Keygate-* header on a 200, empty when it does not apply, so
// that a gateway copying them overwrites what a client sent under those names.
TEST(LeastPrivilege, EveryKeygateHeaderIsSentEvenWhenEmpty) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Headers");
  auto r = http(s.port(), "GET", "/v1/auth", "", t.key);
  ASSERT_EQ(r.status, 200);
  for (const char* h : {"x-keygate-organization-id", "x-keygate-key-id", "x-keygate-project-id",
                        "x-keygate-key-type", "x-keygate-environment", "x-keygate-scopes"})
    EXPECT_TRUE(r.headers.contains(h)) << h;
  EXPECT_EQ(r.header("x-keygate-project-id"), "");
}

// With --trust-forwarded-client-cert, keygate takes the certificate a gateway forwards and
// hashes it itself (nginx's $ssl_client_fingerprint is SHA-1 and never matched): escaped
// PEM, bare base64 DER, Traefik's PEM without its lines, Envoy's Hash=; two forwarded
// headers at once (one the client added) are none.
TEST(LeastPrivilege, AForwardedCertificateIsHashedByKeygate) {
  const TestCert cert = make_cert("forwarded");
  ServerProcess s({"--trust-forwarded-client-cert"});
  Tenant t = make_tenant(s, "Forwarded");
  activate_certificate(s, t, cert.pem);
  auto escape = [](const std::string& in) {
    std::string out;
    for (unsigned char c : in) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
        out += static_cast<char>(c);
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        out += buf;
      }
    }
    return out;
  };
  const std::string der_b64 = der_base64(cert.pem);
  auto code = [&](const std::vector<std::string>& forwarded) {
    std::vector<std::string> h = forwarded;
    h.push_back("Authorization: Bearer " + t.key);
    auto r = http(s.port(), "GET", "/v1/auth", "", h);
    return r.status == 200 ? std::string("VALID") : r.header("x-keygate-code");
  };
  EXPECT_EQ(code({"X-Client-Cert: " + escape(cert.pem)}), "VALID") << "nginx";
  EXPECT_EQ(code({"X-Client-Cert: " + der_b64}), "VALID") << "Caddy's DER";
  EXPECT_EQ(code({"X-Forwarded-Tls-Client-Cert: " + escape(der_b64)}), "VALID") << "Traefik";
  EXPECT_EQ(
      code({"X-Forwarded-Client-Cert: By=spiffe://x;Hash=" + cert.sha256_hex + ";Subject=\"\""}),
      "VALID")
      << "Envoy";
  EXPECT_EQ(code({"X-Client-Cert-Sha256: " + cert.sha256_hex}), "VALID");
  EXPECT_EQ(code({}), "CERTIFICATE_REQUIRED");
  EXPECT_EQ(
      code({"X-Client-Cert: " + escape(cert.pem), "X-Client-Cert-Sha256: " + cert.sha256_hex}),
      "CERTIFICATE_REQUIRED")
      << "two forwarded headers: one of them came from the client";
  EXPECT_EQ(code({"X-Client-Cert: not a certificate"}), "CERTIFICATE_REQUIRED");
}

// A list filter that matches rarely looks at no more than 10,000 keys a request: the page
// comes back short (here empty) with has_more, and its cursor continues the walk.
TEST(LeastPrivilege, ARareListFilterWalksABoundedStretchAPage) {
  ServerProcess s({"--fsync", "everysec"});  // 10,000 keys without 10,000 fdatasyncs
  Tenant t = make_tenant(s, "Many keys");
  for (int i = 0; i < 10'050; ++i)
    ASSERT_EQ(http(s.port(), "POST", keys_path(t), R"({"name":"k"})", t.key).status, 201);
  const CreatedKey web = make_key(s, t, R"({"name":"web","type":"publishable"})");
  std::string cursor;
  std::vector<std::string> found;
  int pages = 0;
  for (;; ++pages) {
    ASSERT_LT(pages, 5);
    auto r = http(s.port(), "GET",
                  keys_path(t) + "?type=publishable" + (cursor.empty() ? "" : "&cursor=" + cursor),
                  "", t.key);
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = parse_json(r.body);
    for (auto k : j["data"].get_array()) found.emplace_back(k["id"].get_string().value());
    if (str(j, "/pagination/has_more") != "true") break;
    cursor = str(j, "/pagination/next_cursor");
  }
  EXPECT_EQ(found, std::vector<std::string>{web.id});
  EXPECT_EQ(pages, 1) << "the first page stopped after 10,000 keys, the second found it";
  // A cursor that names no key (reclaimed, or made up past every key) is a place in the
  // list: the walk passes the keys up to it within the same bound, never the whole list.
  auto forged =
      http(s.port(), "GET", keys_path(t) + "?cursor=key_7ZZZZZZZZZZZZZZZZZZZZZZZZZ", "", t.key);
  ASSERT_EQ(forged.status, 200) << forged.body;
  auto j = parse_json(forged.body);
  EXPECT_EQ(j["data"].get_array().size(), 0u);
  EXPECT_EQ(str(j, "/pagination/has_more"), "true") << "stopped at the bound, 51 keys short";
}
