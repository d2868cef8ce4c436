// --admin-listen: the management API on a listener (and reactor thread) of its own, and
// --listen's reactors left to verification and the operations endpoints (docs/operations.md,
// "The admin listener").
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/etcd_cluster.hpp"  // free_port()
#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

// The names of the server's threads (/proc/PID/task/*/comm).
std::vector<std::string> thread_names(pid_t pid) {
  std::vector<std::string> names;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.push_back(name);
  }
  return names;
}

}  // namespace

TEST(AdminListener, ServesTheManagementApiWhileTheMainListenerServesVerificationOnly) {
  const uint16_t admin = free_port();
  ServerProcess s({"--admin-listen", "127.0.0.1:" + std::to_string(admin)});
  EXPECT_NE(s.log().find("\"event\":\"listening.admin\""), std::string::npos) << s.log();
  // The management API, on the admin listener.
  auto created = http(admin, "POST", "/v1/organizations", R"({"name":"Admin Port"})", s.root_key());
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string org = str(parse_json(created.body), "/data/id");
  const std::string owner = str(parse_json(created.body), "/data/api_key/revealed_key");
  auto key =
      http(admin, "POST", "/v1/organizations/" + org + "/api-keys", R"({"name":"svc"})", owner);
  ASSERT_EQ(key.status, 201) << key.body;
  const std::string value = str(parse_json(key.body), "/data/revealed_key");

  // Not on the main one: a 404 that names the admin listener, for every management family.
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"POST", "/v1/organizations"},
           {"GET", "/v1/organizations/" + org},
           {"GET", "/v1/organizations/" + org + "/api-keys"},
           {"GET", "/v1/organization/certificates"},
           {"GET", "/v1/organization/projects"},
           {"GET", "/v1/organization/audit_logs"}}) {
    auto r = http(s.port(), method, path, method == "POST" ? R"({"name":"x"})" : "", s.root_key());
    EXPECT_EQ(r.status, 404) << method << " " << path << ": " << r.body;
    EXPECT_EQ(str(parse_json(r.body), "/error/code"), "not_found");
    EXPECT_NE(r.body.find("--admin-listen"), std::string::npos) << r.body;
  }
  // Verification and the operations endpoints stay on the main listener.
  auto auth = http(s.port(), "GET", "/v1/auth", "", value);
  EXPECT_EQ(auth.status, 200) << auth.body;
  auto verify = http(s.port(), "POST", "/v1/keys/verify", "{\"key\":\"" + value + "\"}", owner);
  EXPECT_EQ(verify.status, 200) << verify.body;
  EXPECT_EQ(str(parse_json(verify.body), "/data/code"), "VALID");
  for (const char* path : {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"})
    EXPECT_EQ(http(s.port(), "GET", path).status, 200) << path;
  // The admin listener serves everything, verification included.
  EXPECT_EQ(http(admin, "GET", "/v1/auth", "", value).status, 200);
  // A revocation there is seen by the main listener at once: one index behind both.
  auto revoked = http(
      admin, "DELETE",
      "/v1/organizations/" + org + "/api-keys/" + str(parse_json(key.body), "/data/id"), "", owner);
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  auto after = http(s.port(), "GET", "/v1/auth", "", value);
  EXPECT_EQ(after.status, 401) << after.body;
  EXPECT_EQ(after.header("x-keygate-code"), "REVOKED");
  // Its own reactor thread, named for pinning (perf/bench_under_writes.sh).
  const auto names = thread_names(s.pid());
  EXPECT_NE(std::find(names.begin(), names.end(), "kg-admin-0"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "kg-reactor-0"), names.end());
  // And both go on after a restart.
  s.stop();
  s.start();
  EXPECT_EQ(http(admin, "GET", "/v1/organizations/" + org, "", owner).status, 200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations/" + org, "", owner).status, 404);
}

TEST(AdminListener, ABadAddressOrABusyPortIsRefusedAtStart) {
  try {
    ServerProcess s({"--admin-listen", "localhost:9"});
    ADD_FAILURE() << "started with a host name: " << s.log();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--admin-listen localhost:9: the host must be an IPv4"),
              std::string::npos)
        << e.what();
  }
  // A port another socket holds (without SO_REUSEPORT, so not shared).
  uint16_t held_port = 0;
  const int held = listen_loopback(held_port);
  const std::string busy = "127.0.0.1:" + std::to_string(held_port);
  try {
    ServerProcess s({"--admin-listen", busy});
    ADD_FAILURE() << "started on a port another socket holds: " << s.log();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on " + busy), std::string::npos)
        << e.what();
  }
  ::close(held);
}

// --max-connections counts the connections of both listeners together, as its help says
// ("across all threads"): the admin listener has no limit of its own beside it.
TEST(AdminListener, SharesTheConnectionLimitWithTheMainListener) {
  const uint16_t admin = free_port();
  ServerProcess s(
      {"--admin-listen", "127.0.0.1:" + std::to_string(admin), "--max-connections", "2"});
  const int a = connect_to(s.port()), b = connect_to(s.port());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // both accepted
  const std::string refused =
      send_raw(admin, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(refused, "") << "a third connection, on the admin listener, was served";
  ::close(a);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its end seen
  const std::string served =
      send_raw(admin, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(served.rfind("HTTP/1.1 200", 0), 0u) << served;
  ::close(b);
}
