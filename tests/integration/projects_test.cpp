// Projects over real HTTP (docs/api.md §7), shaped as the OpenAI Admin API, and keys that
// live in them (§4, §5).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "support/certs.hpp"
#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

HttpResponse create_project(const ServerProcess& s, const std::string& key,
                            const std::string& name) {
  return http(s.port(), "POST", "/v1/organization/projects", R"({"name":")" + name + "\"}", key);
}

std::string new_project(const ServerProcess& s, const Tenant& t, const std::string& name) {
  auto r = create_project(s, t.key, name);
  EXPECT_EQ(r.status, 200) << r.body;
  return str(parse_json(r.body), "/id");
}

std::string code(const HttpResponse& r) {
  return str(parse_json(r.body), "/error/code");
}

std::string upload(const ServerProcess& s, const Tenant& t, const TestCert& cert) {
  std::string pem;
  for (char c : cert.pem) pem += c == '\n' ? std::string("\\n") : std::string(1, c);
  auto r = http(s.port(), "POST", "/v1/organization/certificates",
                R"({"certificate":")" + pem + "\"}", t.key);
  EXPECT_EQ(r.status, 200) << r.body;
  return str(parse_json(r.body), "/id");
}

HttpResponse set_active(const ServerProcess& s, const Tenant& t, const std::string& where,
                        const std::string& verb, const std::string& cert) {
  return http(s.port(), "POST", where + "/certificates/" + verb,
              R"({"certificate_ids":[")" + cert + "\"]}", t.key);
}

// /v1/auth's answer for `key` presenting `cert` (none when null): the status, or the code.
std::string auth(const ServerProcess& s, const std::string& key, const TestCert* cert) {
  std::vector<std::string> h = {"Authorization: Bearer " + key};
  if (cert) h.push_back("X-Client-Cert-Sha256: " + cert->sha256_hex);
  auto r = http(s.port(), "GET", "/v1/auth", "", h);
  return r.status == 200 ? "200" : r.header("x-keygate-code");
}

}  // namespace

TEST(Projects, CreateGetRenameArchiveWithTheOpenAIShapes) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Projects");
  auto created = create_project(s, o.key, "Web app");
  ASSERT_EQ(created.status, 200) << created.body;
  auto j = parse_json(created.body);
  const std::string id = str(j, "/id");
  EXPECT_EQ(id.substr(0, 5), "proj_");
  EXPECT_EQ(str(j, "/object"), "organization.project");
  EXPECT_EQ(str(j, "/name"), "Web app");
  EXPECT_EQ(str(j, "/status"), "active");
  EXPECT_EQ(str(j, "/archived_at"), "null");
  const long created_at = std::stol(str(j, "/created_at"));
  EXPECT_NEAR(created_at, static_cast<long>(::time(nullptr)), 60) << "Unix seconds";

  auto got = http(s.port(), "GET", "/v1/organization/projects/" + id, "", o.key);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body, created.body);
  auto renamed =
      http(s.port(), "POST", "/v1/organization/projects/" + id, R"({"name":"Renamed"})", o.key);
  ASSERT_EQ(renamed.status, 200) << renamed.body;
  EXPECT_EQ(str(parse_json(renamed.body), "/name"), "Renamed");

  auto archived = http(s.port(), "POST", "/v1/organization/projects/" + id + "/archive", "", o.key);
  ASSERT_EQ(archived.status, 200) << archived.body;
  auto aj = parse_json(archived.body);
  EXPECT_EQ(str(aj, "/status"), "archived");
  EXPECT_NE(str(aj, "/archived_at"), "null");
  auto twice = http(s.port(), "POST", "/v1/organization/projects/" + id + "/archive", "", o.key);
  EXPECT_EQ(twice.status, 200) << "archiving is idempotent";
  EXPECT_EQ(str(parse_json(twice.body), "/archived_at"), str(aj, "/archived_at"));
  auto rename_archived =
      http(s.port(), "POST", "/v1/organization/projects/" + id, R"({"name":"x"})", o.key);
  EXPECT_EQ(rename_archived.status, 409);
  EXPECT_EQ(code(rename_archived), "project_archived");
}

TEST(Projects, BadInputIsRefusedWithAReason) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Bad projects");
  auto post = [&](const std::string& body) {
    return http(s.port(), "POST", "/v1/organization/projects", body, o.key);
  };
  EXPECT_EQ(code(post("{}")), "missing_field");
  EXPECT_EQ(code(post(R"({"name":""})")), "invalid_field");
  EXPECT_EQ(code(post(R"({"name":"   "})")), "invalid_field");
  EXPECT_EQ(code(post(R"({"name":"a","color":"red"})")), "unknown_field");
  EXPECT_EQ(code(post(R"({"name":7})")), "invalid_field");
  EXPECT_EQ(code(post("{")), "invalid_json");
  EXPECT_EQ(http(s.port(), "GET", "/v1/organization/projects/proj_nope", "", o.key).status, 404);
  EXPECT_EQ(
      http(s.port(), "GET", "/v1/organization/projects/proj_01M81RKQRM0AXC52V8F5VHBJF0", "", o.key)
          .status,
      404);
  for (const char* q :
       {"?limit=0", "?limit=101", "?limit=x", "?include_archived=yes",
        "?after=key_01M81RKQRM0AXC52V8F5VHBJF0", "?after=proj_01M81RKQRM0AXC52V8F5VHBJF0"}) {
    auto r = http(s.port(), "GET", std::string("/v1/organization/projects") + q, "", o.key);
    EXPECT_EQ(r.status, 400) << q;
    EXPECT_EQ(code(r), "invalid_field") << q;
  }
}

TEST(Projects, ListPagesInCreationOrderAndHidesArchivedOnesUnlessAsked) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Listing");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(new_project(s, o, "p" + std::to_string(i)));
  http(s.port(), "POST", "/v1/organization/projects/" + ids[1] + "/archive", "", o.key);

  auto page = [&](const std::string& q) {
    return parse_json(http(s.port(), "GET", "/v1/organization/projects" + q, "", o.key).body);
  };
  auto first = page("?limit=2");
  EXPECT_EQ(str(first, "/object"), "list");
  EXPECT_EQ(str(first, "/data/0/id"), ids[0]);
  EXPECT_EQ(str(first, "/data/1/id"), ids[2]) << "the archived one is skipped";
  EXPECT_EQ(str(first, "/first_id"), ids[0]);
  EXPECT_EQ(str(first, "/last_id"), ids[2]);
  EXPECT_EQ(str(first, "/has_more"), "true");
  auto second = page("?limit=2&after=" + ids[2]);
  EXPECT_EQ(str(second, "/data/0/id"), ids[3]);
  EXPECT_EQ(str(second, "/data/1/id"), ids[4]);
  EXPECT_EQ(str(second, "/has_more"), "false");
  auto all = page("?include_archived=true&limit=100");
  EXPECT_EQ(str(all, "/data/1/id"), ids[1]);
  EXPECT_EQ(str(all, "/data/1/status"), "archived");
  EXPECT_EQ(str(all, "/data/4/id"), ids[4]);
  EXPECT_EQ(str(all, "/data/5"), "<missing>");
  auto empty = parse_json(
      http(s.port(), "GET", "/v1/organization/projects", "", make_tenant(s, "None").key).body);
  EXPECT_EQ(str(empty, "/first_id"), "null");
  EXPECT_EQ(str(empty, "/last_id"), "null");
  EXPECT_EQ(str(empty, "/has_more"), "false");
}

TEST(Projects, TenantsSeeOnlyTheirOwnAndTheRootKeyNamesTheOrganization) {
  ServerProcess s;
  Tenant a = make_tenant(s, "A"), b = make_tenant(s, "B");
  const std::string bp = new_project(s, b, "b's");
  EXPECT_EQ(http(s.port(), "GET", "/v1/organization/projects/" + bp, "", a.key).status, 404);
  EXPECT_EQ(
      http(s.port(), "POST", "/v1/organization/projects/" + bp, R"({"name":"x"})", a.key).status,
      404);
  EXPECT_EQ(
      http(s.port(), "POST", "/v1/organization/projects/" + bp + "/archive", "", a.key).status,
      404);
  EXPECT_EQ(str(parse_json(http(s.port(), "GET", "/v1/organization/projects", "", a.key).body),
                "/data/0"),
            "<missing>");
  // A key of A cannot be created in B's project.
  auto cross = http(s.port(), "POST", "/v1/organizations/" + a.id + "/api-keys",
                    R"({"name":"x","project_id":")" + bp + "\"}", a.key);
  EXPECT_EQ(cross.status, 404);
  EXPECT_EQ(str(parse_json(cross.body), "/error/param"), "project_id");

  auto root_without = http(s.port(), "GET", "/v1/organization/projects", "", s.root_key());
  EXPECT_EQ(root_without.status, 400);
  const std::vector<std::string> as_b = {"Authorization: Bearer " + s.root_key(),
                                         "OpenAI-Organization: " + b.id};
  auto root_list = parse_json(http(s.port(), "GET", "/v1/organization/projects", "", as_b).body);
  EXPECT_EQ(str(root_list, "/data/0/id"), bp);

  // Scopes: organizations:read lists, organizations:update changes.
  const std::string reader =
      make_key(s, a, R"({"name":"r","scopes":["organizations:read"]})").value;
  EXPECT_EQ(http(s.port(), "GET", "/v1/organization/projects", "", reader).status, 200);
  EXPECT_EQ(code(create_project(s, reader, "no")), "missing_scope");
}

TEST(Projects, KeysLiveInAProjectAndStopWhenItIsArchived) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Keys in projects");
  const std::string project = new_project(s, o, "api");
  const std::string other = new_project(s, o, "other");
  auto in = make_key(s, o, R"({"name":"in","project_id":")" + project + "\"}");
  auto out = make_key(s, o, R"({"name":"out"})");
  ASSERT_FALSE(in.value.empty());

  auto got = parse_json(
      http(s.port(), "GET", "/v1/organizations/" + o.id + "/api-keys/" + in.id, "", o.key).body);
  EXPECT_EQ(str(got, "/data/project_id"), project);
  auto plain = parse_json(
      http(s.port(), "GET", "/v1/organizations/" + o.id + "/api-keys/" + out.id, "", o.key).body);
  EXPECT_EQ(str(plain, "/data/project_id"), "null");

  // The list filter.
  auto listed =
      parse_json(http(s.port(), "GET",
                      "/v1/organizations/" + o.id + "/api-keys?project_id=" + project, "", o.key)
                     .body);
  EXPECT_EQ(str(listed, "/data/0/id"), in.id);
  EXPECT_EQ(str(listed, "/data/1"), "<missing>");
  auto none =
      parse_json(http(s.port(), "GET",
                      "/v1/organizations/" + o.id + "/api-keys?project_id=" + other, "", o.key)
                     .body);
  EXPECT_EQ(str(none, "/data/0"), "<missing>");
  EXPECT_EQ(
      http(s.port(), "GET", "/v1/organizations/" + o.id + "/api-keys?project_id=proj_x", "", o.key)
          .status,
      400);

  // Verification reports the project.
  auto auth = http(s.port(), "GET", "/v1/auth", "", in.value);
  ASSERT_EQ(auth.status, 200);
  EXPECT_EQ(auth.header("x-keygate-project-id"), project);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", out.value).header("x-keygate-project-id"), "");
  auto verified = parse_json(
      http(s.port(), "POST", "/v1/keys/verify", R"({"key":")" + in.value + "\"}", o.key).body);
  EXPECT_EQ(str(verified, "/data/valid"), "true");
  EXPECT_EQ(str(verified, "/data/project_id"), project);

  // A rotation stays in the project.
  auto rotated =
      http(s.port(), "POST", "/v1/organizations/" + o.id + "/api-keys/" + in.id + "/rotations",
           R"({"grace_period_seconds":600})", o.key);
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  const std::string fresh = str(parse_json(rotated.body), "/data/revealed_key");
  EXPECT_EQ(str(parse_json(rotated.body), "/data/project_id"), project);

  // Archiving stops every key of the project, old and new, and nothing else.
  ASSERT_EQ(
      http(s.port(), "POST", "/v1/organization/projects/" + project + "/archive", "", o.key).status,
      200);
  for (const std::string& k : {in.value, fresh}) {
    auto r = http(s.port(), "GET", "/v1/auth", "", k);
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(r.header("x-keygate-code"), "PROJECT_ARCHIVED");
  }
  auto v = parse_json(
      http(s.port(), "POST", "/v1/keys/verify", R"({"key":")" + fresh + "\"}", o.key).body);
  EXPECT_EQ(str(v, "/data/code"), "PROJECT_ARCHIVED");
  EXPECT_EQ(str(v, "/data/project_id"), project);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", out.value).status, 200);
  // And takes no new keys.
  auto refused = http(s.port(), "POST", "/v1/organizations/" + o.id + "/api-keys",
                      R"({"name":"late","project_id":")" + project + "\"}", o.key);
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(code(refused), "project_archived");
}

TEST(Projects, SurviveARestartACrashAndASnapshot) {
  const std::string dir = make_temp_dir() + "/data";
  std::string project, archived, key, key_id;
  Tenant o;
  {
    ServerProcess s({}, dir);
    o = make_tenant(s, "Durable projects");
    project = new_project(s, o, "kept");
    archived = new_project(s, o, "stopped");
    auto k = make_key(s, o, R"({"name":"k","project_id":")" + project + "\"}");
    key = k.value;
    key_id = k.id;
    http(s.port(), "POST", "/v1/organization/projects/" + archived + "/archive", "", o.key);
    s.kill9();
  }
  {
    ServerProcess s({}, dir);
    auto list = parse_json(
        http(s.port(), "GET", "/v1/organization/projects?include_archived=true", "", o.key).body);
    EXPECT_EQ(str(list, "/data/0/id"), project);
    EXPECT_EQ(str(list, "/data/1/status"), "archived");
    EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", key).header("x-keygate-project-id"), project);
    ::kill(s.pid(), SIGUSR1);  // and once more through a snapshot
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ServerProcess s({}, dir);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", key).header("x-keygate-project-id"), project);
  auto got =
      parse_json(http(s.port(), "GET", "/v1/organization/projects/" + archived, "", o.key).body);
  EXPECT_EQ(str(got, "/status"), "archived");
  // Numbers continue after a restart: a third project is the third.
  const std::string third = new_project(s, o, "third");
  auto k3 = make_key(s, o, R"({"name":"k3","project_id":")" + third + "\"}");
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", k3.value).header("x-keygate-project-id"), third);
  s.stop();
  remove_tree(std::filesystem::path(dir).parent_path());
}

// Certificates per project (docs/api.md §7) and the binding rule (§6), every branch, over
// HTTP; and what a restart brings back.
TEST(Projects, CertificatesActivePerProjectBindThatProjectsKeys) {
  const std::string dir = make_temp_dir() + "/data";
  auto org_cert = make_cert("org"), p_cert = make_cert("p"), q_cert = make_cert("q");
  Tenant o;
  std::string p, q, in_p, outside, c_org, c_p, c_q;
  {
    ServerProcess s({"--trust-forwarded-client-cert"}, dir);
    o = make_tenant(s, "Bound projects");
    p = new_project(s, o, "p");
    q = new_project(s, o, "q");
    in_p = make_key(s, o, R"({"name":"in p","project_id":")" + p + "\"}").value;
    outside = make_key(s, o, R"({"name":"outside"})").value;
    c_org = upload(s, o, org_cert);
    c_p = upload(s, o, p_cert);
    c_q = upload(s, o, q_cert);
    const std::string at_p = "/v1/organization/projects/" + p,
                      at_q = "/v1/organization/projects/" + q;

    auto on = set_active(s, o, at_p, "activate", c_p);
    ASSERT_EQ(on.status, 200) << on.body;
    auto page = parse_json(on.body);
    EXPECT_EQ(str(page, "/object"), "list");
    EXPECT_EQ(str(page, "/data/0/object"), "organization.project.certificate");
    EXPECT_EQ(str(page, "/data/0/id"), c_p);
    EXPECT_EQ(str(page, "/data/0/active"), "true");
    ASSERT_EQ(set_active(s, o, at_q, "activate", c_q).status, 200);

    // The project's list: every certificate of the organization, `active` for this project.
    auto listed =
        parse_json(http(s.port(), "GET", at_p + "/certificates?order=asc", "", o.key).body);
    EXPECT_EQ(str(listed, "/data/0/id"), c_org);
    EXPECT_EQ(str(listed, "/data/0/active"), "false");
    EXPECT_EQ(str(listed, "/data/1/id"), c_p);
    EXPECT_EQ(str(listed, "/data/1/active"), "true");
    EXPECT_EQ(str(listed, "/data/2/active"), "false") << "q's is active for q, not p";
    auto paged = parse_json(http(s.port(), "GET", at_p + "/certificates?limit=1", "", o.key).body);
    EXPECT_EQ(str(paged, "/data/0/id"), c_q) << "newest first by default";
    EXPECT_EQ(str(paged, "/has_more"), "true");
    // The organization's list is unchanged: nothing is active for the organization.
    auto org_list =
        parse_json(http(s.port(), "GET", "/v1/organization/certificates", "", o.key).body);
    EXPECT_EQ(str(org_list, "/data/0/active"), "false");

    // Project p's certificate binds p's keys only.
    EXPECT_EQ(auth(s, in_p, nullptr), "CERTIFICATE_REQUIRED");
    EXPECT_EQ(auth(s, in_p, &q_cert), "CERTIFICATE_REQUIRED");
    EXPECT_EQ(auth(s, in_p, &p_cert), "200");
    EXPECT_EQ(auth(s, outside, nullptr), "200");
    // An organization certificate binds every key and is accepted for p's too.
    ASSERT_EQ(set_active(s, o, "/v1/organization", "activate", c_org).status, 200);
    EXPECT_EQ(auth(s, outside, nullptr), "CERTIFICATE_REQUIRED");
    EXPECT_EQ(auth(s, outside, &p_cert), "CERTIFICATE_REQUIRED");
    EXPECT_EQ(auth(s, outside, &org_cert), "200");
    EXPECT_EQ(auth(s, in_p, &org_cert), "200");
    EXPECT_EQ(auth(s, in_p, &p_cert), "200");

    // Deleting a certificate active for a project: 409; idempotent deactivation; unknown ids.
    auto del = http(s.port(), "DELETE", "/v1/organization/certificates/" + c_p, "", o.key);
    EXPECT_EQ(del.status, 409);
    EXPECT_EQ(code(del), "certificate_active");
    EXPECT_EQ(set_active(s, o, at_q, "deactivate", c_p).status, 200) << "already inactive there";
    EXPECT_EQ(set_active(s, o, at_p, "activate", "cert_01M81RKQRM0AXC52V8F5VHBJF0").status, 404);
    EXPECT_EQ(set_active(s, o, "/v1/organization/projects/proj_01M81RKQRM0AXC52V8F5VHBJF0",
                         "activate", c_p)
                  .status,
              404);
    // Another organization sees none of it.
    Tenant other = make_tenant(s, "Other");
    EXPECT_EQ(http(s.port(), "GET", at_p + "/certificates", "", other.key).status, 404);
    EXPECT_EQ(set_active(s, other, at_p, "deactivate", c_p).status, 404);
    s.kill9();
  }
  ServerProcess s({"--trust-forwarded-client-cert"}, dir);
  EXPECT_EQ(auth(s, in_p, &p_cert), "200");
  EXPECT_EQ(auth(s, outside, &p_cert), "CERTIFICATE_REQUIRED");
  auto listed = parse_json(
      http(s.port(), "GET", "/v1/organization/projects/" + q + "/certificates", "", o.key).body);
  EXPECT_EQ(str(listed, "/data/0/id"), c_q);
  EXPECT_EQ(str(listed, "/data/0/active"), "true");
  s.stop();
  remove_tree(std::filesystem::path(dir).parent_path());
}

// OpenAI's project API key endpoints over keygate's keys in a project (docs/api.md §7).
TEST(Projects, ProjectApiKeysListGetAndDeleteTheProjectsOwnKeys) {
  ServerProcess s;
  Tenant o = make_tenant(s, "Project keys");
  const std::string p = new_project(s, o, "p"), q = new_project(s, o, "q");
  std::vector<CreatedKey> in_p;
  for (int i = 0; i < 3; ++i)
    in_p.push_back(
        make_key(s, o, R"({"name":"k)" + std::to_string(i) + R"(","project_id":")" + p + "\"}"));
  const CreatedKey in_q = make_key(s, o, R"({"name":"kq","project_id":")" + q + "\"}");
  const CreatedKey outside = make_key(s, o, R"({"name":"outside"})");
  const std::string at = "/v1/organization/projects/" + p + "/api_keys";
  http(s.port(), "GET", "/v1/auth", "", in_p[0].value);  // a last use to report

  const std::string body = http(s.port(), "GET", at + "?limit=2", "", o.key).body;
  EXPECT_EQ(body.find(in_p[0].value), std::string::npos) << "never the value";
  auto page = parse_json(body);
  EXPECT_EQ(str(page, "/object"), "list");
  EXPECT_EQ(str(page, "/data/0/object"), "organization.project.api_key");
  EXPECT_EQ(str(page, "/data/0/id"), in_p[0].id);
  EXPECT_EQ(str(page, "/data/0/name"), "k0");
  const std::string redacted = str(page, "/data/0/redacted_value");
  EXPECT_EQ(redacted.substr(0, 8), "sk_live_");
  EXPECT_EQ(redacted.substr(redacted.size() - 4), in_p[0].value.substr(in_p[0].value.size() - 4));
  EXPECT_NE(str(page, "/data/0/last_used_at"), "null");
  EXPECT_EQ(str(page, "/data/0/owner_project_access"), "active");
  EXPECT_EQ(str(page, "/data/1/id"), in_p[1].id);
  EXPECT_EQ(str(page, "/has_more"), "true");
  EXPECT_EQ(str(page, "/last_id"), in_p[1].id);
  auto rest = parse_json(http(s.port(), "GET", at + "?after=" + in_p[1].id, "", o.key).body);
  EXPECT_EQ(str(rest, "/data/0/id"), in_p[2].id);
  EXPECT_EQ(str(rest, "/data/1"), "<missing>") << "q's key and the key in no project are not p's";

  auto one = http(s.port(), "GET", at + "/" + in_p[2].id, "", o.key);
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(str(parse_json(one.body), "/id"), in_p[2].id);
  EXPECT_EQ(http(s.port(), "GET", at + "/" + in_q.id, "", o.key).status, 404);
  EXPECT_EQ(http(s.port(), "GET", at + "/" + outside.id, "", o.key).status, 404);

  auto del = http(s.port(), "DELETE", at + "/" + in_p[2].id, "", o.key);
  ASSERT_EQ(del.status, 200) << del.body;
  auto dj = parse_json(del.body);
  EXPECT_EQ(str(dj, "/object"), "organization.project.api_key.deleted");
  EXPECT_EQ(str(dj, "/id"), in_p[2].id);
  EXPECT_EQ(str(dj, "/deleted"), "true");
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", in_p[2].value).header("x-keygate-code"),
            "REVOKED");
  EXPECT_EQ(http(s.port(), "GET", at + "/" + in_p[2].id, "", o.key).status, 404);
  EXPECT_EQ(http(s.port(), "DELETE", at + "/" + in_p[2].id, "", o.key).status, 404);

  // owner_project_access follows the project's state.
  auto inactive =
      parse_json(http(s.port(), "GET", at + "?owner_project_access=inactive", "", o.key).body);
  EXPECT_EQ(str(inactive, "/data/0"), "<missing>");
  http(s.port(), "POST", "/v1/organization/projects/" + p + "/archive", "", o.key);
  inactive =
      parse_json(http(s.port(), "GET", at + "?owner_project_access=inactive", "", o.key).body);
  EXPECT_EQ(str(inactive, "/data/0/owner_project_access"), "inactive");
  EXPECT_EQ(http(s.port(), "GET", at + "?owner_project_access=sometimes", "", o.key).status, 400);

  // Tenancy and scopes.
  Tenant other = make_tenant(s, "Other");
  EXPECT_EQ(http(s.port(), "GET", at, "", other.key).status, 404);
  EXPECT_EQ(http(s.port(), "DELETE", at + "/" + in_p[0].id, "", other.key).status, 404);
  const std::string reader = make_key(s, o, R"({"name":"r","scopes":["api_keys:read"]})").value;
  EXPECT_EQ(http(s.port(), "GET", at, "", reader).status, 200);
  EXPECT_EQ(code(http(s.port(), "DELETE", at + "/" + in_p[0].id, "", reader)), "missing_scope");
}
