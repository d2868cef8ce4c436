// The audit log over real HTTP (docs/api.md §8): OpenAI's /v1/organization/audit_logs and
// the native /v1/organizations/{id}/audit-events, their filters, paging both ways, tenancy,
// retention across a snapshot and a restart.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "support/certs.hpp"
#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

HttpResponse logs(const ServerProcess& s, const std::string& key, const std::string& query = "") {
  return http(s.port(), "GET", "/v1/organization/audit_logs" + query, "", key);
}

// The types of a page, newest first.
std::vector<std::string> types(const HttpResponse& r) {
  std::vector<std::string> out;
  auto j = parse_json(r.body);
  for (auto e : j["data"].get_array()) out.emplace_back(e["type"].get_string().value());
  return out;
}

std::vector<std::string> ids(const HttpResponse& r) {
  std::vector<std::string> out;
  auto j = parse_json(r.body);
  for (auto e : j["data"].get_array()) out.emplace_back(e["id"].get_string().value());
  return out;
}

}  // namespace

TEST(AuditLog, EveryChangeIsRecordedInOpenAIsShapeWithItsActorAndNoSecret) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Audited");
  CreatedKey k = make_key(s, t, R"({"name":"ci","scopes":["api_keys:read"]})");
  const std::string base = "/v1/organizations/" + t.id + "/api-keys/";
  ASSERT_EQ(http(s.port(), "PATCH", base + k.id, R"({"name":"ci-2"})", t.key).status, 200);
  auto rot = http(s.port(), "POST", base + k.id + "/rotations", "{}", t.key);
  ASSERT_EQ(rot.status, 201);
  const std::string fresh = str(parse_json(rot.body), "/data/id");
  const std::string fresh_value = str(parse_json(rot.body), "/data/revealed_key");
  ASSERT_EQ(http(s.port(), "DELETE", base + fresh, "", t.key).status, 200);
  auto proj = http(s.port(), "POST", "/v1/organization/projects", R"({"name":"Web"})", t.key);
  const std::string project = str(parse_json(proj.body), "/id");
  ASSERT_EQ(
      http(s.port(), "POST", "/v1/organization/projects/" + project, R"({"name":"Site"})", t.key)
          .status,
      200);
  ASSERT_EQ(
      http(s.port(), "PATCH", "/v1/organizations/" + t.id, R"({"name":"Audited 2"})", s.root_key())
          .status,
      200);

  auto r = logs(s, t.key, "?limit=100");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(types(r),
            (std::vector<std::string>{"organization.updated", "project.updated", "project.created",
                                      "api_key.deleted", "api_key.created", "api_key.updated",
                                      "api_key.updated", "api_key.created", "api_key.created",
                                      "organization.created"}));
  auto j = parse_json(r.body);
  EXPECT_EQ(str(j, "/object"), "list");
  EXPECT_EQ(str(j, "/has_more"), "false");
  EXPECT_EQ(str(j, "/first_id"), ids(r).front());
  EXPECT_EQ(str(j, "/last_id"), ids(r).back());
  // The newest: made with the root key.
  EXPECT_EQ(str(j, "/data/0/object"), "organization.audit_log");
  EXPECT_EQ(str(j, "/data/0/id").substr(0, 6), "audit_");
  EXPECT_NEAR(std::stol(str(j, "/data/0/effective_at")), static_cast<long>(::time(nullptr)), 60);
  EXPECT_EQ(str(j, "/data/0/actor/type"), "api_key");
  EXPECT_EQ(str(j, "/data/0/actor/api_key/id"), "root");
  EXPECT_EQ(str(j, "/data/0/organization.updated/id"), t.id);
  EXPECT_EQ(str(j, "/data/0/organization.updated/changes_requested/name"), "Audited 2");
  // A project's event names the project, by its name now.
  EXPECT_EQ(str(j, "/data/1/project/id"), project);
  EXPECT_EQ(str(j, "/data/1/project/name"), "Site");
  EXPECT_EQ(str(j, "/data/1/project.updated/changes_requested/title"), "Site");
  // The revocation, by the tenant's own key.
  EXPECT_EQ(str(j, "/data/3/api_key.deleted/id"), fresh);
  EXPECT_EQ(str(j, "/data/3/actor/api_key/id").substr(0, 4), "key_");
  // The rotation: the new key, then the old one's change.
  EXPECT_EQ(str(j, "/data/4/api_key.created/data/rotated_from"), k.id);
  EXPECT_EQ(str(j, "/data/5/api_key.updated/id"), k.id);
  EXPECT_EQ(str(j, "/data/5/api_key.updated/changes_requested/replaced_by"), fresh);
  EXPECT_EQ(str(j, "/data/6/api_key.updated/changes_requested/name"), "ci-2");
  EXPECT_EQ(str(j, "/data/7/api_key.created/data/scopes/0"), "api_keys:read");
  // Never a secret: no key's value, not even in part.
  for (const std::string& secret : {t.key, k.value, fresh_value})
    EXPECT_EQ(r.body.find(secret.substr(8, 24)), std::string::npos);
}

TEST(AuditLog, CertificateEventsAtOrganizationAndProjectLevel) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Certs");
  const TestCert c = make_cert("audit");
  auto up = http(s.port(), "POST", "/v1/organization/certificates",
                 R"({"name":"edge","certificate":")" + pem_json(c.pem) + "\"}", t.key);
  ASSERT_EQ(up.status, 200) << up.body;
  const std::string cert = str(parse_json(up.body), "/id");
  const std::string body = R"({"certificate_ids":[")" + cert + "\"]}";
  ASSERT_EQ(http(s.port(), "POST", "/v1/organization/certificates/activate", body, t.key).status,
            200);
  // Again: nothing changes, so nothing is recorded.
  ASSERT_EQ(http(s.port(), "POST", "/v1/organization/certificates/activate", body, t.key).status,
            200);
  auto proj = http(s.port(), "POST", "/v1/organization/projects", R"({"name":"P"})", t.key);
  const std::string project = str(parse_json(proj.body), "/id");
  const std::string at = "/v1/organization/projects/" + project + "/certificates/";
  ASSERT_EQ(http(s.port(), "POST", at + "activate", body, t.key).status, 200);
  ASSERT_EQ(http(s.port(), "POST", at + "deactivate", body, t.key).status, 200);
  ASSERT_EQ(http(s.port(), "POST", "/v1/organization/certificates/deactivate", body, t.key).status,
            200);
  ASSERT_EQ(
      http(s.port(), "POST", "/v1/organization/certificates/" + cert, R"({"name":"e2"})", t.key)
          .status,
      200);
  ASSERT_EQ(http(s.port(), "DELETE", "/v1/organization/certificates/" + cert, "", t.key).status,
            200);
  auto r = logs(s, t.key, "?limit=8");
  EXPECT_EQ(types(r), (std::vector<std::string>{
                          "certificate.deleted", "certificate.updated", "certificates.deactivated",
                          "certificates.deactivated", "certificates.activated", "project.created",
                          "certificates.activated", "certificate.created"}));
  auto j = parse_json(r.body);
  EXPECT_EQ(str(j, "/data/0/certificate.deleted/id"), cert);
  EXPECT_EQ(str(j, "/data/1/certificate.updated/name"), "e2");
  EXPECT_EQ(str(j, "/data/2/project"), "<missing>");
  EXPECT_EQ(str(j, "/data/3/project/id"), project);
  EXPECT_EQ(str(j, "/data/3/certificates.deactivated/certificates/0/id"), cert);
  EXPECT_EQ(str(j, "/data/4/certificates.activated/certificates/0/name"), "edge");
  EXPECT_EQ(str(j, "/data/7/certificate.created/name"), "edge");
  // Filtered by the project: its two events.
  EXPECT_EQ(types(logs(s, t.key, "?project_ids%5B%5D=" + project)),
            (std::vector<std::string>{"certificates.deactivated", "certificates.activated",
                                      "project.created"}));
  // By the certificate, as a resource.
  EXPECT_EQ(types(logs(s, t.key, "?resource_ids[]=" + cert)).size(), 7u);
}

TEST(AuditLog, FiltersAndPagingBothWaysAsTheSdkSendsThem) {
  ServerProcess s;
  Tenant t = make_tenant(s, "Paging");
  std::vector<std::string> keys;
  for (int i = 0; i < 7; ++i) keys.push_back(make_key(s, t, R"({"name":"k"})").id);
  // 9 events: organization.created, api_key.created (its first key), 7 x api_key.created.
  auto page1 = logs(s, t.key, "?limit=4");
  ASSERT_EQ(page1.status, 200);
  EXPECT_EQ(str(parse_json(page1.body), "/has_more"), "true");
  const std::string last1 = str(parse_json(page1.body), "/last_id");
  auto page2 = logs(s, t.key, "?limit=4&after=" + last1);
  EXPECT_EQ(ids(page2).size(), 4u);
  auto page3 = logs(s, t.key, "?limit=4&after=" + str(parse_json(page2.body), "/last_id"));
  EXPECT_EQ(types(page3), (std::vector<std::string>{"organization.created"}));
  EXPECT_EQ(str(parse_json(page3.body), "/has_more"), "false");
  // Back: before the second page's first event comes the first page again.
  auto back = logs(s, t.key, "?limit=4&before=" + str(parse_json(page2.body), "/first_id"));
  EXPECT_EQ(ids(back), ids(page1));
  EXPECT_EQ(str(parse_json(back.body), "/has_more"), "false");

  // Types (brackets percent-encoded as the SDK's qs does, or not), resources, actors.
  EXPECT_EQ(types(logs(s, t.key, "?event_types%5B%5D=organization.created")).size(), 1u);
  EXPECT_EQ(
      types(logs(s, t.key, "?event_types[]=organization.created&event_types[]=api_key.created"))
          .size(),
      9u);
  EXPECT_TRUE(types(logs(s, t.key, "?event_types[]=login.failed")).empty())
      << "an OpenAI type keygate never records matches nothing";
  EXPECT_EQ(types(logs(s, t.key, "?resource_ids[]=" + keys[3])).size(), 1u);
  EXPECT_EQ(types(logs(s, t.key, "?actor_ids[]=root")).size(), 2u) << "the organization's creation";
  EXPECT_EQ(types(logs(s, t.key, "?actor_ids[]=root&event_types[]=api_key.created")).size(), 1u);
  EXPECT_TRUE(types(logs(s, t.key, "?actor_emails[]=a%40b.c")).empty());
  // Time: everything happened within this second or the last few.
  const long now = ::time(nullptr);
  EXPECT_EQ(
      types(logs(s, t.key, "?limit=100&effective_at[gte]=" + std::to_string(now - 60))).size(), 9u);
  EXPECT_TRUE(types(logs(s, t.key, "?effective_at%5Bgt%5D=" + std::to_string(now + 5))).empty());
  EXPECT_TRUE(types(logs(s, t.key, "?effective_at[lt]=" + std::to_string(now - 60))).empty());
  EXPECT_EQ(types(logs(s, t.key, "?limit=100&effective_at[lte]=" + std::to_string(now + 5))).size(),
            9u);

  // Bad input: the parameter and why.
  for (const std::string& q : std::vector<std::string>{
           "?limit=0", "?limit=101", "?after=key_123", "?before=nope", "?effective_at[gt]=soon",
           "?effective_at[eq]=1", "?event_types[]=DROP%20TABLE", "?project_ids[]=org_1",
           "?actor_ids[]=someone", "?resource_ids[]=xyz", "?after=" + last1 + "&before=" + last1}) {
    auto bad = logs(s, t.key, q);
    EXPECT_EQ(bad.status, 400) << q << " " << bad.body;
    EXPECT_EQ(str(parse_json(bad.body), "/error/code"), "invalid_field") << q;
  }
}

TEST(AuditLog, TenantsSeeOnlyTheirOwnEventsOnBothEndpoints) {
  ServerProcess s;
  Tenant a = make_tenant(s, "A"), b = make_tenant(s, "B");
  make_key(s, a, R"({"name":"only-a"})");
  EXPECT_EQ(types(logs(s, a.key)).size(), 3u);
  EXPECT_EQ(types(logs(s, b.key)).size(), 2u);
  // The root key names the organization, as with every OpenAI-shaped endpoint.
  auto root = http(s.port(), "GET", "/v1/organization/audit_logs", "",
                   {"Authorization: Bearer " + s.root_key(), "OpenAI-Organization: " + a.id});
  EXPECT_EQ(types(root).size(), 3u);
  // Native: another organization's log does not exist for a tenant.
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations/" + a.id + "/audit-events", "", b.key).status,
            404);
  auto own =
      http(s.port(), "GET", "/v1/organizations/" + a.id + "/audit-events?limit=2", "", a.key);
  ASSERT_EQ(own.status, 200) << own.body;
  auto j = parse_json(own.body);
  EXPECT_EQ(str(j, "/data/0/type"), "api_key.created");
  EXPECT_EQ(str(j, "/data/0/actor/type"), "api_key");
  EXPECT_EQ(str(j, "/data/0/details/data/name"), "only-a");
  EXPECT_EQ(str(j, "/data/0/resource_ids/0").substr(0, 4), "key_");
  EXPECT_EQ(str(j, "/pagination/has_more"), "true");
  auto next = http(s.port(), "GET",
                   "/v1/organizations/" + a.id +
                       "/audit-events?limit=2&cursor=" + str(j, "/pagination/next_cursor"),
                   "", a.key);
  EXPECT_EQ(str(parse_json(next.body), "/data/0/type"), "organization.created");
  EXPECT_EQ(str(parse_json(next.body), "/data/0/actor/type"), "root");
  // A key without organizations:read may not read the log.
  CreatedKey narrow = make_key(s, a, R"({"name":"narrow","scopes":["api_keys:verify"]})");
  EXPECT_EQ(logs(s, narrow.value).status, 403);
}

TEST(AuditLog, RetentionDropsOldEventsAtASnapshotAndTheCutSurvivesARestart) {
  const std::string dir = make_temp_dir() + "/data";
  Tenant t;
  {
    ServerProcess s({"--audit-retention", "2s"}, dir);
    t = make_tenant(s, "Retained");
    std::this_thread::sleep_for(std::chrono::milliseconds(2'500));
    make_key(s, t, R"({"name":"late"})");
    EXPECT_EQ(types(logs(s, t.key)).size(), 3u) << "nothing goes before a snapshot";
    ASSERT_EQ(::kill(s.pid(), SIGUSR1), 0);
    std::vector<std::string> left;
    for (int i = 0; i < 100; ++i) {
      left = types(logs(s, t.key));
      if (left.size() == 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(left, (std::vector<std::string>{"api_key.created"}));
  }
  ServerProcess again({"--audit-retention", "2s"}, dir);
  EXPECT_EQ(types(logs(again, t.key)), (std::vector<std::string>{"api_key.created"}));
  remove_tree(std::filesystem::path(dir).parent_path());
}

TEST(AuditLog, RetentionZeroRecordsNothingAndABadValueStopsTheStart) {
  {
    ServerProcess s({"--audit-retention", "0"});
    Tenant t = make_tenant(s, "Quiet");
    EXPECT_TRUE(types(logs(s, t.key)).empty());
  }
  int status = 0;
  const std::string out =
      run_command(std::string(KEYGATE_BINARY) + " serve --audit-retention 5x --data-dir " +
                      make_temp_dir() + " 2>&1",
                  status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("--audit-retention"), std::string::npos) << out;
}

// An organization made through --open-signup has no acting key: its events name `signup`.
TEST(AuditLog, OpenSignupIsRecordedWithTheSignupActor) {
  ServerProcess s({"--open-signup"});
  auto r = http(s.port(), "POST", "/v1/organizations", R"({"name":"Self-served"})");
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string key = str(parse_json(r.body), "/data/api_key/revealed_key");
  auto j = parse_json(logs(s, key, "?actor_ids[]=signup").body);
  EXPECT_EQ(str(j, "/data/0/actor/api_key/id"), "signup");
  EXPECT_EQ(str(j, "/data/1/type"), "organization.created");
  EXPECT_EQ(str(j, "/data/2"), "<missing>");
}
