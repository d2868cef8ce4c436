// The harness is what every integration test stands on: it must report what the server
// really did, and fail the test when it cannot deliver a fixture, rather than hand the
// test a placeholder that makes it pass or fail for another reason.
#include "support/harness.hpp"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

#include "support/etcd_cluster.hpp"

using namespace keygate::testing;

namespace {

// A loopback port that nothing listens on (bound, read, released).
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

TEST(Harness, AServerProcessIsReadyOnItsPortWithItsGeneratedRootKey) {
  ServerProcess s;
  ASSERT_TRUE(s.running());
  EXPECT_NE(s.port(), 0);
  EXPECT_GE(s.root_key().size(), 32u);
  EXPECT_EQ(http(s.port(), "GET", "/healthz").status, 200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations", "", s.root_key()).status, 200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations", "", s.root_key() + "x").status, 401);
  EXPECT_NE(send_raw(s.port(), "GET /healthz HTTP/1.1\r\n\r\n").find("HTTP/1.1 200 OK"),
            std::string::npos);
  EXPECT_EQ(s.stop(), 0) << s.log();
  EXPECT_FALSE(s.running());
}

TEST(Harness, HttpReportsAFailedConnectionAsStatusMinusOneWithTheReason) {
  const auto r = http(closed_port(), "GET", "/healthz");
  EXPECT_EQ(r.status, -1);
  EXPECT_FALSE(r.body.empty());
}

TEST(Harness, FixturesThatCannotBeMadeFailTheTestWithTheServersAnswer) {
  ServerProcess s;
  const Tenant t = make_tenant(s, "Harness");
  EXPECT_EQ(t.id.substr(0, 4), "org_");
  EXPECT_EQ(t.key.substr(0, 8), "sk_live_");
  const CreatedKey k = make_key(s, t, R"({"name":"k","type":"secret","scopes":["api_keys:read"]})");
  EXPECT_EQ(k.id.substr(0, 4), "key_");
  EXPECT_EQ(k.value.substr(0, 8), "sk_live_");

  bool threw = false;
  EXPECT_NONFATAL_FAILURE(
      {
        try {
          make_key(s, t, R"({"type":"secret"})");  // no name: the server answers 400
        } catch (const std::runtime_error&) {
          threw = true;
        }
      },
      "make_key: HTTP 400");
  EXPECT_TRUE(threw) << "the test must not go on with no key";
  threw = false;
  EXPECT_NONFATAL_FAILURE(
      {
        try {
          make_tenant(s, "Harness");  // the same name makes the same slug: 409
        } catch (const std::runtime_error&) {
          threw = true;
        }
      },
      "make_tenant: HTTP 409");
  EXPECT_TRUE(threw);
}

TEST(Harness, ConnectToAndParseJsonFailTheTestRatherThanReturnAPlaceholder) {
  const uint16_t port = closed_port();
  EXPECT_NONFATAL_FAILURE(
      {
        try {
          connect_to(port);
        } catch (const std::runtime_error&) {
        }
      },
      "connect_to: 127.0.0.1:");
  EXPECT_NONFATAL_FAILURE(
      {
        try {
          parse_json("<html>");
        } catch (const std::runtime_error&) {
        }
      },
      "parse_json: not JSON: <html>");
}

// The failure points at the helper's line that gave up, not at the shared check.
TEST(Harness, AHelpersFailureIsReportedAtTheHelpersOwnLine) {
  ::testing::TestPartResultArray failures;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    try {
      connect_to(closed_port());
    } catch (const std::runtime_error&) {
    }
  }
  ASSERT_EQ(failures.size(), 1);
  const ::testing::TestPartResult& f = failures.GetTestPartResult(0);
  EXPECT_TRUE(f.nonfatally_failed());
  ASSERT_NE(f.file_name(), nullptr);
  EXPECT_TRUE(std::string(f.file_name()).ends_with("support/harness.cpp")) << f.file_name();
  EXPECT_GT(f.line_number(), 0);
}

TEST(Harness, StrReadsStringsNumbersNullsAndSaysWhatIsMissing) {
  auto j = parse_json(R"({"data":{"s":"text","n":42,"z":null,"b":true}})");
  EXPECT_EQ(str(j, "/data/s"), "text");
  EXPECT_EQ(str(j, "/data/n"), "42");
  EXPECT_EQ(str(j, "/data/z"), "null");
  EXPECT_EQ(str(j, "/data/b"), "true");
  EXPECT_EQ(str(j, "/data/absent"), "<missing>");
}

TEST(Harness, RunCommandReturnsBothOutputsAndTheExitStatus) {
  int status = -1;
  EXPECT_EQ(run_command("echo out; echo err >&2; exit 3", status), "out\nerr\n");
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
}

// A port handed to a program that binds it later must not be one the kernel gives the
// next outgoing connection of a test running beside it (a cluster test once failed so
// while a test held 10,000 connections): free_port() draws below the ephemeral range.
TEST(Harness, FreePortsAreBindableBelowTheEphemeralRangeAndNeverRepeat) {
  int low = 0, high = 0;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low >> high;
  ASSERT_GT(low, 0);
  std::set<uint16_t> seen;
  for (int i = 0; i < 300; ++i) {
    const uint16_t port = free_port();
    EXPECT_LT(port, low);
    EXPECT_TRUE(seen.insert(port).second) << port << " twice";
    uint16_t asked = port;
    ::close(listen_loopback(asked));  // fails the test if it cannot
  }
}

// An etcd member that cannot bind its port exits at once; the cluster helper says so with
// the member's log instead of waiting out its 30 s for a health that cannot come.
TEST(Harness, AnEtcdMemberThatCannotBindFailsTheTestAtOnceWithItsLog) {
  EtcdCluster etcd(1);
  etcd.stop(0);
  // Another program's listener on the member's port (which etcd's health checks left in
  // TIME_WAIT): it hangs up on whoever connects.
  uint16_t port = etcd.client_port(0);
  const int taken = listen_loopback(port);
  std::thread holder([taken] {
    for (int fd; (fd = ::accept(taken, nullptr, nullptr)) >= 0;) ::close(fd);
  });
  const auto began = std::chrono::steady_clock::now();
  EXPECT_NONFATAL_FAILURE(
      {
        try {
          etcd.start(0);
        } catch (const std::runtime_error&) {
        }
      },
      "member m0 exited");
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(20));
  ::shutdown(taken, SHUT_RDWR);  // ends the accept
  holder.join();
  ::close(taken);
}
