// GET /metrics over real HTTP (docs/api.md §9): every family the spec lists, values that
// follow what the server did, no secret and no id in the output, and Prometheus's own
// checker (promtool, from Debian's prometheus package) accepting the text.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

// The value of the sample whose line starts with `series` (name and labels, exactly).
double sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  ADD_FAILURE() << "no sample " << series << " in /metrics";
  return -1;
}

struct Activity {
  std::string org, admin, secret, secret_id;
};

// Creates an organization and a key, verifies it valid and malformed, revokes another key.
Activity exercise(const ServerProcess& s) {
  Activity a;
  const Tenant t = make_tenant(s, "Metrics");
  a.org = t.id;
  a.admin = t.key;
  const CreatedKey k = make_key(s, t, R"({"name":"svc"})");
  a.secret = k.value;
  a.secret_id = k.id;
  const CreatedKey gone = make_key(s, t, R"({"name":"old"})");
  EXPECT_EQ(
      http(s.port(), "DELETE", "/v1/organizations/" + t.id + "/api-keys/" + gone.id, "", t.key)
          .status,
      200);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", a.secret).status, 200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", "sk_live_not-a-key").status, 401);
  EXPECT_EQ(http(s.port(), "GET", "/v1/no-such-thing").status, 404);
  EXPECT_EQ(http(s.port(), "PUT", "/v1/organizations", "", a.admin).status, 405);
  return a;
}

std::string scrape(const ServerProcess& s) {
  auto r = http(s.port(), "GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return r.body;
}

}  // namespace

TEST(Metrics, EveryFamilyOfTheSpecFollowsWhatTheServerDid) {
  ServerProcess s;
  exercise(s);
  ASSERT_EQ(::kill(s.pid(), SIGUSR1), 0);  // a snapshot, for its age and size
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text = scrape(s);
    if (text.find("keygate_snapshots_total 1") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Requests by route and status, and their latency histogram.
  EXPECT_EQ(sample(text, R"(keygate_http_requests_total{route="GET /v1/auth",status="200"})"), 3);
  EXPECT_EQ(sample(text, R"(keygate_http_requests_total{route="GET /v1/auth",status="401"})"), 1);
  EXPECT_EQ(
      sample(text, R"(keygate_http_requests_total{route="POST /v1/organizations",status="201"})"),
      1);
  // Requests no route matched are counted too (a scanner shows up).
  EXPECT_EQ(sample(text, R"(keygate_http_requests_total{route="unmatched",status="404"})"), 1);
  EXPECT_EQ(sample(text, R"(keygate_http_requests_total{route="unmatched",status="405"})"), 1);
  EXPECT_EQ(sample(text, R"(keygate_http_request_duration_seconds_count{route="GET /v1/auth"})"),
            4);
  EXPECT_EQ(
      sample(text,
             R"(keygate_http_request_duration_seconds_bucket{route="GET /v1/auth",le="+Inf"})"),
      4);
  EXPECT_GT(sample(text, R"(keygate_http_request_duration_seconds_sum{route="GET /v1/auth"})"), 0);
  // Sub-millisecond buckets exist, and the buckets are cumulative.
  EXPECT_LE(
      sample(text,
             R"(keygate_http_request_duration_seconds_bucket{route="GET /v1/auth",le="1e-05"})"),
      sample(text,
             R"(keygate_http_request_duration_seconds_bucket{route="GET /v1/auth",le="0.001"})"));
  // Verifications by code.
  EXPECT_EQ(sample(text, R"(keygate_verifications_total{code="VALID"})"), 3);
  EXPECT_EQ(sample(text, R"(keygate_verifications_total{code="MALFORMED"})"), 1);
  EXPECT_EQ(sample(text, R"(keygate_verifications_total{code="REVOKED"})"), 0);
  // Connections: at least the scraping one.
  EXPECT_GE(sample(text, "keygate_connections"), 1);
  // The log: 1 organization (with its first key) + 2 keys + 1 revocation, each fsynced.
  EXPECT_GE(sample(text, "keygate_log_records_total"), 4);
  EXPECT_GE(sample(text, "keygate_log_appends_total"), 1);
  EXPECT_GT(sample(text, "keygate_log_bytes_total"), 0);
  EXPECT_EQ(sample(text, "keygate_log_writable"), 1);
  EXPECT_EQ(sample(text, "keygate_log_write_failures_total"), 0);
  const double fsyncs = sample(text, "keygate_fsync_duration_seconds_count");
  EXPECT_GE(fsyncs, 1);
  EXPECT_EQ(sample(text, R"(keygate_fsync_duration_seconds_bucket{le="+Inf"})"), fsyncs);
  EXPECT_GT(sample(text, "keygate_fsync_duration_seconds_sum"), 0);
  // Snapshots.
  EXPECT_EQ(sample(text, "keygate_snapshots_total"), 1);
  EXPECT_GE(sample(text, "keygate_snapshot_age_seconds"), 0);
  EXPECT_GT(sample(text, "keygate_snapshot_size_bytes"), 0);
  // Keys and organizations by status: the first key, "svc", and the revoked one.
  EXPECT_EQ(sample(text, R"(keygate_organizations{status="active"})"), 1);
  EXPECT_EQ(sample(text, R"(keygate_organizations{status="suspended"})"), 0);
  EXPECT_EQ(sample(text, R"(keygate_api_keys{status="active"})"), 2);
  EXPECT_EQ(sample(text, R"(keygate_api_keys{status="revoked"})"), 1);
}

TEST(Metrics, CarryNoSecretAndNoIdentifier) {
  ServerProcess s;
  Activity a = exercise(s);
  const std::string text = scrape(s);
  for (const std::string& needle :
       {s.root_key(), a.admin, a.secret, a.secret_id, a.org, std::string("sk_"), std::string("pk_"),
        std::string("org_"), std::string("key_")})
    EXPECT_EQ(text.find(needle), std::string::npos) << needle;
}

TEST(Metrics, PromtoolAcceptsTheOutput) {
  ServerProcess s;
  exercise(s);
  const std::string dir = make_temp_dir();
  const std::string file = dir + "/metrics.txt";
  std::ofstream(file) << scrape(s);
  // promtool lints too (names, units, HELP text); its findings go to the output we show.
  int status = -1;
  const std::string out = run_command("promtool check metrics < " + file, status);
  remove_tree(dir);
  ASSERT_NE(WEXITSTATUS(status), 127)
      << "promtool is missing: scripts/setup installs Debian's prometheus package";
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "") << out;
}

// The counts by status are kept by the writer (core/status_counts.hpp), not walked at each
// scrape: a key whose expiry or grace period passes moves to "expired" within about a
// second with no write at all, and a restart starts from the same counts.
TEST(Metrics, KeysThatExpireWithTimeAloneAreCountedAsExpired) {
  ServerProcess s;
  const Tenant t = make_tenant(s, "Clock");
  char when[32];
  const time_t soon = std::time(nullptr) + 2;
  tm utc;
  gmtime_r(&soon, &utc);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  make_key(s, t, std::string(R"({"name":"short","expires_at":")") + when + "\"}");
  const CreatedKey rotated = make_key(s, t, R"({"name":"rotated"})");
  ASSERT_EQ(
      http(s.port(), "POST", "/v1/organizations/" + t.id + "/api-keys/" + rotated.id + "/rotations",
           R"({"grace_period_seconds":1})", t.key)
          .status,
      201);
  std::string text = scrape(s);
  // The tenant's first key, "short", the rotation's new key; "rotated" is in its grace period.
  EXPECT_EQ(sample(text, R"(keygate_api_keys{status="active"})"), 3);
  EXPECT_EQ(sample(text, R"(keygate_api_keys{status="rotating"})"), 1);
  EXPECT_EQ(sample(text, R"(keygate_api_keys{status="expired"})"), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(6);
  while (sample(scrape(s), R"(keygate_api_keys{status="expired"})") < 2 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  text = scrape(s);
  EXPECT_EQ(sample(text, R"(keygate_api_keys{status="active"})"), 2);
  EXPECT_EQ(sample(text, R"(keygate_api_keys{status="rotating"})"), 0);
  EXPECT_EQ(sample(text, R"(keygate_api_keys{status="expired"})"), 2);
  // The receive-buffer budget is reported beside the connections.
  EXPECT_EQ(sample(text, "keygate_connection_buffer_limit_bytes"), 256.0 * 1024 * 1024);
  EXPECT_GE(sample(text, "keygate_connection_buffer_bytes"), 0);

  ASSERT_EQ(s.stop(), 0);
  s.start();
  text = scrape(s);
  EXPECT_EQ(sample(text, R"(keygate_organizations{status="active"})"), 1);
  EXPECT_EQ(sample(text, R"(keygate_api_keys{status="active"})"), 2);
  EXPECT_EQ(sample(text, R"(keygate_api_keys{status="expired"})"), 2);
}
