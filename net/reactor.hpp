// Reactor: one thread, one io_uring, one listener's share of the connections. Multishot
// accept and multishot recv into a provided-buffer ring; sends are queued during a turn
// and submitted once at its end. Shared-nothing: a connection lives and dies on the
// reactor that accepted it; other threads talk to a reactor only through post().
#pragma once

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "net/buffer_budget.hpp"
#include "net/http_parser.hpp"
#include "net/ring.hpp"
#include "net/service.hpp"
#include "net/tls.hpp"

namespace keygate::net {

class Connection;

struct ReactorOptions {
  ParserLimits limits;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds drain_timeout{10'000};
  unsigned max_connections = 10'000;  // across all reactors
  // Receive-buffer bytes beyond each connection's resting size, across all reactors
  // (net/buffer_budget.hpp).
  size_t max_buffer_bytes = size_t{256} << 20;
  unsigned ring_entries = 2048;
  unsigned buffer_count = 1024;  // provided receive buffers (a power of two)
  unsigned buffer_size = 4096;
  // TLS on the listener: its current context (replaced on reload), or null for plain HTTP.
  const TlsConfig* tls = nullptr;
  // Run on each reactor thread before it serves and after it stops (e.g. RCU registration).
  std::function<void()> thread_start;
  std::function<void()> thread_stop;
};

class Reactor {
 public:
  Reactor(int listen_fd, Service& service, const ReactorOptions& options,
          std::atomic<unsigned>& connection_count, BufferBudget& budget);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // The thread body: returns once stop() was requested and every connection has ended.
  void run();
  // Any thread: stop accepting, let in-flight requests finish (up to drain_timeout), end.
  void request_stop() noexcept;
  // Any thread: resume `h` on this reactor's thread.
  void post(std::coroutine_handle<> h);
  // The reactor running on the calling thread, or nullptr.
  static Reactor* current() noexcept;

 private:
  friend class Connection;
  enum Op : uintptr_t {
    op_recv = 1,
    op_send = 2,
    op_accept = 3,
    op_wake = 4,
    op_tick = 5,
    op_ignore = 6
  };

  void arm_accept();
  void arm_wake();
  void arm_tick();
  void arm_recv(Connection& c);
  void queue_send(Connection& c);
  // TLS: sends wire_, or moves wire_next_ into it and sends that; wakes the flush waiter
  // once both are out. Nothing is sent while a send is in flight.
  void send_tls(Connection& c);
  void on_tls_sent(Connection& c, int res);
  // TLS: the received ciphertext through the session, the plaintext into the input buffer.
  bool receive_tls(Connection& c, const char* data, size_t n);
  void on_completion(io_uring_cqe* cqe);
  void on_accept(int res, bool more);
  void on_recv(Connection& c, int res, uint32_t flags);
  void on_wake();
  void on_tick();
  void begin_drain();
  void reap();
  void refresh_clock();

  Ring ring_;
  int listen_fd_;
  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;
  __kernel_timespec tick_{};
  Service& service_;
  ReactorOptions options_;
  std::atomic<unsigned>& connection_count_;
  BufferBudget& budget_;

  Connection* connections_ = nullptr;  // intrusive list of the live connections
  std::vector<Connection*> finished_;  // coroutine done; freed when no operation is in flight
  unsigned local_connections_ = 0;
  bool accepting_ = false;
  bool draining_ = false;
  std::chrono::steady_clock::time_point now_;
  std::chrono::steady_clock::time_point drain_deadline_;
  int64_t date_second_ = -1;
  std::string date_;

  std::atomic<bool> stop_requested_{false};
  std::mutex inbox_mutex_;
  std::vector<std::coroutine_handle<>> inbox_;
  std::vector<std::coroutine_handle<>> running_;
};

}  // namespace keygate::net
