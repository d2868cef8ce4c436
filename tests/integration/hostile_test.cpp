// Hostile clients against the real server, on loopback and bounded in time: slowloris,
// readers that never read, half-closes and resets mid-request, a flood of pipelined
// requests, a connection flood past --max-connections, and random bytes. During each
// attack a well-behaved client keeps verifying on its own keep-alive connection: it never
// gets an error, its p99 stays low, and afterwards the server's connections and memory go
// back to their resting level. Writes acknowledged during the attacks survive a SIGKILL.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/harness.hpp"

using namespace keygate::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr double kP99LimitMs = 50;  // sanitizers slow every request several times over
#else
constexpr double kP99LimitMs = 10;
#endif

long resident_kb(pid_t pid, const char* field = "VmRSS:") {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::string(field).size()));
  return -1;
}

long gauge(uint16_t port, const std::string& name) {
  const std::string text = http(port, "GET", "/metrics").body;
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stol(text.substr(at + name.size() + 2));
}

// Verifies `key` on one keep-alive connection until stopped; the latencies and errors.
struct WellBehavedClient {
  uint16_t port;
  std::string key;
  std::atomic<bool> stop{false};
  std::vector<double> ms;
  int errors = 0;
  std::string first_error;
  std::thread thread;

  WellBehavedClient(uint16_t p, std::string k) : port(p), key(std::move(k)) {
    thread = std::thread([this] {
      while (!stop) {
        const auto t0 = Clock::now();
        const HttpResponse r = http(port, "GET", "/v1/auth", "", key);
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (r.status != 200 && errors++ == 0) first_error = std::to_string(r.status) + " " + r.body;
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  double finish() {  // the p99 in ms
    stop = true;
    thread.join();
    std::sort(ms.begin(), ms.end());
    return ms.empty() ? 0 : ms[ms.size() * 99 / 100];
  }
};

// Runs `attack` for its duration while a well-behaved client verifies; checks the client's
// experience and that connections return to `resting` afterwards; prints the figures.
void under_attack(ServerProcess& s, const std::string& key, const char* name,
                  const std::function<void()>& attack) {
  const long resting = gauge(s.port(), "keygate_connections");
  WellBehavedClient client(s.port(), key);
  std::this_thread::sleep_for(100ms);
  attack();
  const long peak_kb = resident_kb(s.pid(), "VmHWM:");
  const double p99 = client.finish();
  EXPECT_EQ(client.errors, 0) << name << ": " << client.first_error;
  EXPECT_LT(p99, kP99LimitMs) << name;
  EXPECT_GT(client.ms.size(), 20u) << name;
  // Everything the attack opened is closed again (timeouts, resets, limits).
  bool rested = false;
  for (int i = 0; i < 200 && !rested; ++i) {
    rested = gauge(s.port(), "keygate_connections") <= resting + 1;  // +1: the scrape itself
    if (!rested) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(rested) << name << ": " << gauge(s.port(), "keygate_connections") << " connections";
  std::printf("[ figures  ] %-28s client p99 %.2f ms over %zu requests, peak resident %ld MiB\n",
              name, p99, client.ms.size(), peak_kb / 1024);
}

int open_raw(uint16_t port) {
  const int fd = connect_to(port);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server cut it off: that is its right
    sent += static_cast<size_t>(n);
  }
}

}  // namespace

TEST(Hostile, AttacksDoNotReachAWellBehavedClientAndLeaveNothingBehind) {
  rlimit files{};  // 1,500 sockets here and as many in the server
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  ASSERT_GE(files.rlim_max, rlim_t{2000}) << "this test needs 2,000 open files";
  files.rlim_cur = files.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &files), 0);
  ServerProcess s({"--header-timeout-ms", "1000", "--max-connections", "1200", "--threads", "2"});
  const Tenant t = make_tenant(s, "Hostile");
  const std::string key = make_key(s, t, R"({"name":"good"})").value;
  // The attackers' own key: they must not spend the good client's rate limit.
  const std::string attack_key = make_key(s, t, R"({"name":"attacker"})").value;
  std::vector<std::string> acknowledged;  // key ids created during the attacks
  auto write_during = [&] {
    const HttpResponse r = http(s.port(), "POST", "/v1/organizations/" + t.id + "/api-keys",
                                R"({"name":"during"})", t.key);
    if (r.status == 201) acknowledged.push_back(str(parse_json(r.body), "/data/id"));
  };

  under_attack(s, key, "slowloris x400", [&] {
    std::vector<int> fds;
    for (int i = 0; i < 400; ++i) fds.push_back(open_raw(s.port()));
    const std::string head = "GET /v1/auth HTTP/1.1\r\nX-Slow: ";
    for (size_t b = 0; b < 12; ++b) {  // a byte per connection every 100 ms: 1.2 s
      for (int fd : fds) send_all(fd, std::string(1, head[b % head.size()]));
      std::this_thread::sleep_for(100ms);
    }
    write_during();
    std::this_thread::sleep_for(1200ms);  // past --header-timeout-ms: 408 and closed
    for (int fd : fds) ::close(fd);
  });

  under_attack(s, key, "readers that never read x50", [&] {
    std::vector<int> fds;
    std::string burst;
    for (int i = 0; i < 2000; ++i)
      burst += "GET /v1/auth HTTP/1.1\r\nAuthorization: Bearer " + attack_key + "\r\n\r\n";
    for (int i = 0; i < 50; ++i) {
      const int fd = open_raw(s.port());
      int small = 4096;
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
      ::fcntl(fd, F_SETFL, O_NONBLOCK);
      send_all(fd, burst);  // as much as the server takes; its answers are never read
      fds.push_back(fd);
    }
    write_during();
    std::this_thread::sleep_for(1500ms);
    for (int fd : fds) ::close(fd);
  });

  under_attack(s, key, "half-close and reset x300", [&] {
    for (int i = 0; i < 150; ++i) {
      const int fd = open_raw(s.port());  // a whole request, then no more writes
      send_all(fd, "GET /healthz HTTP/1.1\r\n\r\n");
      ::shutdown(fd, SHUT_WR);
      const std::string answer = read_some(fd, 1000);
      EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << "half-closed: " << answer;
      ::close(fd);
      const int rst = open_raw(s.port());  // half a request, then a reset
      send_all(rst, "POST /v1/keys/verify HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"key\":");
      linger hard{1, 0};
      ::setsockopt(rst, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
      ::close(rst);
    }
    write_during();
  });

  under_attack(s, key, "connection flood past limit", [&] {
    std::vector<int> fds;
    for (int i = 0; i < 1500; ++i) {  // 1,200 allowed: the rest are refused at once
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(s.port());
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
        fds.push_back(fd);
      else
        ::close(fd);
    }
    write_during();
    std::this_thread::sleep_for(500ms);
    for (int fd : fds) ::close(fd);
  });

  under_attack(s, key, "random bytes x200", [&] {
    std::mt19937 rng(23);
    for (int i = 0; i < 200; ++i) {
      const int fd = open_raw(s.port());
      std::string junk(512 + rng() % 4096, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      send_all(fd, junk);
      const std::string answer = read_some(fd, 1000);  // a 400 and a close, or nothing
      EXPECT_TRUE(answer.empty() || answer.rfind("HTTP/1.1 4", 0) == 0) << answer.substr(0, 40);
      ::close(fd);
    }
    write_during();
  });

  // Resting memory: back within a few MiB of where the attacks began is not promised (the
  // allocator keeps some), but far from what the attacks sent.
  const long after_kb = resident_kb(s.pid());
  std::printf("[ figures  ] resident after the attacks: %ld MiB\n", after_kb / 1024);
  EXPECT_LT(after_kb, 400 * 1024);

  // What was acknowledged during the attacks survives a SIGKILL.
  ASSERT_EQ(acknowledged.size(), 5u);
  s.kill9();
  s.start();
  for (const std::string& id : acknowledged)
    EXPECT_EQ(
        http(s.port(), "GET", "/v1/organizations/" + t.id + "/api-keys/" + id, "", t.key).status,
        200)
        << id;
}

// Hostile tenants (docs/security.md, "Bounds"): what one tenant, or anyone on the network
// with --open-signup, can make the server hold is bounded, whatever it sends. Before these
// bounds, 200 refused requests of 512 KiB with fresh Idempotency-Keys grew the server by
// 320 MiB (each answer, which quoted the input, was remembered).
TEST(Hostile, ATenantCannotGrowTheServerWithoutBound) {
  ServerProcess s({"--open-signup", "--signup-per-hour", "20", "--max-keys-per-org", "300"});
  Tenant t = make_tenant(s, "Hostile tenant");
  const std::string keys = "/v1/organizations/" + t.id + "/api-keys";
  const long before_kb = resident_kb(s.pid());

  // Large refused bodies, each under a fresh Idempotency-Key.
  const std::string field(512 * 1024, 'x');
  for (int i = 0; i < 200; ++i) {
    auto r = http(s.port(), "POST", keys, "{\"" + field + "\":1}",
                  {"Authorization: Bearer " + t.key, "Idempotency-Key: big-" + std::to_string(i)});
    ASSERT_EQ(r.status, 400);
    ASSERT_LT(r.body.size(), 1024u);
  }
  // A huge origin list (the finding: 35,000 origins fit in 1 MiB and made every
  // verification with that key scan them all).
  std::string origins;
  for (int i = 0; i < 35'000; ++i)
    origins += (i ? ",\"https://o" : "\"https://o") + std::to_string(i) + ".example.com\"";
  EXPECT_EQ(http(s.port(), "POST", keys,
                 R"({"name":"w","type":"publishable","allowed_origins":[)" + origins + "]}", t.key)
                .status,
            400);
  // Many keys: the organization stops at the operator's bound.
  int created = 0;
  for (int i = 0; i < 400; ++i) {
    auto r = http(s.port(), "POST", keys, R"({"name":"k"})", t.key);
    if (r.status != 201) {
      EXPECT_EQ(str(parse_json(r.body), "/error/code"), "key_limit_reached");
      break;
    }
    ++created;
  }
  EXPECT_EQ(created, 299) << "300 with the organization's first key";
  // An anonymous sign-up flood from one address.
  int signed_up = 0;
  for (int i = 0; i < 200; ++i)
    signed_up += http(s.port(), "POST", "/v1/organizations",
                      R"({"name":"Flood )" + std::to_string(i) + "\"}")
                     .status == 201;
  EXPECT_EQ(signed_up, 20);

  const long after_kb = resident_kb(s.pid());
  std::printf("[ figures  ] resident before %ld MiB, after the hostile tenant %ld MiB\n",
              before_kb / 1024, after_kb / 1024);
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer keeps up to 256 MiB of freed memory in quarantine (its default).
  constexpr long kQuarantineKb = 256 * 1024;
#else
  constexpr long kQuarantineKb = 0;
#endif
  EXPECT_LT(after_kb - before_kb, 64 * 1024 + kQuarantineKb)
      << "grew by " << (after_kb - before_kb) / 1024 << " MiB";
}

// The audit events read from a snapshot whose bytes changed on disk: the list answers 503
// storage_unavailable (docs/api.md §1.6), never a wrong or partial page, and the server
// goes on serving everything else.
TEST(Hostile, AnAuditListOverADamagedSnapshotIs503NotAWrongPage) {
  ServerProcess s({"--fsync", "everysec", "--audit-memory-bytes", "1048576"});
  Tenant t = make_tenant(s, "Damaged");
  const CreatedKey k = make_key(s, t, R"({"name":"k"})");
  const std::string key_path = "/v1/organizations/" + t.id + "/api-keys/" + k.id;
  auto snapshot_events = [&] {
    const std::string m = http(s.port(), "GET", "/metrics", "", s.root_key()).body;
    const std::string at = "\nkeygate_audit_snapshot_events ";
    return std::stoull(m.substr(m.find(at) + at.size()));
  };
  for (int i = 0; snapshot_events() == 0; ++i) {
    ASSERT_LT(i, 20'000) << "no snapshot took the events";
    ASSERT_EQ(http(s.port(), "PATCH", key_path, R"({"name":"n)" + std::to_string(i) + "\"}", t.key)
                  .status,
              200);
  }
  // The oldest events: the organization's creation, first in the audit section.
  std::string snapshot;
  for (const auto& f : std::filesystem::directory_iterator(s.data_dir()))
    if (f.path().extension() == ".kgs") snapshot = f.path();
  ASSERT_FALSE(snapshot.empty());
  {
    std::ifstream in(snapshot, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    // The organization's record names it first; its creation event's payload, in the audit
    // section at the end, second.
    const size_t name = bytes.find("Damaged", bytes.find("Damaged") + 1);
    ASSERT_NE(name, std::string::npos);
    std::fstream f(snapshot, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(name));
    f.put('X');
  }
  // The oldest first (the page just newer than the smallest id): read from the file.
  auto oldest = http(
      s.port(), "GET",
      "/v1/organizations/" + t.id + "/audit-events?limit=5&before=audit_00000000000000000000000000",
      "", t.key);
  EXPECT_EQ(oldest.status, 503) << oldest.body;
  EXPECT_EQ(str(parse_json(oldest.body), "/error/code"), "storage_unavailable");
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", k.value).status, 200) << "the rest serves";
  // The reason is in the server's log (written as the answer goes; read it within a moment).
  for (int i = 0; i < 100 && s.log().find("audit.unreadable") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_NE(s.log().find("audit.unreadable"), std::string::npos);
}

// A tenant writing change after change cannot grow the memory its audit events hold past
// --audit-memory-bytes: the events go to a snapshot and are read from it, every one of them
// still listed (the finding: ~300 bytes an event stayed in memory for the whole retention).
TEST(Hostile, ATenantsAuditEventsStayWithinTheirMemoryAndAreAllListed) {
  ServerProcess s({"--fsync", "everysec", "--audit-memory-bytes", "1048576"});
  Tenant t = make_tenant(s, "Busy tenant");
  const CreatedKey k = make_key(s, t, R"({"name":"k"})");
  const std::string key_path = "/v1/organizations/" + t.id + "/api-keys/" + k.id;
  const std::string name(100, 'n');
  auto audit_bytes = [&] {
    const std::string m = http(s.port(), "GET", "/metrics", "", s.root_key()).body;
    const std::string at = "keygate_audit_memory_bytes{held=\"events\"} ";
    return std::stoull(m.substr(m.find(at) + at.size()));
  };
  constexpr int kChanges = 12'000;  // ~7 MiB of events held in memory without the bound
  unsigned long long most = 0;
  for (int i = 0; i < kChanges; ++i) {
    ASSERT_EQ(
        http(s.port(), "PATCH", key_path, R"({"name":")" + name + std::to_string(i) + "\"}", t.key)
            .status,
        200);
    if (i % 250 == 0) most = std::max(most, audit_bytes());
  }
  std::printf("[ figures  ] %d changes: audit events held at most %llu KiB in memory\n", kChanges,
              most / 1024);
  EXPECT_LT(most, 4ull << 20) << "1.5 times the budget and what comes in during a snapshot";
  const std::string m = http(s.port(), "GET", "/metrics", "", s.root_key()).body;
  EXPECT_EQ(m.find("keygate_audit_snapshot_events 0\n"), std::string::npos) << "some are on disk";
  size_t listed = 0;
  std::string cursor;
  for (;;) {
    auto r = http(s.port(), "GET",
                  "/v1/organizations/" + t.id + "/audit-events?limit=100" +
                      (cursor.empty() ? "" : "&cursor=" + cursor),
                  "", t.key);
    ASSERT_EQ(r.status, 200) << r.body;
    const auto j = parse_json(r.body);
    listed += j["data"].get_array().size();
    if (!j["pagination"]["has_more"].get_bool().value()) break;
    cursor = str(j, "/pagination/next_cursor");
  }
  EXPECT_EQ(listed, kChanges + 3u) << "the organization's two events and the key's creation";
}
