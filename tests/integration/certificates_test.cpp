// Certificates over real HTTP (docs/api.md §6), shaped as the OpenAI Admin API.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "support/certs.hpp"
#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '"')
      out += "\\\"";
    else
      out += c;
  }
  return out + "\"";
}

HttpResponse upload(const ServerProcess& s, const std::string& key, const std::string& pem,
                    const std::string& name = "") {
  std::string body = "{\"certificate\":" + json_string(pem) +
                     (name.empty() ? "" : ",\"name\":" + json_string(name)) + "}";
  return http(s.port(), "POST", "/v1/organization/certificates", body, key);
}

std::string code(const HttpResponse& r) {
  return str(parse_json(r.body), "/error/code");
}

}  // namespace

TEST(Certificates, UploadGetUpdateDeleteWithTheOpenAIShapes) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Certs");
  auto cert = make_cert("client", -60, 86400);
  auto up = upload(s, o.key, cert.pem, "My Certificate");
  ASSERT_EQ(up.status, 200) << up.body;
  auto j = parse_json(up.body);
  const std::string id = str(j, "/id");
  EXPECT_EQ(id.substr(0, 5), "cert_");
  EXPECT_EQ(str(j, "/object"), "certificate");
  EXPECT_EQ(str(j, "/name"), "My Certificate");
  EXPECT_EQ(str(j, "/certificate_details/valid_at"), std::to_string(cert.not_before));
  EXPECT_EQ(str(j, "/certificate_details/expires_at"), std::to_string(cert.not_after));
  EXPECT_EQ(str(j, "/certificate_details/content"), cert.pem);
  EXPECT_EQ(str(j, "/active"), "<missing>");
  EXPECT_NE(str(j, "/created_at"), "<missing>");

  auto got =
      parse_json(http(s.port(), "GET", "/v1/organization/certificates/" + id, "", o.key).body);
  EXPECT_EQ(str(got, "/object"), "certificate");
  EXPECT_EQ(str(got, "/certificate_details/content"), "<missing>");
  EXPECT_EQ(str(got, "/active"), "<missing>");
  for (const char* q : {"?include[]=content", "?include%5B%5D=content", "?include=content"}) {
    auto with = parse_json(
        http(s.port(), "GET", "/v1/organization/certificates/" + id + q, "", o.key).body);
    EXPECT_EQ(str(with, "/certificate_details/content"), cert.pem) << q;
  }
  auto renamed =
      http(s.port(), "POST", "/v1/organization/certificates/" + id, R"({"name":"Renamed"})", o.key);
  ASSERT_EQ(renamed.status, 200);
  EXPECT_EQ(str(parse_json(renamed.body), "/name"), "Renamed");
  EXPECT_EQ(str(parse_json(renamed.body), "/certificate_details/content"), "<missing>");

  auto act = http(s.port(), "POST", "/v1/organization/certificates/activate",
                  R"({"certificate_ids":[")" + id + "\"]}", o.key);
  ASSERT_EQ(act.status, 200) << act.body;
  auto aj = parse_json(act.body);
  EXPECT_EQ(str(aj, "/object"), "list");
  EXPECT_EQ(str(aj, "/data/0/object"), "organization.certificate");
  EXPECT_EQ(str(aj, "/data/0/active"), "true");
  auto del = http(s.port(), "DELETE", "/v1/organization/certificates/" + id, "", o.key);
  EXPECT_EQ(del.status, 409);
  EXPECT_EQ(code(del), "certificate_active");
  ASSERT_EQ(http(s.port(), "POST", "/v1/organization/certificates/deactivate",
                 R"({"certificate_ids":[")" + id + "\"]}", o.key)
                .status,
            200);
  del = http(s.port(), "DELETE", "/v1/organization/certificates/" + id, "", o.key);
  ASSERT_EQ(del.status, 200);
  EXPECT_EQ(del.body, R"({"id":")" + id + R"(","object":"certificate.deleted"})");
  EXPECT_EQ(http(s.port(), "GET", "/v1/organization/certificates/" + id, "", o.key).status, 404);
}

TEST(Certificates, EveryKindOfBadUploadIsRefusedWithAReason) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Bad");
  auto ca = make_cert("ca", -60, 86400 * 3650);
  auto leaf = make_cert("leaf", -60, 86400, &ca);
  auto expired = make_cert("old", -86400 * 10, -86400);
  auto future = make_cert("future", 86400, 86400 * 10);
  // A CA, a leaf, an expired and a not-yet-valid certificate are all accepted as uploads.
  for (const auto* c : {&ca, &leaf, &expired, &future})
    EXPECT_EQ(upload(s, o.key, c->pem).status, 200);
  struct Case {
    std::string pem;
    std::string says;
  };
  const Case cases[] = {
      {"garbage", "PEM"},
      {leaf.pem + ca.pem, "chain"},
      {leaf.key_pem, "private key"},
      {leaf.pem + leaf.key_pem, "private key"},
      {"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "could not be read"},
      {std::string(65 * 1024, 'x'), "64 KiB"},
  };
  for (const Case& c : cases) {
    auto r = upload(s, o.key, c.pem);
    EXPECT_EQ(r.status, 400) << c.says;
    EXPECT_EQ(code(r), "invalid_certificate") << c.says;
    EXPECT_NE(str(parse_json(r.body), "/error/message").find(c.says), std::string::npos) << r.body;
  }
  auto dup = upload(s, o.key, leaf.pem);
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(code(dup), "duplicate_certificate");
  EXPECT_EQ(code(http(s.port(), "POST", "/v1/organization/certificates", R"({"name":"x"})", o.key)),
            "missing_field");
  EXPECT_EQ(code(http(s.port(), "POST", "/v1/organization/certificates",
                      R"({"certificate":"x","extra":1})", o.key)),
            "unknown_field");
  // Another organization may upload the same certificate.
  Tenant other = make_tenant(s, "Other");
  EXPECT_EQ(upload(s, other.key, leaf.pem).status, 200);
}

TEST(Certificates, ListPaginatesInBothOrders) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Pages");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(
        str(parse_json(upload(s, o.key, make_cert("c" + std::to_string(i)).pem).body), "/id"));
  auto walk = [&](const std::string& order) {
    std::vector<std::string> seen;
    std::string after;
    for (int page = 0; page < 10; ++page) {
      auto r = http(s.port(), "GET",
                    "/v1/organization/certificates?limit=2&order=" + order +
                        (after.empty() ? "" : "&after=" + after),
                    "", o.key);
      auto j = parse_json(r.body);
      EXPECT_EQ(str(j, "/object"), "list");
      for (auto item : j["data"].get_array()) {
        EXPECT_EQ(std::string(item["object"].get_string().value()), "organization.certificate");
        EXPECT_FALSE(item["active"].get_bool().value());
        seen.emplace_back(item["id"].get_string().value());
      }
      if (str(j, "/has_more") == "false") break;
      after = str(j, "/last_id");
      EXPECT_EQ(after, seen.back());
    }
    return seen;
  };
  EXPECT_EQ(walk("asc"), ids);
  std::vector<std::string> reversed(ids.rbegin(), ids.rend());
  EXPECT_EQ(walk("desc"), reversed);
  auto def = parse_json(http(s.port(), "GET", "/v1/organization/certificates", "", o.key).body);
  EXPECT_EQ(str(def, "/first_id"), ids.back());  // desc by default
  EXPECT_EQ(str(def, "/last_id"), ids.front());
  Tenant empty = make_tenant(s, "Empty");
  auto e = parse_json(http(s.port(), "GET", "/v1/organization/certificates", "", empty.key).body);
  EXPECT_EQ(str(e, "/first_id"), "null");
  EXPECT_EQ(str(e, "/last_id"), "null");
  EXPECT_EQ(str(e, "/has_more"), "false");
  EXPECT_EQ(http(s.port(), "GET", "/v1/organization/certificates?limit=101", "", o.key).status,
            400);
  EXPECT_EQ(http(s.port(), "GET", "/v1/organization/certificates?order=up", "", o.key).status, 400);
}

TEST(Certificates, ActivationIsAtomicAndIdempotent) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Atomic");
  const std::string a = str(parse_json(upload(s, o.key, make_cert("a").pem).body), "/id");
  const std::string b = str(parse_json(upload(s, o.key, make_cert("b").pem).body), "/id");
  Tenant other = make_tenant(s, "Elsewhere");
  const std::string theirs = str(parse_json(upload(s, other.key, make_cert("t").pem).body), "/id");
  auto bad = http(s.port(), "POST", "/v1/organization/certificates/activate",
                  R"({"certificate_ids":[")" + a + R"(",")" + theirs + "\"]}", o.key);
  EXPECT_EQ(bad.status, 404);
  auto list = parse_json(http(s.port(), "GET", "/v1/organization/certificates", "", o.key).body);
  for (auto item : list["data"].get_array())
    EXPECT_FALSE(item["active"].get_bool().value());  // nothing changed
  const std::string both = R"({"certificate_ids":[")" + a + R"(",")" + b + "\"]}";
  ASSERT_EQ(http(s.port(), "POST", "/v1/organization/certificates/activate", both, o.key).status,
            200);
  auto again = parse_json(
      http(s.port(), "POST", "/v1/organization/certificates/activate", both, o.key).body);
  EXPECT_EQ(str(again, "/data/0/active"), "true");
  EXPECT_EQ(str(again, "/data/1/active"), "true");
  EXPECT_EQ(http(s.port(), "POST", "/v1/organization/certificates/activate",
                 R"({"certificate_ids":[]})", o.key)
                .status,
            400);
  std::string eleven = R"({"certificate_ids":[)";
  for (int i = 0; i < 11; ++i) eleven += std::string(i ? "," : "") + "\"" + a + "\"";
  EXPECT_EQ(
      http(s.port(), "POST", "/v1/organization/certificates/activate", eleven + "]}", o.key).status,
      400);
}

TEST(Certificates, TheRootKeyChoosesTheOrganizationWithTheOpenAIHeader) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Rooted");
  auto noheader = http(s.port(), "GET", "/v1/organization/certificates", "", s.root_key());
  EXPECT_EQ(noheader.status, 400);
  EXPECT_EQ(str(parse_json(noheader.body), "/error/param"), "OpenAI-Organization");
  const std::vector<std::string> h = {"Authorization: Bearer " + s.root_key(),
                                      "OpenAI-Organization: " + o.id};
  auto up = http(s.port(), "POST", "/v1/organization/certificates",
                 "{\"certificate\":" + json_string(make_cert("r").pem) + "}", h);
  ASSERT_EQ(up.status, 200) << up.body;
  auto mine = parse_json(http(s.port(), "GET", "/v1/organization/certificates", "", o.key).body);
  EXPECT_EQ(str(mine, "/data/0/id"), str(parse_json(up.body), "/id"));
  EXPECT_EQ(http(s.port(), "GET", "/v1/organization/certificates", "",
                 std::vector<std::string>{"Authorization: Bearer " + s.root_key(),
                                          "OpenAI-Organization: org_01M81RKQRM0AXC52V8F5VHBJF0"})
                .status,
            404);
}

TEST(Certificates, TenantsSeeOnlyTheirOwn) {
  ServerProcess s;
  Tenant a = make_tenant(s, "A"), b = make_tenant(s, "B");
  const std::string bid = str(parse_json(upload(s, b.key, make_cert("b").pem).body), "/id");
  EXPECT_EQ(http(s.port(), "GET", "/v1/organization/certificates/" + bid, "", a.key).status, 404);
  EXPECT_EQ(http(s.port(), "POST", "/v1/organization/certificates/" + bid, R"({"name":"x"})", a.key)
                .status,
            404);
  EXPECT_EQ(http(s.port(), "DELETE", "/v1/organization/certificates/" + bid, "", a.key).status,
            404);
  EXPECT_EQ(http(s.port(), "POST", "/v1/organization/certificates/deactivate",
                 R"({"certificate_ids":[")" + bid + "\"]}", a.key)
                .status,
            404);
  EXPECT_EQ(str(parse_json(http(s.port(), "GET", "/v1/organization/certificates", "", a.key).body),
                "/data/0"),
            "<missing>");
  // Scopes: a key without certificates:* is refused.
  const std::string narrow =
      str(parse_json(http(s.port(), "POST", "/v1/organizations/" + a.id + "/api-keys",
                          R"({"name":"n","scopes":["certificates:read"]})", a.key)
                         .body),
          "/data/revealed_key");
  EXPECT_EQ(http(s.port(), "GET", "/v1/organization/certificates", "", narrow).status, 200);
  EXPECT_EQ(code(upload(s, narrow, make_cert("n").pem)), "missing_scope");
}

TEST(Certificates, FiftyPerOrganizationEvenUnderConcurrentUploads) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Full");
  std::vector<std::string> pems;
  for (int i = 0; i < 60; ++i) pems.push_back(make_cert("c" + std::to_string(i)).pem);
  std::atomic<int> ok{0}, limited{0}, other{0};
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (size_t i; (i = next++) < pems.size();) {
        auto r = upload(s, o.key, pems[i]);
        if (r.status == 200)
          ++ok;
        else if (r.status == 400 && code(r) == "certificate_limit_reached")
          ++limited;
        else
          ++other;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 50);
  EXPECT_EQ(limited.load(), 10);
  EXPECT_EQ(other.load(), 0);
}

TEST(Certificates, KeysOfAnOrganizationWithActiveCertificatesAreBoundToThem) {
  ServerProcess s({"--trust-forwarded-client-cert"});  // a gateway in front
  Tenant o = make_tenant(s, "Bound");
  auto cert = make_cert("client");
  const std::string id = str(parse_json(upload(s, o.key, cert.pem).body), "/id");
  // Uploaded but inactive: no binding yet.
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", o.key).status, 200);
  ASSERT_EQ(http(s.port(), "POST", "/v1/organization/certificates/activate",
                 R"({"certificate_ids":[")" + id + "\"]}", o.key)
                .status,
            200);
  auto none = http(s.port(), "GET", "/v1/auth", "", o.key);
  EXPECT_EQ(none.status, 403);
  EXPECT_EQ(none.header("x-keygate-code"), "CERTIFICATE_REQUIRED");
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "",
                 std::vector<std::string>{"Authorization: Bearer " + o.key,
                                          "X-Client-Cert-Sha256: " + cert.sha256_hex})
                .status,
            200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "",
                 std::vector<std::string>{"Authorization: Bearer " + o.key,
                                          "X-Client-Cert-Sha256: " + std::string(64, 'a')})
                .header("x-keygate-code"),
            "CERTIFICATE_REQUIRED");
  auto v = [&](const std::string& extra) {
    return str(parse_json(http(s.port(), "POST", "/v1/keys/verify",
                               R"({"key":")" + o.key + "\"" + extra + "}", s.root_key())
                              .body),
               "/data/code");
  };
  EXPECT_EQ(v(""), "CERTIFICATE_REQUIRED");
  EXPECT_EQ(v(R"(,"client_certificate_sha256":")" + cert.sha256_hex + "\""), "VALID");
  EXPECT_EQ(v(R"(,"client_certificate_sha256":")" + std::string(64, 'b') + "\""),
            "CERTIFICATE_REQUIRED");
  // Deactivated: unbound again.
  ASSERT_EQ(http(s.port(), "POST", "/v1/organization/certificates/deactivate",
                 R"({"certificate_ids":[")" + id + "\"]}", s.root_key())
                .status,
            400);  // root must name the organization
  ASSERT_EQ(http(s.port(), "POST", "/v1/organization/certificates/deactivate",
                 R"({"certificate_ids":[")" + id + "\"]}", o.key)
                .status,
            200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", o.key).status, 200);
}

TEST(Certificates, SurviveARestartAndACrash) {
  const std::string dir = make_temp_dir() + "/data";
  std::string id, key;
  auto cert = make_cert("durable");
  {
    ServerProcess s({}, dir);
    Tenant o = make_tenant(s, "Durable certs");
    key = o.key;
    id = str(parse_json(upload(s, key, cert.pem, "kept").body), "/id");
    http(s.port(), "POST", "/v1/organization/certificates/activate",
         R"({"certificate_ids":[")" + id + "\"]}", key);
    const std::string gone = str(parse_json(upload(s, key, make_cert("gone").pem).body), "/id");
    http(s.port(), "DELETE", "/v1/organization/certificates/" + gone, "", key);
    s.kill9();
  }
  {
    ServerProcess s({}, dir);
    auto list = parse_json(http(s.port(), "GET", "/v1/organization/certificates", "", key).body);
    EXPECT_EQ(str(list, "/data/0/id"), id);
    EXPECT_EQ(str(list, "/data/0/name"), "kept");
    EXPECT_EQ(str(list, "/data/0/active"), "true");
    EXPECT_EQ(str(list, "/data/1"), "<missing>");
    ::kill(s.pid(), SIGUSR1);  // and once more through a snapshot
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ServerProcess s({"--trust-forwarded-client-cert"}, dir);
  auto got = parse_json(
      http(s.port(), "GET", "/v1/organization/certificates/" + id + "?include[]=content", "", key)
          .body);
  EXPECT_EQ(str(got, "/certificate_details/content"), cert.pem);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "",
                 std::vector<std::string>{"Authorization: Bearer " + key,
                                          "X-Client-Cert-Sha256: " + cert.sha256_hex})
                .status,
            200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", key).header("x-keygate-code"),
            "CERTIFICATE_REQUIRED");
  s.stop();
  remove_tree(std::filesystem::path(dir).parent_path());
}
