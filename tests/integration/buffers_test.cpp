// Receive buffers: a connection that once received a big body goes back to its resting
// buffer, and all connections together hold no more than the server's budget beyond that
// (net/buffer_budget.hpp). Real server, raw sockets on loopback, bounded in time.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

constexpr size_t kBody = 1'000'000;

// A request whose 1 MB body the server must hold whole before it answers (401: no key).
std::string big_request() {
  std::string body(kBody - 2, ' ');
  body += "{}";
  return "POST /v1/keys/verify HTTP/1.1\r\nHost: keygate\r\nContent-Type: "
         "application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// /proc/PID/status field in KiB (VmRSS, VmHWM).
long status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return -1;
}

// Plain socket calls for worker threads (the harness's helpers fail the test by throwing,
// which a worker thread must not do). -1 on any failure.
int dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// The status of the one response on `fd` (reads up to its headers' end), 0 if none; the
// bytes read go to `text` if given.
int read_status(int fd, std::string* text = nullptr) {
  std::string local;
  std::string& got = text ? *text : local;
  char buf[4096];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return 0;
    got.append(buf, static_cast<size_t>(n));
  }
  return got.rfind("HTTP/1.1 ", 0) == 0 ? std::stoi(got.substr(9, 3)) : 0;
}

double metric(const ServerProcess& s, const std::string& name) {
  const std::string text = http(s.port(), "GET", "/metrics").body;
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

}  // namespace

// 10,000 connections, each of which sent one 1 MB body and then stays open. Before the
// buffers shrank, each kept its 1 MiB buffer for life: 10 GiB. Now each goes back to 4 KiB.
TEST(Buffers, TenThousandConnectionsThatEachSentAMegabyteKeepOnlyTheirRestingBuffers) {
  constexpr int kConnections = 10'000, kWorkers = 4;
  rlimit files{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  ASSERT_GE(files.rlim_max, rlim_t{kConnections + 500})
      << "this test needs " << kConnections + 500 << " open files";
  files.rlim_cur = files.rlim_max;  // the server, started below, inherits it
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &files), 0);

  // The connections stay open, idle, for as long as the test takes (minutes under a
  // sanitizer): longer than the default idle timeout. AddressSanitizer keeps freed blocks
  // in a quarantine (256 MiB by default), which would count as held here: keep it small.
  const char* asan = std::getenv("ASAN_OPTIONS");
  ServerProcess s(
      {"--max-connections", std::to_string(kConnections + 100), "--idle-timeout-ms", "3600000"}, {},
      {}, {std::string("ASAN_OPTIONS=") + (asan ? asan : "") + ":quarantine_size_mb=4"});
  const long rest_kib = status_kib(s.pid(), "VmRSS");
  const std::string request = big_request();
  std::vector<int> fds(kConnections, -1);
  std::atomic<int> answered{0}, failed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w)
    workers.emplace_back([&, w] {
      for (int i = w; i < kConnections; i += kWorkers) {
        fds[i] = dial(s.port());
        if (fds[i] < 0 || !send_all(fds[i], request.data(), request.size()) ||
            read_status(fds[i]) != 401)
          ++failed;
        else
          ++answered;
      }
    });
  for (auto& t : workers) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(answered.load(), kConnections);

  const long peak_kib = status_kib(s.pid(), "VmHWM");
  const long now_kib = status_kib(s.pid(), "VmRSS");
  const long peak_mib = (peak_kib - rest_kib) / 1024, held_mib = (now_kib - rest_kib) / 1024;
  std::printf(
      "[ figures  ] %d connections x 1 MB body: server resident %ld MiB at rest, peak +%ld MiB, "
      "+%ld MiB held after\n",
      kConnections, rest_kib / 1024, peak_mib, held_mib);
  RecordProperty("peak_mib_over_rest", static_cast<int>(peak_mib));
  // At rest a connection costs its 4 KiB buffer and its state (~60 MiB for 10,000); the peak
  // adds the few 1 MiB buffers that the four senders had in flight at any moment.
  EXPECT_LT(peak_mib, 200);
  EXPECT_LT(held_mib, 160);
  EXPECT_EQ(metric(s, "keygate_connection_buffer_bytes"), 0);
  EXPECT_EQ(metric(s, "keygate_connections"), kConnections + 1);  // and the scrape's own
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
}

// Requests that together need more than --max-buffer-bytes: those that do not fit are
// answered 503 server_busy (or cut off) and closed, the rest are served, and the budget
// is all given back afterwards.
TEST(Buffers, RequestsBeyondTheBudgetAreRefusedWith503AndTheRestServed) {
  constexpr int kClients = 16;
  ServerProcess s({"--max-buffer-bytes", std::to_string(8 << 20)});
  const std::string request = big_request();
  // Every client sends all but the last byte: no request completes, so every buffer is held.
  std::vector<int> fds(kClients);
  std::vector<std::thread> senders;
  for (int i = 0; i < kClients; ++i) {
    fds[i] = connect_to(s.port());
    senders.emplace_back([&, fd = fds[i]] { send_all(fd, request.data(), request.size() - 1); });
  }
  for (auto& t : senders) t.join();
  // 8 MiB hold at most eight of the 1 MiB buffers (each is charged 1 MiB - 4 KiB beyond
  // its resting size): at least eight are refused, once the server has read what the
  // senders' socket buffers still hold.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (metric(s, "keygate_connection_buffer_refusals_total") < kClients - 8 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(metric(s, "keygate_connection_buffer_refusals_total"), kClients - 8);
  EXPECT_LE(metric(s, "keygate_connection_buffer_bytes"), 8 << 20);
  int ok = 0, busy = 0, cut = 0;
  for (int fd : fds) {
    send_all(fd, request.data() + request.size() - 1, 1);
    std::string text;
    const int status = read_status(fd, &text);
    if (status == 401)
      ++ok;
    else if (status == 503 && text.find("\r\nRetry-After: 1\r\n") != std::string::npos)
      ++busy;
    else if (status == 0)
      ++cut;  // reset after the 503 before we read it
    else
      ADD_FAILURE() << "unexpected status " << status;
    ::close(fd);
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy + cut, kClients - 8);
  EXPECT_EQ(ok + busy + cut, kClients);
  EXPECT_EQ(metric(s, "keygate_connection_buffer_bytes"), 0);
  EXPECT_EQ(http(s.port(), "GET", "/v1/auth", "", "sk_live_x").status, 401);  // still serving
}
