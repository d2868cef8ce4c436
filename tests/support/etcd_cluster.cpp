// Test helpers, not tests (see harness.cpp): a real etcd cluster on loopback.
#include "support/etcd_cluster.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "support/check.hpp"
#include "support/harness.hpp"

extern char** environ;

namespace keygate::testing {

namespace {

// The lowest port the kernel hands out to outgoing connections (and to bind(port 0)).
int ephemeral_low() {
  int low = 32768, high = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low >> high;
  return low;
}

bool bindable(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) helper_failed(std::string("free_port: socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

void run(const std::string& command) {
  if (std::system((command + " >/dev/null 2>&1").c_str()) != 0)
    helper_failed("EtcdCluster: failed: " + command);
}

// The last lines of a file, for a failure message.
std::string tail(const std::string& path, size_t bytes = 800) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

}  // namespace

// Drawn below the ephemeral range: a port the kernel picked for bind(0) is one it may give
// the next outgoing connection of any test running beside this one (a test with 10,000
// clients takes thousands), and the program this port is for binds it only later. Below
// the range only another test's listener can take it, and each process draws at random
// and never hands out the same port twice.
uint16_t free_port() {
  static std::mutex mutex;
  static std::set<uint16_t> given;
  static std::mt19937 draw{std::random_device{}()};
  const std::lock_guard lock(mutex);
  const int high = ephemeral_low() - 1, low = std::max(1024, high - 12000);
  if (high - low >= 1000)
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const auto port = static_cast<uint16_t>(std::uniform_int_distribution<int>(low, high)(draw));
      if (!given.contains(port) && bindable(port)) {
        given.insert(port);
        return port;
      }
    }
  for (int attempt = 0; attempt < 100; ++attempt) {  // no room below the range: ask the kernel
    uint16_t port = 0;
    ::close(listen_loopback(port));
    if (given.insert(port).second) return port;
  }
  helper_failed("free_port: no free port");
  return 0;
}

EtcdCluster::EtcdCluster(int n, bool tls, std::vector<std::string> extra)
    : root_(make_temp_dir()), tls_(tls), extra_(std::move(extra)) {
  init(std::vector<Place>(static_cast<size_t>(n)));
}

EtcdCluster::EtcdCluster(std::vector<Place> places) : root_(make_temp_dir()) {
  init(std::move(places));
}

void EtcdCluster::init(std::vector<Place> places) {
  const int n = static_cast<int>(places.size());
  if (::access("/usr/bin/etcd", X_OK) != 0)
    helper_failed(
        "EtcdCluster: /usr/bin/etcd is missing (scripts/setup test installs etcd-server)");
  if (tls_) {
    const std::string d = root_;
    run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout " + d +
        "/ca.key -out " + d + "/ca.pem");
    for (const char* who : {"server", "client"}) {
      const std::string w = d + "/" + who;
      run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + std::string(who) + " -keyout " + w +
          ".key -out " + w + ".csr");
      std::ofstream(w + ".ext")
          << "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n";
      run("openssl x509 -req -in " + w + ".csr -CA " + d + "/ca.pem -CAkey " + d +
          "/ca.key -CAcreateserial -days 2 -extfile " + w + ".ext -out " + w + ".pem");
    }
  }
  // A member that cannot bind its ports exits at once (another test's listener took one
  // between free_port() and etcd's bind): the cluster starts over on other ports.
  for (int attempt = 1;; ++attempt) {
    initial_cluster_.clear();
    members_.clear();
    for (int i = 0; i < n; ++i) {
      Member m;
      m.name = "m" + std::to_string(i);
      m.dir = root_ + "/" + m.name;
      m.place = places[static_cast<size_t>(i)];
      m.client = free_port();
      m.peer = free_port();
      initial_cluster_ +=
          (i ? "," : "") + m.name + "=http://" + m.place.host + ":" + std::to_string(m.peer);
      members_.push_back(m);
    }
    for (int i = 0; i < n; ++i) start(i);
    const Unhealthy failure = await_healthy();
    if (failure.why.empty()) break;
    if (!failure.exited || attempt == 3) helper_failed(failure.why);
    for (auto& m : members_) {
      if (m.pid > 0) {
        ::kill(m.pid, SIGKILL);
        ::waitpid(m.pid, nullptr, 0);
      }
      remove_tree(m.dir);
      std::remove((m.dir + ".log").c_str());
    }
  }
  started_once_ = true;
}

EtcdCluster::~EtcdCluster() {
  for (auto& m : members_)
    if (m.pid > 0) {
      ::kill(m.pid, SIGKILL);
      ::waitpid(m.pid, nullptr, 0);
    }
  remove_tree(root_);
}

std::string EtcdCluster::url(const Member& m) const {
  return std::string(tls_ ? "https" : "http") + "://" + m.place.host + ":" +
         std::to_string(m.client);
}

std::string EtcdCluster::endpoints() const {
  std::string out;
  for (const auto& m : members_) out += (out.empty() ? "" : ",") + url(m);
  return out;
}

void EtcdCluster::start(int i, bool wait) {
  Member& m = members_[static_cast<size_t>(i)];
  const std::string client = url(m);
  const std::string peer = "http://" + m.place.host + ":" + std::to_string(m.peer);
  std::vector<std::string> args = m.place.prefix;
  args.insert(args.end(),
              {"/usr/bin/etcd", "--name", m.name, "--data-dir", m.dir, "--listen-client-urls",
               client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
               "--initial-advertise-peer-urls", peer, "--initial-cluster", initial_cluster_,
               "--initial-cluster-state", "new", "--initial-cluster-token", "keygate-test",
               // Short elections: a test that kills the leader waits less.
               "--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "warn"});
  if (tls_)
    args.insert(args.end(),
                {"--cert-file", root_ + "/server.pem", "--key-file", root_ + "/server.key",
                 "--client-cert-auth", "--trusted-ca-file", ca_file()});
  args.insert(args.end(), extra_.begin(), extra_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, (m.dir + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const int rc = posix_spawn(&m.pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) helper_failed("EtcdCluster: cannot start etcd: " + std::string(std::strerror(rc)));
  if (started_once_ && wait) wait_healthy();
}

void EtcdCluster::freeze(int i) {
  const Member& m = members_[static_cast<size_t>(i)];
  if (m.pid > 0) ::kill(m.pid, SIGSTOP);
}

void EtcdCluster::thaw(int i) {
  const Member& m = members_[static_cast<size_t>(i)];
  if (m.pid > 0) ::kill(m.pid, SIGCONT);
}

std::string EtcdCluster::endpoint(int i) const {
  return url(members_[static_cast<size_t>(i)]);
}

std::string EtcdCluster::endpoints_from(int first) const {
  std::string out = endpoint(first);
  for (int i = 0; i < size(); ++i)
    if (i != first) out += "," + endpoint(i);
  return out;
}

void EtcdCluster::stop(int i) {
  Member& m = members_[static_cast<size_t>(i)];
  if (m.pid <= 0) return;
  ::kill(m.pid, SIGCONT);  // a frozen member must run to stop
  ::kill(m.pid, SIGTERM);
  ::waitpid(m.pid, nullptr, 0);
  m.pid = -1;
}

void EtcdCluster::kill9(int i) {
  Member& m = members_[static_cast<size_t>(i)];
  if (m.pid <= 0) return;
  ::kill(m.pid, SIGKILL);
  ::waitpid(m.pid, nullptr, 0);
  m.pid = -1;
}

void EtcdCluster::wait_healthy() {
  const Unhealthy failure = await_healthy();
  if (!failure.why.empty()) helper_failed(failure.why);
}

EtcdCluster::Unhealthy EtcdCluster::await_healthy() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    bool all = true;
    for (auto& m : members_) {
      if (m.pid <= 0) continue;
      int status = 0;
      if (::waitpid(m.pid, &status, WNOHANG) == m.pid) {
        m.pid = -1;
        return {"EtcdCluster: member " + m.name + " exited (status " + std::to_string(status) +
                    "); its log ends:\n" + tail(m.dir + ".log"),
                true};
      }
      all = all && healthy(m);
    }
    if (all) return {};
    if (std::chrono::steady_clock::now() > deadline) {
      std::string logs;
      for (const auto& m : members_) logs += "\n" + m.name + ": " + tail(m.dir + ".log", 400);
      return {"EtcdCluster: not healthy within 30 s; the members' logs end:" + logs};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

bool EtcdCluster::healthy(const Member& m) const {
  if (!tls_ && m.place.host == "127.0.0.1")
    return http(m.client, "GET", "/health").body.find("\"true\"") != std::string::npos;
  if (!tls_) {
    int status = 0;
    return run_command("curl -s --max-time 2 " + url(m) + "/health", status).find("\"true\"") !=
           std::string::npos;
  }
  const std::string cmd = "curl -s --max-time 2 --cacert " + ca_file() + " --cert " + cert_file() +
                          " --key " + key_file() +
                          " https://127.0.0.1:" + std::to_string(m.client) + "/health";
  int status = 0;
  return run_command(cmd, status).find("\"true\"") != std::string::npos;
}

int EtcdCluster::leader() const {
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i].pid <= 0) continue;
    int code = 0;
    const std::string status =
        members_[i].place.host == "127.0.0.1"
            ? http(members_[i].client, "POST", "/v3/maintenance/status", "{}").body
            : run_command("curl -s --max-time 2 -X POST -d '{}' " + url(members_[i]) +
                              "/v3/maintenance/status",
                          code);
    const size_t l = status.find("\"leader\":\""), me = status.find("\"member_id\":\"");
    if (l == std::string::npos || me == std::string::npos) continue;
    const std::string leader = status.substr(l + 10, status.find('"', l + 10) - l - 10);
    const std::string self = status.substr(me + 13, status.find('"', me + 13) - me - 13);
    if (leader == self) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace keygate::testing
