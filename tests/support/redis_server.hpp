// Test helper: a real Redis (Debian's redis-server) on a free loopback port, with its own
// directory, started by the test and stopped with it; no persistence, so a restart is a
// Redis that lost every counter. It can be killed, started again on the same port, and
// frozen (SIGSTOP: a Redis that hangs with its connections open). Optionally with a
// password, an ACL user, and TLS (its certificates made with the openssl command). Fails
// the running test (support/check.hpp) when redis-server is missing or never answers.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace keygate::testing {

class RedisServer {
 public:
  struct Options {
    std::string password;  // requirepass (the default user), or the ACL user's
    std::string user;      // an ACL user with every right on every key; empty: none
    bool tls = false;      // TLS only (no plain port), the certificate for 127.0.0.1
  };
  RedisServer() : RedisServer(Options{}) {}
  explicit RedisServer(Options options);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;

  uint16_t port() const { return port_; }
  // The URL for --redis: redis://[user:password@]127.0.0.1:P (rediss:// with TLS).
  std::string url() const;
  std::string url_without_password() const;
  std::string ca_file() const { return dir_ + "/ca.pem"; }

  void kill9();
  void start();  // again, on the same port; waits until it answers
  void freeze();
  void thaw();
  // redis-cli's answer to a command (a line each reply element), for the tests' checks.
  std::string cli(const std::string& command) const;

 private:
  Options options_;
  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  void wait_ready() const;
};

}  // namespace keygate::testing
