// A real nginx (Debian nginx-light) with auth_request in front of a tiny upstream, asking
// keygate: allow, deny (401, 403) and rate-limited paths end to end. And the load-test tool
// for users (scripts/loadtest, wrk) against a real server.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/harness.hpp"

extern char** environ;

using namespace keygate::testing;

namespace {

// The rest of the line after the first `marker` in `text`, or "" when it is absent.
std::string after(const std::string& text, const std::string& marker) {
  const size_t at = text.find(marker);
  if (at == std::string::npos) return {};
  const size_t from = at + marker.size();
  return text.substr(from, text.find('\n', from) - from);
}

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class Nginx {
 public:
  Nginx(uint16_t keygate_port) : dir_(make_temp_dir()), port_(free_port()), upstream_(free_port()) {
    std::ofstream conf(dir_ + "/nginx.conf");
    conf
        << "daemon off;\nworker_processes 1;\npid " << dir_ << "/nginx.pid;\nerror_log " << dir_
        << "/error.log;\n"
        << "events {}\nhttp {\n  access_log off;\n"
        << "  client_body_temp_path " << dir_ << "; proxy_temp_path " << dir_ << ";\n"
        << "  upstream keygate { server 127.0.0.1:" << keygate_port << "; keepalive 8; }\n"
        << "  server { listen 127.0.0.1:" << upstream_
        << "; location / { return 200 'upstream ok $http_x_organization_id'; } }\n"
        << "  server {\n    listen 127.0.0.1:" << port_ << ";\n"
        << "    location / {\n      auth_request /_keygate;\n"
        << "      auth_request_set $kg_org $upstream_http_x_keygate_organization_id;\n"
        << "      proxy_set_header X-Organization-Id $kg_org;\n"
        << "      proxy_pass http://127.0.0.1:" << upstream_ << ";\n    }\n"
        << "    location = /_keygate {\n      internal;\n      proxy_pass http://keygate/v1/auth;\n"
        << "      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n"
        << "      proxy_pass_request_body off;\n      proxy_set_header Content-Length \"\";\n"
        << "      proxy_set_header X-Required-Scopes $http_x_need;\n    }\n"
        << "    error_page 500 = @keygate_error;\n"
        << "    location @keygate_error { return 429 'rate limited'; }\n"
        << "  }\n}\n";
    conf.close();
    std::vector<std::string> args = {"/usr/sbin/nginx", "-c", dir_ + "/nginx.conf", "-p", dir_};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("no nginx");
    for (int i = 0; i < 100 && http(port_, "GET", "/").status <= 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ~Nginx() {
    ::kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    remove_tree(dir_);
  }
  uint16_t port() const { return port_; }

 private:
  std::string dir_;
  uint16_t port_, upstream_;
  pid_t pid_ = -1;
};

}  // namespace

TEST(Gateway, NginxAuthRequestAllowsDeniesAndRateLimitsThroughKeygate) {
  ASSERT_TRUE(std::filesystem::exists("/usr/sbin/nginx")) << "scripts/setup installs nginx-light";
  ServerProcess s({"--secret-rate", "1", "--secret-burst", "3"});
  auto j = parse_json(
      http(s.port(), "POST", "/v1/organizations", R"({"name":"Behind nginx"})", s.root_key()).body);
  const std::string org = str(j, "/data/id"), admin = str(j, "/data/api_key/revealed_key");
  const std::string key =
      str(parse_json(http(s.port(), "POST", "/v1/organizations/" + org + "/api-keys",
                          R"({"name":"svc","scopes":["api_keys:read"]})", admin)
                         .body),
          "/data/revealed_key");
  Nginx nginx(s.port());
  auto ok = http(nginx.port(), "GET", "/orders", "",
                 std::vector<std::string>{"Authorization: Bearer " + key, "X-Need: api_keys:read"});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "upstream ok " + org);  // the organization reached the upstream
  EXPECT_EQ(http(nginx.port(), "GET", "/orders").status, 401);
  EXPECT_EQ(http(nginx.port(), "GET", "/orders", "", std::string("sk_live_wrong")).status, 401);
  EXPECT_EQ(
      http(nginx.port(), "GET", "/orders", "",
           std::vector<std::string>{"Authorization: Bearer " + key, "X-Need: api_keys:manage"})
          .status,
      403);
  int limited = 0;
  for (int i = 0; i < 5; ++i)
    limited += http(nginx.port(), "GET", "/orders", "",
                    std::vector<std::string>{"Authorization: Bearer " + key})
                   .status == 429;
  EXPECT_GE(limited, 3);  // burst 3, one already spent: the rest are refused
}

// scripts/loadtest drives real verifications and reports what it says it does: the rate,
// how busy wrk kept its thread, the server's CPU per request; and every request it counts
// reached the server as a valid verification.
TEST(LoadTest, DrivesVerificationsAndReportsRateLoadGeneratorAndServerCpu) {
  ServerProcess s({"--secret-rate", "0"});  // unlimited: a rate limit would answer 429s
  const Tenant t = make_tenant(s, "Load");
  const std::string dir = make_temp_dir();
  const std::string keys = dir + "/keys.txt";
  {
    std::ofstream out(keys);
    for (int i = 0; i < 8; ++i) out << make_key(s, t, R"({"name":"load"})").value << "\n";
  }
  const std::string cmd = std::string(KEYGATE_SOURCE_DIR) + "/scripts/loadtest --keys " + keys +
                          " --url http://127.0.0.1:" + std::to_string(s.port()) +
                          " --duration 2s --connections 4 --pid " + std::to_string(s.pid());
  int exit_status = -1;
  const std::string out = run_command(cmd, exit_status);
  EXPECT_EQ(exit_status, 0) << out;
  remove_tree(dir);

  // "  51234 requests in 2.00s, ...": the number before the marker, at its line's start.
  const size_t in = out.find(" requests in ");
  ASSERT_NE(in, std::string::npos) << out;
  const size_t line = out.rfind('\n', in) + 1;
  const unsigned long long requests = std::stoull(out.substr(line, in - line));
  EXPECT_GT(requests, 100u) << out;
  EXPECT_GT(std::stod(after(out, "Requests/sec:")), 0.0) << out;
  EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
  const std::string busy = after(out, "wrk kept its 1 thread(s) ");
  ASSERT_FALSE(busy.empty()) << out;
  ASSERT_TRUE(std::isdigit(static_cast<unsigned char>(busy[0])))
      << out;  // "-" when sampling failed
  EXPECT_GT(std::stoi(busy), 0) << out;
  EXPECT_LE(std::stoi(busy), 105) << out;  // tick granularity over a 2 s run
  EXPECT_NE(busy.find("% busy"), std::string::npos) << out;
  const std::string cpu =
      after(out, "server (pid " + std::to_string(s.pid()) + ") CPU per request: ");
  ASSERT_FALSE(cpu.empty()) << out;
  EXPECT_GT(std::stod(cpu), 0.0) << out;
  EXPECT_NE(cpu.find(" us"), std::string::npos) << out;

  // wrk counts completed answers; the server counted at least as many valid verifications
  // (requests still in flight when wrk stopped may add a few).
  const std::string metrics = http(s.port(), "GET", "/metrics").body;
  const std::string valid = after(metrics, "keygate_verifications_total{code=\"VALID\"} ");
  ASSERT_FALSE(valid.empty()) << metrics;
  EXPECT_GE(std::stoull(valid), requests);
  EXPECT_LE(std::stoull(valid), requests + 64);
}
