// Server: the data plane. Opens one SO_REUSEPORT listener per reactor (or shares sockets
// handed over by systemd) and runs one Reactor per thread. start() returns once every
// listener is bound; stop() drains gracefully; join() waits for the threads.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "net/reactor.hpp"

namespace keygate::net {

struct Endpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string to_string() const;
};

// Parses "HOST:PORT" (IPv4, or IPv6 in brackets); nullopt with a message on error.
bool parse_endpoint(std::string_view text, Endpoint& out, std::string& error);

// The port a listening socket is bound to.
uint16_t local_port(int fd);

class Server {
 public:
  // `name`: its threads are "<name>-0", "<name>-1", ... (top -H, perf, pinning by name).
  // `limits`: another server whose connection count and buffer budget this one shares, so
  // that --max-connections and --max-buffer-bytes hold across both listeners (the admin
  // listener's); by default its own.
  Server(Service& service, ReactorOptions options, std::string name = "kg-reactor",
         Server* limits = nullptr);
  ~Server();

  // Binds `threads` listeners on `endpoint` (port 0: one free port shared by all) or, when
  // `inherited_fd` >= 0, serves that already-listening socket. Throws on failure.
  void start(const Endpoint& endpoint, unsigned threads, int inherited_fd = -1);
  Endpoint bound() const { return bound_; }
  // Across every server that shares this one's limits.
  unsigned connections() const { return connection_count_.load(std::memory_order_relaxed); }
  const BufferBudget& buffers() const noexcept { return budget_; }
  void stop() noexcept;
  void join();

 private:
  Service& service_;
  ReactorOptions options_;
  std::atomic<unsigned> own_count_{0};
  BufferBudget own_budget_;
  std::atomic<unsigned>& connection_count_;  // own_count_, or the limits server's
  BufferBudget& budget_;                     // own_budget_, or the limits server's
  std::vector<int> listen_fds_;
  bool own_fds_ = true;
  std::vector<std::unique_ptr<Reactor>> reactors_;
  std::vector<std::thread> threads_;
  Endpoint bound_;
  std::string name_;
};

}  // namespace keygate::net
