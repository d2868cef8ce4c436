// Test helpers, not tests (see harness.cpp): a real Redis on loopback.
#include "support/redis_server.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "support/check.hpp"
#include "support/etcd_cluster.hpp"
#include "support/harness.hpp"

extern char** environ;

namespace keygate::testing {

RedisServer::RedisServer(Options options) : options_(std::move(options)) {
  if (::access("/usr/bin/redis-server", X_OK) != 0)
    helper_failed("RedisServer: /usr/bin/redis-server is missing (scripts/setup test installs it)");
  dir_ = make_temp_dir();
  port_ = free_port();
  if (options_.tls) {
    int status = 0;
    const std::string d = dir_;
    auto run = [&](const std::string& cmd) {
      run_command(cmd + " 2>&1", status);
      if (status != 0) helper_failed("RedisServer: " + cmd + " failed");
    };
    run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=redis-ca -keyout " + d +
        "/ca.key -out " + d + "/ca.pem");
    run("openssl req -newkey rsa:2048 -nodes -subj /CN=redis -keyout " + d + "/server.key -out " +
        d + "/server.csr");
    std::ofstream(d + "/server.ext")
        << "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
    run("openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " + d +
        "/ca.key -CAcreateserial -days 2 -extfile " + d + "/server.ext -out " + d + "/server.pem");
  }
  start();
}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  remove_tree(dir_);
}

std::string RedisServer::url() const {
  std::string auth;
  if (!options_.password.empty()) auth = options_.user + ":" + options_.password + "@";
  return (options_.tls ? "rediss://" : "redis://") + auth + "127.0.0.1:" + std::to_string(port_);
}

std::string RedisServer::url_without_password() const {
  return (options_.tls ? "rediss://" : "redis://") +
         (options_.user.empty() ? std::string() : options_.user + "@") +
         "127.0.0.1:" + std::to_string(port_);
}

void RedisServer::start() {
  std::vector<std::string> args = {
      "/usr/bin/redis-server", "--bind", "127.0.0.1",   "--dir", dir_,         "--save", "",
      "--appendonly",          "no",     "--daemonize", "no",    "--loglevel", "warning"};
  const std::string port = std::to_string(port_);
  if (options_.tls)
    args.insert(args.end(), {"--port", "0", "--tls-port", port, "--tls-cert-file",
                             dir_ + "/server.pem", "--tls-key-file", dir_ + "/server.key",
                             "--tls-ca-cert-file", dir_ + "/ca.pem", "--tls-auth-clients", "no"});
  else
    args.insert(args.end(), {"--port", port});
  if (!options_.password.empty() && options_.user.empty())
    args.insert(args.end(), {"--requirepass", options_.password});
  if (!options_.user.empty()) {
    // The default user off: only the named one, with its password, gets in.
    std::ofstream(dir_ + "/users.acl") << "user default off\nuser " << options_.user << " on >"
                                       << options_.password << " ~* &* +@all\n";
    args.insert(args.end(), {"--aclfile", dir_ + "/users.acl"});
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, (dir_ + "/redis.log").c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    helper_failed("RedisServer: cannot start redis-server: " + std::string(std::strerror(rc)));
  wait_ready();
}

std::string RedisServer::cli(const std::string& command) const {
  std::string c = "redis-cli -h 127.0.0.1 -p " + std::to_string(port_);
  if (options_.tls) c += " --tls --cacert " + ca_file();
  if (!options_.user.empty()) c += " --user " + options_.user;
  if (!options_.password.empty()) c += " --pass " + options_.password + " --no-auth-warning";
  int status = 0;
  return run_command(c + " " + command + " 2>/dev/null", status);
}

void RedisServer::wait_ready() const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (cli("PING").find("PONG") == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline)
      helper_failed("RedisServer: no PONG within 15 s (see " + dir_ + "/redis.log)");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void RedisServer::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::freeze() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void RedisServer::thaw() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

}  // namespace keygate::testing
