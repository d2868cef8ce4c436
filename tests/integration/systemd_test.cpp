// systemd integration: READY=1 on NOTIFY_SOCKET only after recovery, a listening socket
// passed the way systemd passes it (LISTEN_FDS), and unit files that systemd-analyze accepts.
// And the process's environment: the heap's huge pages (core/heap.hpp).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "support/harness.hpp"

using namespace keygate::testing;

TEST(Systemd, ReadyIsNotifiedOnlyAfterRecovery) {
  const std::string dir = make_temp_dir();
  const std::string sock_path = dir + "/notify.sock";
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock_path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::setenv("NOTIFY_SOCKET", sock_path.c_str(), 1);
  std::vector<std::string> messages;
  {
    ServerProcess s;
    ::unsetenv("NOTIFY_SOCKET");
    for (int i = 0; i < 20; ++i) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) break;
      char buf[512];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      messages.emplace_back(buf, static_cast<size_t>(n));
      if (messages.back().find("READY=1") != std::string::npos) break;
    }
    EXPECT_LT(s.log().find("\"event\":\"recovered\""), s.log().find("\"event\":\"ready\""));
    EXPECT_EQ(s.stop(), 0);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) > 0) {
      char buf[512];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) messages.emplace_back(buf, static_cast<size_t>(n));
    }
  }
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_GE(messages.size(), 2u);
  EXPECT_NE(messages[0].find("STATUS=recovering"), std::string::npos);
  EXPECT_NE(messages[1].find("READY=1"), std::string::npos);
  EXPECT_NE(messages.back().find("STOPPING=1"), std::string::npos);
  ::close(fd);
  remove_tree(dir);
}

TEST(Systemd, ServesAListeningSocketPassedAsSystemdDoes) {
  uint16_t port = 0;
  const int lfd = listen_loopback(port);
  const std::string dir = make_temp_dir();
  const std::string log_path = dir + "/out.log";
  pid_t pid = fork();
  if (pid == 0) {
    if (lfd == 3)
      ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would leave close-on-exec set
    else
      ::dup2(lfd, 3);
    int out = ::open(log_path.c_str(), O_WRONLY | O_CREAT, 0600);
    ::dup2(out, 1);
    ::setenv("LISTEN_FDS", "1", 1);
    ::setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
    const std::string data = dir + "/data";
    execl(KEYGATE_BINARY, KEYGATE_BINARY, "serve", "--data-dir", data.c_str(), "--threads", "2",
          "--listen", "127.0.0.1:1", static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(lfd);
  HttpResponse r;
  for (int i = 0; i < 100; ++i) {
    r = http(port, "GET", "/readyz");
    if (r.status == 200) break;
    usleep(50000);
  }
  EXPECT_EQ(r.status, 200);
  // The ready line is written after the first answers may have gone out.
  std::stringstream log;
  for (int i = 0; i < 100 && log.str().find("\"event\":\"ready\"") == std::string::npos; ++i) {
    usleep(20000);
    std::ifstream in(log_path);
    log.str("");
    log << in.rdbuf();
  }
  EXPECT_NE(log.str().find("\"socket_activated\":true"), std::string::npos) << log.str();
  ::kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  remove_tree(dir);
}

// A client as wrk is: keep-alive, the next request written as soon as the last answer is
// read, nothing retried: a connection closed under a request fails that request. It
// reconnects after an answer that says `Connection: close`. Returns the status of one
// answer (0: the request failed: refused, reset or closed before a whole answer).
class EagerClient {
 public:
  explicit EagerClient(uint16_t port) : port_(port) {}
  ~EagerClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get(const std::string& key) {
    if (fd_ < 0 && !connect()) return 0;
    const std::string req =
        "GET /v1/auth HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer " + key + "\r\n\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
      return drop();
    std::string in;
    char buf[4096];
    size_t head_end;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return drop();
      in.append(buf, static_cast<size_t>(n));
    }
    const std::string head = in.substr(0, head_end);
    size_t length = 0;
    if (const size_t at = head.find("Content-Length: "); at != std::string::npos)
      length = std::stoul(head.substr(at + 16));
    while (in.size() < head_end + 4 + length) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return drop();
      in.append(buf, static_cast<size_t>(n));
    }
    const int status = std::atoi(head.c_str() + 9);  // "HTTP/1.1 200 ..."
    if (head.find("Connection: close") != std::string::npos) drop();
    return status;
  }

 private:
  uint16_t port_;
  int fd_ = -1;
  bool connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return true;
    drop();
    return false;
  }
  int drop() {
    ::close(fd_);
    fd_ = -1;
    return 0;
  }
};

// `systemctl restart keygate` with keygate.socket holding the listener: the old process
// drains and exits, the new one recovers and then accepts. Connections made meanwhile wait
// in the socket's backlog and their requests are answered; none is refused, none fails.
// Load: keep-alive clients that retry a request on a connection closed under it (libcurl,
// as HTTP clients do), keep-alive clients that never retry and always have the next
// request on its way (as wrk), and clients with a new connection per request.
TEST(Systemd, ARestartWithTheSocketHeldByTheManagerRefusesAndFailsNothing) {
  uint16_t port = 0;
  const int lfd = listen_loopback(port, 4096);  // systemd's Backlog= default is SOMAXCONN

  auto first = std::make_unique<ServerProcess>(std::vector<std::string>{}, std::string{}, nullptr,
                                               std::vector<std::string>{}, lfd);
  ASSERT_EQ(first->port(), port);
  EXPECT_NE(first->log().find("\"socket_activated\":true"), std::string::npos);
  const Tenant t = make_tenant(*first, "Restart");
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) keys.push_back(make_key(*first, t, R"({"name":"k"})").value);

  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, failed{0};
  std::atomic<long> longest_us{0};
  std::mutex m;
  std::string first_failure;
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&, c] {
      const bool fresh = c % 2 == 1;  // a new connection for every request
      const bool eager = c >= 6;      // keep-alive, never retrying
      EagerClient raw(port);
      for (size_t i = static_cast<size_t>(c); !stop; i += 8) {
        std::vector<std::string> headers = {"Authorization: Bearer " + keys[i % keys.size()]};
        if (fresh && !eager) headers.push_back("Connection: close");
        const auto began = std::chrono::steady_clock::now();
        const HttpResponse r =
            eager ? HttpResponse{raw.get(keys[i % keys.size()]), "(a keep-alive client)", {}}
                  : http(port, "GET", "/v1/auth", "", headers);
        const long us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - began)
                            .count();
        long seen = longest_us.load();
        while (us > seen && !longest_us.compare_exchange_weak(seen, us)) {
        }
        if (r.status == 200) {
          ++answered;
        } else if (failed++ == 0) {
          std::lock_guard l(m);
          first_failure = std::to_string(r.status) + " " + r.body;
        }
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int before = answered.load();
  EXPECT_EQ(first->stop(), 0);  // SIGTERM: drain, exit; the socket stays with "systemd"
  ServerProcess second({}, first->data_dir(), nullptr, {}, lfd);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (auto& c : clients) c.join();
  ::close(lfd);
  EXPECT_GT(before, 0);
  EXPECT_GT(answered.load(), before);
  EXPECT_EQ(failed.load(), 0) << "first failure: " << first_failure;
  std::printf("[ figures  ] %d requests across the restart, longest %.1f ms\n", answered.load(),
              static_cast<double>(longest_us.load()) / 1e3);
}

TEST(Systemd, UnitFilesPassSystemdAnalyzeVerify) {
  if (!std::filesystem::exists("/usr/bin/systemd-analyze"))
    GTEST_SKIP() << "systemd-analyze is not installed";
  const std::string dir = make_temp_dir();
  std::ifstream service_in(std::string(KEYGATE_SOURCE_DIR) + "/scripts/systemd/keygate.service");
  std::stringstream service;
  service << service_in.rdbuf();
  std::string text = service.str();
  // The unit names the installed binary; point it at the one just built.
  text.replace(text.find("/usr/bin/keygate"), 16, KEYGATE_BINARY);
  std::ofstream(dir + "/keygate.service") << text;
  std::filesystem::copy_file(std::string(KEYGATE_SOURCE_DIR) + "/scripts/systemd/keygate.socket",
                             dir + "/keygate.socket");
  int status = -1;
  const std::string out = run_command(
      "systemd-analyze verify " + dir + "/keygate.service " + dir + "/keygate.socket", status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out.find("rror"), std::string::npos) << out;
  remove_tree(dir);
}

TEST(Configuration, FileThenEnvironmentThenFlags) {
  const std::string dir = make_temp_dir();
  std::ofstream(dir + "/keygate.conf")
      << "secret-burst = 2\nsecret-rate = 1\npublishable-burst = 7\n";
  ::setenv("KEYGATE_SECRET_BURST", "3", 1);  // the environment beats the file
  {
    ServerProcess s(
        {"--config", dir + "/keygate.conf", "--publishable-burst", "9"});  // a flag beats both
    ::unsetenv("KEYGATE_SECRET_BURST");
    auto j = parse_json(
        http(s.port(), "POST", "/v1/organizations", R"({"name":"Conf"})", s.root_key()).body);
    EXPECT_EQ(str(j, "/data/api_key/rate_limit/burst"), "3");
    EXPECT_EQ(str(j, "/data/api_key/rate_limit/requests_per_second"), "1");
    const std::string org = str(j, "/data/id"), key = str(j, "/data/api_key/revealed_key");
    auto pk = parse_json(http(s.port(), "POST", "/v1/organizations/" + org + "/api-keys",
                              R"({"name":"p","type":"publishable"})", key)
                             .body);
    EXPECT_EQ(str(pk, "/data/rate_limit/burst"), "9");
  }
  ::unsetenv("KEYGATE_SECRET_BURST");
  // An invalid value is refused at start with a message naming the setting.
  std::ofstream(dir + "/bad.conf") << "fsync = sometimes\n";
  int status = -1;
  const std::string out = run_command("timeout 10 " + std::string(KEYGATE_BINARY) +
                                          " serve --listen 127.0.0.1:0 --data-dir " + dir +
                                          "/d --config " + dir + "/bad.conf",
                                      status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("fsync"), std::string::npos) << out;
  remove_tree(dir);
}

namespace {
// `keygate serve ...` that is expected to refuse to start: its exit status and output.
std::string refused_start(const std::string& args, const std::string& env, int& status) {
  return run_command(
      env + " timeout 10 " + std::string(KEYGATE_BINARY) + " serve --listen 127.0.0.1:0 " + args,
      status);
}
}  // namespace

TEST(Configuration, TheFileIsNamedByKeygateConfigAndMisspeltOrMissingOnesAreRefused) {
  const std::string dir = make_temp_dir();
  std::ofstream(dir + "/keygate.conf") << "# a comment\nsecret-rate = \"5\"\nopen-signup = true\n";
  ::setenv("KEYGATE_CONFIG", (dir + "/keygate.conf").c_str(), 1);
  {
    ServerProcess s;
    ::unsetenv("KEYGATE_CONFIG");
    auto j = parse_json(
        http(s.port(), "POST", "/v1/organizations", R"({"name":"Open"})").body);  // open signup
    EXPECT_EQ(str(j, "/data/api_key/rate_limit/requests_per_second"), "5");
  }
  ::unsetenv("KEYGATE_CONFIG");
  int status = 0;
  std::ofstream(dir + "/typo.conf") << "secret-rtae = 5\n";
  std::string out =
      refused_start("--data-dir " + dir + "/d --config " + dir + "/typo.conf", "", status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("secret-rtae"), std::string::npos) << out;
  out =
      refused_start("--data-dir " + dir + "/d", "KEYGATE_CONFIG=" + dir + "/missing.conf", status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("missing.conf"), std::string::npos) << out;
  remove_tree(dir);
}

namespace {
std::string run_cli(const std::string& args, int& status) {
  return run_command(std::string(KEYGATE_BINARY) + " " + args, status);
}
}  // namespace

TEST(OperatorCli, CreatesListsRotatesAndRevokesThroughTheRunningServer) {
  ServerProcess s({"--access-log"});
  const std::string target = " --server http://127.0.0.1:" + std::to_string(s.port()) +
                             " --root-key-file " + s.data_dir() + "/root.key";
  int status = 0;
  auto created = parse_json(run_cli("orgs create --name 'Ops Team'" + target, status));
  ASSERT_EQ(status, 0);
  EXPECT_EQ(str(created, "/data/slug"), "ops-team");
  const std::string org = str(created, "/data/id");
  EXPECT_NE(run_cli("orgs list" + target, status).find(org), std::string::npos);
  auto key = parse_json(run_cli(
      "keys create --org " + org + " --name ci --scopes api_keys:read,sessions:list" + target,
      status));
  ASSERT_EQ(status, 0);
  const std::string key_id = str(key, "/data/id");
  EXPECT_EQ(str(key, "/data/scopes/1"), "api_keys:read");
  EXPECT_NE(run_cli("keys list --org " + org + target, status).find(key_id), std::string::npos);
  auto rotated = parse_json(run_cli(
      "keys rotate --org " + org + " --key " + key_id + " --grace-period-seconds 0" + target,
      status));
  ASSERT_EQ(status, 0);
  EXPECT_EQ(str(rotated, "/data/rotated_from"), key_id);
  auto revoked = parse_json(
      run_cli("keys revoke --org " + org + " --key " + str(rotated, "/data/id") + target, status));
  EXPECT_EQ(str(revoked, "/data/status"), "revoked");
  const std::string again =
      run_cli("keys revoke --org " + org + " --key " + str(rotated, "/data/id") + target, status);
  EXPECT_NE(status, 0);  // already revoked: a 409, and a non-zero exit
  // The error is shown with its status, code and message, not as a bare number.
  EXPECT_NE(again.find("the server answered 409 already_revoked: "), std::string::npos) << again;
  run_cli("orgs list --server http://127.0.0.1:1 --root-key-file " + s.data_dir() + "/root.key",
          status);
  EXPECT_NE(status, 0);
  EXPECT_NE(
      run_cli("orgs list --server ftp://127.0.0.1:1 --root-key-file " + s.data_dir() + "/root.key",
              status)
          .find("must be an http:// or https:// URL"),
      std::string::npos);
  EXPECT_NE(status, 0);
  // The access log has a line per request, and no key in any line.
  const std::string log = s.log();
  EXPECT_NE(log.find("\"event\":\"access\""), std::string::npos);
  EXPECT_EQ(log.find(str(key, "/data/revealed_key")), std::string::npos);
  EXPECT_EQ(log.find(s.root_key()), std::string::npos);
}

TEST(OperatorCli, ListsEveryKeyPageByPage) {
  ServerProcess s;
  const std::string target = " --server http://127.0.0.1:" + std::to_string(s.port()) +
                             " --root-key-file " + s.data_dir() + "/root.key";
  const Tenant t = make_tenant(s, "Many");
  for (int i = 0; i < 230; ++i) make_key(s, t, R"({"name":"k)" + std::to_string(i) + "\"}");
  int status = 0;
  const std::string out = run_cli("keys list --org " + t.id + target, status);
  ASSERT_EQ(status, 0) << out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array data;
  ASSERT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS) << out.substr(0, 300);
  ASSERT_EQ(doc["data"].get(data), simdjson::SUCCESS);
  EXPECT_EQ(data.size(), 231u);  // the organization's first key and the 230: more than two pages
  EXPECT_EQ(str(parse_json(out), "/data/230/name"), "k229");
}

// `keygate projects` (docs/operations.md): the OpenAI-shaped endpoints with the root key,
// which names the organization; listings paged through to the end; keys created in one.
TEST(OperatorCli, ManagesProjectsAndCreatesKeysInThem) {
  ServerProcess s;
  const std::string target = " --server http://127.0.0.1:" + std::to_string(s.port()) +
                             " --root-key-file " + s.data_dir() + "/root.key";
  const Tenant t = make_tenant(s, "Project ops");
  int status = 0;
  auto created =
      parse_json(run_cli("projects create --org " + t.id + " --name 'Web app'" + target, status));
  ASSERT_EQ(status, 0);
  const std::string p = str(created, "/id");
  EXPECT_EQ(str(created, "/object"), "organization.project");
  for (int i = 0; i < 104; ++i)
    run_cli("projects create --org " + t.id + " --name p" + std::to_string(i) + target, status);
  auto renamed = parse_json(run_cli(
      "projects rename --org " + t.id + " --project " + p + " --name Renamed" + target, status));
  EXPECT_EQ(str(renamed, "/name"), "Renamed");
  auto key = parse_json(
      run_cli("keys create --org " + t.id + " --name k --project " + p + target, status));
  ASSERT_EQ(status, 0);
  EXPECT_EQ(str(key, "/data/project_id"), p);
  auto archived =
      parse_json(run_cli("projects archive --org " + t.id + " --project " + p + target, status));
  EXPECT_EQ(str(archived, "/status"), "archived");
  const std::string active = run_cli("projects list --org " + t.id + target, status);
  ASSERT_EQ(status, 0) << active;
  EXPECT_EQ(str(parse_json(active), "/data/103/name"), "p103") << "more than one page";
  EXPECT_EQ(str(parse_json(active), "/data/104"), "<missing>") << "the archived one is not listed";
  const std::string all =
      run_cli("projects list --include-archived --org " + t.id + target, status);
  EXPECT_EQ(str(parse_json(all), "/data/0/id"), p);
  const std::string refused =
      run_cli("projects rename --org " + t.id + " --project " + p + " --name x" + target, status);
  EXPECT_NE(status, 0);
  EXPECT_NE(refused.find("the server answered 409 project_archived: "), std::string::npos)
      << refused;
  // The audit log of all that: 2 (the organization) + 105 projects + rename + key + archive,
  // over more than one page; and filtered by type.
  const std::string events = run_cli("audit --org " + t.id + target, status);
  ASSERT_EQ(status, 0) << events;
  EXPECT_EQ(str(parse_json(events), "/data/0/type"), "project.archived");
  EXPECT_EQ(str(parse_json(events), "/data/109/type"), "organization.created");
  EXPECT_EQ(str(parse_json(events), "/data/110"), "<missing>");
  const std::string renames = run_cli("audit --org " + t.id + " --type project.updated --since " +
                                          std::to_string(::time(nullptr) - 600) + target,
                                      status);
  EXPECT_EQ(str(parse_json(renames), "/data/0/details/changes_requested/name"), "Renamed");
  EXPECT_EQ(str(parse_json(renames), "/data/1"), "<missing>");
}

TEST(OperatorCli, TalksToAServerOnAnIpv6Address) {
  ServerProcess s({"--listen", "[::1]:0"});
  const std::string target = " --server http://[::1]:" + std::to_string(s.port()) +
                             " --root-key-file " + s.data_dir() + "/root.key";
  int status = 0;
  auto created = parse_json(run_cli("orgs create --name V6" + target, status));
  ASSERT_EQ(status, 0);
  const std::string org = str(created, "/data/id");
  EXPECT_NE(run_cli("orgs list" + target, status).find(org), std::string::npos);
  EXPECT_EQ(status, 0);
}

namespace {

bool transparent_huge_pages_available() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(f, modes);
  return !modes.empty() && modes.find("[never]") == std::string::npos;
}

long anon_huge_pages_kb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("AnonHugePages:", 0) == 0) return std::stol(line.substr(14));
  return -1;
}

}  // namespace

// core/heap.hpp: a server linked with mimalloc asks it for 2 MiB pages unless the operator's
// MIMALLOC_LARGE_OS_PAGES says otherwise, and says which in its "starting" line; an empty
// server's heap then already sits on a transparent huge page.
TEST(Process, TheHeapIsOnHugePagesUnlessTheOperatorTurnsThemOff) {
  {
    ServerProcess s;
    const bool on = s.log().find("\"heap_huge_pages\":true") != std::string::npos;
    EXPECT_EQ(on, KEYGATE_SERVER_MIMALLOC == 1) << s.log();
    if (on && transparent_huge_pages_available()) {
      EXPECT_GE(anon_huge_pages_kb(s.pid()), 2048);
    }
  }
  ::setenv("MIMALLOC_LARGE_OS_PAGES", "0", 1);
  std::unique_ptr<ServerProcess> off;
  try {
    off = std::make_unique<ServerProcess>();
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  ::unsetenv("MIMALLOC_LARGE_OS_PAGES");
  ASSERT_TRUE(off);
  EXPECT_NE(off->log().find("\"heap_huge_pages\":false"), std::string::npos) << off->log();
}
