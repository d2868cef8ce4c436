// Everything acknowledged survives a restart: organizations, keys, rotations, revocations,
// with or without a snapshot in between.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

void wait_for_snapshot(const std::string& dir) {
  for (int i = 0; i < 100; ++i) {
    for (auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().extension() == ".kgs") return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL() << "no snapshot appeared";
}

}  // namespace

class Restart : public ::testing::TestWithParam<bool> {};

TEST_P(Restart, KeysRotationsAndRevocationsSurvive) {
  const bool with_snapshot = GetParam();
  const std::string dir = make_temp_dir() + "/data";
  std::string org, admin, rotated_value, new_value, revoked_value, renamed_id;
  {
    ServerProcess s({}, dir);
    auto j = parse_json(
        http(s.port(), "POST", "/v1/organizations", R"({"name":"Durable"})", s.root_key()).body);
    org = str(j, "/data/id");
    admin = str(j, "/data/api_key/revealed_key");
    const std::string base = "/v1/organizations/" + org + "/api-keys";
    auto a = parse_json(http(s.port(), "POST", base, R"({"name":"a"})", admin).body);
    rotated_value = str(a, "/data/revealed_key");
    new_value =
        str(parse_json(http(s.port(), "POST", base + "/" + str(a, "/data/id") + "/rotations",
                            R"({"grace_period_seconds":3600})", admin)
                           .body),
            "/data/revealed_key");
    auto b = parse_json(http(s.port(), "POST", base, R"({"name":"b"})", admin).body);
    revoked_value = str(b, "/data/revealed_key");
    http(s.port(), "DELETE", base + "/" + str(b, "/data/id"), "", admin);
    renamed_id = str(parse_json(http(s.port(), "POST", base, R"({"name":"before"})", admin).body),
                     "/data/id");
    if (with_snapshot) {
      ::kill(s.pid(), SIGUSR1);
      wait_for_snapshot(dir);
    }
    http(s.port(), "PATCH", base + "/" + renamed_id, R"({"name":"after"})", admin);
    if (with_snapshot) s.kill9();  // no graceful flush: the log after the snapshot must do
  }
  ServerProcess s({}, dir);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", rotated_value).status,
            200);  // in its grace period
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", new_value).status, 200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", revoked_value).header("x-keygate-code"),
            "REVOKED");
  auto k = parse_json(
      http(s.port(), "GET", "/v1/organizations/" + org + "/api-keys/" + renamed_id, "", admin)
          .body);
  EXPECT_EQ(str(k, "/data/name"), "after");
  EXPECT_EQ(str(parse_json(http(s.port(), "GET", "/v1/organizations/" + org, "", admin).body),
                "/data/slug"),
            "durable");
  // The slug is still taken after the restart.
  EXPECT_EQ(
      http(s.port(), "POST", "/v1/organizations", R"({"name":"Durable"})", s.root_key()).status,
      409);
  s.stop();
  remove_tree(std::filesystem::path(dir).parent_path());
}

INSTANTIATE_TEST_SUITE_P(LogOnlyAndSnapshot, Restart, ::testing::Bool());

TEST(DataDirectory, ASecondServerOnTheSameDirectoryExitsWithAClearMessage) {
  ServerProcess first;
  try {
    ServerProcess second({}, first.data_dir());
    FAIL() << "a second server started on the same data directory";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("another keygate process"), std::string::npos) << e.what();
  }
  EXPECT_EQ(std::filesystem::status(first.data_dir()).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);
  EXPECT_EQ(std::filesystem::status(first.data_dir() + "/root.key").permissions() &
                std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST(DataDirectory, CheckPrintsCountsOffline) {
  const std::string dir = make_temp_dir() + "/data";
  {
    ServerProcess s({}, dir);
    http(s.port(), "POST", "/v1/organizations", R"({"name":"Counted"})", s.root_key());
  }
  int status = -1;
  const std::string out =
      run_command(std::string(KEYGATE_BINARY) + " check --data-dir " + dir, status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("organizations: 1"), std::string::npos) << out;
  EXPECT_NE(out.find("api keys: 1"), std::string::npos) << out;
  remove_tree(std::filesystem::path(dir).parent_path());
}
