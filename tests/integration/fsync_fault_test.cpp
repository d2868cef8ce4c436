// A disk whose fdatasync fails (support/fail_fsync.c, preloaded into the real binary: the
// failing sync also drops what was written since the file's last good one, as a kernel
// does with pages it could not write back). Whatever the fsync mode, the running server
// must never serve a change that its log cannot hold after a restart (FORMAT.md, "Failures
// while running").
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/harness.hpp"

using namespace keygate::testing;
using namespace std::chrono_literals;

namespace {

// A server whose log segments' syncs fail while `control` holds a count (fail_fsync.c).
struct FailingDisk {
  std::string root = make_temp_dir();
  std::string dir = root + "/data";
  std::string control = root + "/fail-fsync";

  FailingDisk() { arm(0); }
  ~FailingDisk() { remove_tree(root); }
  void arm(int failures) const { std::ofstream(control, std::ios::trunc) << failures << "\n"; }
  int left() const {
    int n = -2;
    std::ifstream(control) >> n;
    return n;
  }
  std::vector<std::string> env() const {
    const char* asan = std::getenv("ASAN_OPTIONS");
    // An ASan build wants its runtime first among the loaded libraries; the preloaded
    // library is not instrumented and needs nothing of it.
    return {std::string("LD_PRELOAD=") + KEYGATE_FAIL_FSYNC_LIB,
            "KEYGATE_TEST_FAIL_FSYNC=" + control,
            std::string("ASAN_OPTIONS=") + (asan ? asan : "") + ":verify_asan_link_order=0"};
  }
};

uint64_t metric(const ServerProcess& s, const std::string& name) {
  const std::string text = http(s.port(), "GET", "/metrics").body;
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? ~0ull : std::stoull(text.substr(at + name.size() + 2));
}

// Waits until the server has made at least one more fdatasync of its log than `before`.
void wait_for_sync(const ServerProcess& s, uint64_t before) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (metric(s, "keygate_fsync_duration_seconds_count") <= before) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no fdatasync within 10 s";
    std::this_thread::sleep_for(20ms);
  }
}

bool log_has(const ServerProcess& s, const std::string& event, std::chrono::seconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (s.log().find("\"event\":\"" + event + "\"") == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

long verify(const ServerProcess& s, const std::string& key) {
  return http(s.port(), "GET", "/v1/auth", "", key).status;
}

}  // namespace

TEST(FsyncFault, EverysecWritesAgainWhatAFailedFsyncLostSoAServedKeySurvivesARestart) {
  FailingDisk disk;
  std::string k1, k2, k3;
  {
    ServerProcess s({"--fsync", "everysec"}, disk.dir, {}, disk.env());
    const Tenant t = make_tenant(s, "Everysec");
    const uint64_t syncs = metric(s, "keygate_fsync_duration_seconds_count");
    k1 = make_key(s, t, R"({"name":"before"})").value;
    wait_for_sync(s, syncs);  // k1 is durable

    disk.arm(1);
    k2 = make_key(s, t, R"({"name":"during"})").value;  // acknowledged after the write alone
    EXPECT_EQ(verify(s, k2), 200);
    ASSERT_TRUE(log_has(s, "log.fsync_failed", 10s)) << s.log();
    EXPECT_EQ(disk.left(), 0);
    // The failed sync dropped k2's bytes; the server wrote them again from memory.
    ASSERT_TRUE(log_has(s, "log.resynced", 5s)) << s.log();
    EXPECT_EQ(metric(s, "keygate_log_writable"), 1u);
    EXPECT_GE(metric(s, "keygate_log_write_failures_total"), 1u);
    EXPECT_EQ(verify(s, k2), 200);
    k3 = make_key(s, t, R"({"name":"after"})").value;  // writes go on
    EXPECT_EQ(s.stop(), 0);
  }
  ServerProcess again({"--fsync", "everysec"}, disk.dir);
  EXPECT_EQ(verify(again, k1), 200);
  EXPECT_EQ(verify(again, k2), 200)
      << "a key the server verified before the failed fsync is gone after a restart";
  EXPECT_EQ(verify(again, k3), 200);
}

TEST(FsyncFault, EverysecEndsTheServerWhenTheLogCannotTakeBackWhatItServed) {
  FailingDisk disk;
  std::string k1;
  {
    ServerProcess s({"--fsync", "everysec"}, disk.dir, {}, disk.env());
    const Tenant t = make_tenant(s, "Broken disk");
    const uint64_t syncs = metric(s, "keygate_fsync_duration_seconds_count");
    k1 = make_key(s, t, R"({"name":"durable"})").value;
    wait_for_sync(s, syncs);

    disk.arm(-1);  // every sync fails from now on: the kept bytes cannot be made durable
    make_key(s, t, R"({"name":"lost"})");
    if (!log_has(s, "log.durability_lost", 10s)) {
      s.kill9();
      FAIL() << "the server kept serving changes its log cannot hold: " << s.log();
    }
    EXPECT_EQ(s.wait_exit(), 74)
        << s.log();  // EX_IOERR: systemd's Restart=on-failure starts it again
    EXPECT_NE(s.log().find("\"event\":\"exiting\""), std::string::npos);
  }
  disk.arm(0);
  // The restart starts from what is durable and agrees with itself: the log is whole.
  ServerProcess again({"--fsync", "everysec"}, disk.dir);
  EXPECT_EQ(again.log().find("corrupt"), std::string::npos) << again.log();
  EXPECT_EQ(verify(again, k1), 200);
}

TEST(FsyncFault, AlwaysFailsTheChangeWith503ServesNothingOfItAndResumes) {
  FailingDisk disk;
  {
    ServerProcess s({}, disk.dir, {}, disk.env());
    const auto root = s.root_key();
    ASSERT_EQ(http(s.port(), "POST", "/v1/organizations", R"({"name":"First"})", root).status, 201);
    disk.arm(1);
    auto failed = http(s.port(), "POST", "/v1/organizations", R"({"name":"Lost"})", root);
    EXPECT_EQ(failed.status, 503) << failed.body;
    EXPECT_EQ(str(parse_json(failed.body), "/error/code"), "storage_unavailable");
    auto list = parse_json(http(s.port(), "GET", "/v1/organizations", "", root).body);
    EXPECT_EQ(str(list, "/data/1"), "<missing>");  // nothing of the failed change is visible
    // The next change reopens the log at its durable size and succeeds.
    EXPECT_EQ(http(s.port(), "POST", "/v1/organizations", R"({"name":"Third"})", root).status, 201);
    s.kill9();
  }
  ServerProcess again({}, disk.dir);
  auto list = parse_json(http(again.port(), "GET", "/v1/organizations", "", again.root_key()).body);
  EXPECT_EQ(str(list, "/data/0/name"), "First");
  EXPECT_EQ(str(list, "/data/1/name"), "Third");
  EXPECT_EQ(str(list, "/data/2"), "<missing>");
}
