// A full disk (here: RLIMIT_FSIZE on the running server, so appends fail with EFBIG) fails
// mutations with 503 storage_unavailable, keeps reads and verification going, loses
// nothing acknowledged, and recovers by itself when space returns.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <filesystem>

#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

// Only the soft limit: raising it again needs no privilege.
void set_file_limit(pid_t pid, rlim_t bytes) {
  rlimit r{bytes, RLIM_INFINITY};
  ASSERT_EQ(prlimit(pid, RLIMIT_FSIZE, &r, nullptr), 0);
}

uint64_t log_size(const std::string& dir) {
  uint64_t total = 0;
  for (auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".kgl") total += std::filesystem::file_size(e.path());
  return total;
}

}  // namespace

TEST(StorageFault, AFullDiskFailsWritesWith503AndRecoversWhenSpaceReturns) {
  const std::string dir = make_temp_dir() + "/data";
  std::string org, key;
  {
    ServerProcess s({}, dir);
    auto j = parse_json(
        http(s.port(), "POST", "/v1/organizations", R"({"name":"Before"})", s.root_key()).body);
    org = str(j, "/data/id");
    key = str(j, "/data/api_key/revealed_key");
    const uint64_t size = log_size(dir);
    set_file_limit(s.pid(), size + 64);  // room for less than one more change

    auto full = http(s.port(), "POST", "/v1/organizations", R"({"name":"During"})", s.root_key());
    EXPECT_EQ(full.status, 503);
    EXPECT_EQ(str(parse_json(full.body), "/error/code"), "storage_unavailable");
    EXPECT_EQ(str(parse_json(full.body), "/error/type"), "api_error");
    EXPECT_EQ(http(s.port(), "GET", "/readyz").status, 503);
    EXPECT_EQ(log_size(dir), size);  // the half-written batch was cut off
    // Reads and verification go on.
    EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", key).status, 200);
    EXPECT_EQ(http(s.port(), "GET", "/v1/organizations/" + org, "", key).status, 200);
    EXPECT_EQ(http(s.port(), "GET", "/healthz").status, 200);
    // Nothing of the failed change is visible.
    EXPECT_EQ(str(parse_json(http(s.port(), "GET", "/v1/organizations", "", s.root_key()).body),
                  "/data/1"),
              "<missing>");

    set_file_limit(s.pid(), RLIM_INFINITY);
    auto after = http(s.port(), "POST", "/v1/organizations", R"({"name":"During"})", s.root_key());
    EXPECT_EQ(after.status, 201) << after.body;
    EXPECT_EQ(http(s.port(), "GET", "/readyz").status, 200);
    s.kill9();
  }
  ServerProcess again({}, dir);
  EXPECT_EQ(again.log().find("torn"), std::string::npos);
  auto list = parse_json(http(again.port(), "GET", "/v1/organizations", "", again.root_key()).body);
  EXPECT_EQ(str(list, "/data/0/name"), "Before");
  EXPECT_EQ(str(list, "/data/1/name"), "During");
  EXPECT_EQ(str(list, "/data/2"), "<missing>");
  again.stop();
  remove_tree(std::filesystem::path(dir).parent_path());
}
