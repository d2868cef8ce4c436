// Test harness: starts the real keygate binary on a free port with a temporary data
// directory, and talks to it over real HTTP (libcurl) or raw sockets.
#pragma once

#include <simdjson.h>
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace keygate::testing {

std::string make_temp_dir();
void remove_tree(const std::string& path);
// Writes `text` to `path`, replacing what was there.
void write_file(const std::string& path, const std::string& text);

class ServerProcess {
 public:
  // Starts `keygate serve` and waits until it is ready. `data_dir` empty: a new temp dir.
  // Throws std::runtime_error with the server's output when it exits or is not ready
  // within 30 s: some tests expect a server to refuse to start, and say so themselves.
  // `env`: extra environment ("NAME=value"), over the test's own.
  // `listen_fd`: see the member of that name.
  explicit ServerProcess(std::vector<std::string> args = {}, std::string data_dir = {},
                         std::function<void(pid_t)> at_ready = {},
                         std::vector<std::string> env = {}, int listen_fd = -1);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;

  void start();
  // SIGTERM and wait; returns the exit status (or -signal).
  int stop();
  void kill9();
  int wait_exit();
  bool running() const { return pid_ > 0; }

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& root_key() const { return root_key_; }
  std::string log() const;
  std::vector<std::string> args;
  // Extra environment for the server ("NAME=value"), over the test's own: these win over
  // a variable of the same name. Read by every start().
  std::vector<std::string> env;
  // Run on the thread that reads the server's output, the moment its ready line arrives
  // (done before start() returns): for checks that must see the process at that instant.
  std::function<void(pid_t)> at_ready;
  // A listening socket to pass as systemd does (fd 3, LISTEN_FDS=1, LISTEN_PID): the
  // server then serves it instead of binding its own. -1: none. The caller keeps it open.
  int listen_fd = -1;
  // A program to run the server through ("ip netns exec NAME": support/netns.hpp); read by
  // every start(). The constructor's start() runs without one: use with_prefix().
  std::vector<std::string> exec_prefix;
  // Starts `keygate serve` through `prefix` (the constructor starts it without one).
  static std::unique_ptr<ServerProcess> with_prefix(std::vector<std::string> prefix,
                                                    std::vector<std::string> args);

 private:
  struct Deferred {};
  ServerProcess(Deferred, std::vector<std::string> args);  // not started yet
  std::string data_dir_;
  bool own_dir_ = false;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  uint16_t port_ = 0;
  std::string root_key_;
  mutable std::mutex log_mutex_;
  std::string log_;
  std::thread reader_;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

HttpResponse http(uint16_t port, const std::string& method, const std::string& path,
                  const std::string& body = {}, const std::vector<std::string>& headers = {});
HttpResponse http(uint16_t port, const std::string& method, const std::string& path,
                  const std::string& body, const std::string& bearer);

// HTTPS to a server started with --tls-cert: verified against `ca_file`, with a client
// certificate when `cert_file` is set. The connection is kept per thread, like http()'s
// (a client certificate change needs fresh_connection).
struct TlsClient {
  std::string ca_file, cert_file, key_file;
  bool fresh_connection = false;
  std::string host;  // the name to ask for (sent as SNI), reached at 127.0.0.1; empty: the IP
};
HttpResponse https(uint16_t port, const std::string& method, const std::string& path,
                   const std::string& body, const std::vector<std::string>& headers,
                   const TlsClient* tls);
// KEYGATE_TEST_TLS=1 runs the integration tests over TLS: every ServerProcess is started with
// a certificate made for the process, and http() speaks HTTPS to it. The client settings
// then, else null.
const TlsClient* tls_mode();

// Raw TCP: send bytes, read until the peer closes or `timeout_ms` passes. A connection
// that cannot be made fails the test (support/check.hpp).
int connect_to(uint16_t port);
// A socket listening on a loopback port, without SO_REUSEPORT: to pass to a server as
// systemd does, or to hold a port. `port` 0: a free one, whose number is put there;
// otherwise that one (with SO_REUSEADDR, so a port in TIME_WAIT can be taken). Failure
// fails the test.
int listen_loopback(uint16_t& port, int backlog = 128);
std::string send_raw(uint16_t port, const std::string& bytes, int timeout_ms = 2000,
                     bool half_close = true);
std::string read_some(int fd, int timeout_ms);

// Runs a shell command; its output (stdout and stderr) and, in `status`, what pclose says.
std::string run_command(const std::string& command, int& status);

// JSON of a response body, for assertions.
simdjson::dom::element parse_json(const std::string& body);
std::string str(simdjson::dom::element e, const char* path);  // JSON pointer, e.g. "/data/id"

// An organization created with the root key, and the secret key its creation reveals.
// These helpers fail the test with the server's answer unless they got a 201
// (support/check.hpp).
struct Tenant {
  std::string id, key;
};
Tenant make_tenant(const ServerProcess& s, const std::string& name);

// A key created in `t` with its own key from the JSON `body`: its id and revealed value.
struct CreatedKey {
  std::string id, value;
};
CreatedKey make_key(const ServerProcess& s, const Tenant& t, const std::string& body);

// Uploads `pem` to `t` and activates it for the whole organization: its id.
std::string activate_certificate(const ServerProcess& s, const Tenant& t, const std::string& pem);

}  // namespace keygate::testing
