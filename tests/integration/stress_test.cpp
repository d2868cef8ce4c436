// Verification from every reactor thread while the writer creates, rotates and revokes
// keys and snapshots are taken: every answer is one the key's state allows, nothing fails,
// and the server stops cleanly. Under KEYGATE_SANITIZE=thread this is the test that lets
// ThreadSanitizer watch the reactors, the journal and the snapshot thread share the index:
// a race it finds makes the server exit 66 at its stop, and the test fails.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/harness.hpp"

using namespace keygate::testing;
using namespace std::chrono_literals;

TEST(Stress, VerificationOnEveryReactorWhileTheWriterChurnsAndSnapshots) {
  ServerProcess s({"--threads", "2", "--secret-rate", "0", "--snapshot-bytes", "65536"}, {}, {},
                  {"TSAN_OPTIONS=suppressions=" KEYGATE_SOURCE_DIR "/tests/tsan.supp"});
  const Tenant t = make_tenant(s, "Stress");
  std::vector<std::string> stable;  // never changed: must verify throughout
  for (int i = 0; i < 20; ++i) stable.push_back(make_key(s, t, R"({"name":"stable"})").value);
  std::atomic<bool> stop{false};
  std::atomic<int> verified{0}, wrong{0}, writes{0}, write_failures{0};
  std::vector<std::thread> threads;
  for (int v = 0; v < 4; ++v)  // keep-alive connections: the kernel spreads them over both reactors
    threads.emplace_back([&, v] {
      for (size_t i = static_cast<size_t>(v); !stop; i += 4) {
        const HttpResponse r = http(s.port(), "GET", "/v1/auth", "", stable[i % stable.size()]);
        (r.status == 200 ? verified : wrong)++;
      }
    });
  for (int w = 0; w < 2; ++w)
    threads.emplace_back([&] {
      while (!stop) {
        const HttpResponse c = http(s.port(), "POST", "/v1/organizations/" + t.id + "/api-keys",
                                    R"({"name":"churn"})", t.key);
        if (c.status != 201) {
          ++write_failures;
          continue;
        }
        const std::string id = str(parse_json(c.body), "/data/id");
        const std::string base = "/v1/organizations/" + t.id + "/api-keys/";
        const HttpResponse rot = http(s.port(), "POST", base + id + "/rotations",
                                      R"({"grace_period_seconds":0})", t.key);
        if (rot.status != 201) {
          ++write_failures;
          continue;
        }
        const std::string successor = str(parse_json(rot.body), "/data/id");
        const std::string value = str(parse_json(rot.body), "/data/revealed_key");
        if (http(s.port(), "DELETE", base + successor, "", t.key).status != 200) ++write_failures;
        // Revoked before the DELETE returned: no reactor may let it through after.
        if (http(s.port(), "GET", "/v1/auth", "", value).header("x-keygate-code") != "REVOKED")
          ++write_failures;
        writes += 3;
      }
    });
  threads.emplace_back([&] {
    while (!stop) {
      ::kill(s.pid(), SIGUSR1);
      std::this_thread::sleep_for(150ms);
    }
  });
  std::this_thread::sleep_for(3s);
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(write_failures.load(), 0);
  EXPECT_GT(verified.load(), 100);
  EXPECT_GT(writes.load(), 30);
  EXPECT_NE(s.log().find("\"event\":\"snapshot.written\""), std::string::npos);
  EXPECT_EQ(s.stop(), 0) << s.log().substr(s.log().size() > 4000 ? s.log().size() - 4000 : 0);
  std::printf("[ figures  ] %d verifications, %d writes in 3 s\n", verified.load(), writes.load());
}
