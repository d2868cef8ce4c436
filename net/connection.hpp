// Connection: one client socket and the coroutine that serves it, request after request,
// in order. Owned by its Reactor; the input buffer holds whole requests so that a Request's
// views stay valid while a handler waits on the log.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <string>

#include "net/buffer_budget.hpp"
#include "net/http_parser.hpp"
#include "net/response.hpp"
#include "net/task.hpp"
#include "net/tls.hpp"

namespace keygate::net {

class Reactor;

// A connection's receive buffer. It rests at kRestingBytes, grows (doubling) for a big
// request or a pipelined burst, taking every byte beyond its resting size from the
// server's BufferBudget, and goes back to rest by shrink() once what it holds fits again.
// Growing while a request is being handled keeps the old block alive (retired) until the
// handler is done, because the Request points into it.
class InputBuffer {
 public:
  static constexpr size_t kRestingBytes = 4096;

  explicit InputBuffer(BufferBudget& budget) noexcept : budget_(budget) {}
  ~InputBuffer();
  InputBuffer(const InputBuffer&) = delete;
  InputBuffer& operator=(const InputBuffer&) = delete;

  char* data() noexcept { return data_.get(); }
  size_t size() const noexcept { return size_; }
  size_t capacity() const noexcept { return capacity_; }
  // Appends `n` bytes; false, with nothing appended, when the growth this needs does not
  // fit in the budget.
  [[nodiscard]] bool append(const char* p, size_t n, bool keep_old);
  void discard_front(size_t n) noexcept;
  void release_retired() noexcept;
  // Back to a resting-size block if what it holds fits in one. Only while no Request
  // points into the buffer (the parser keeps offsets, not pointers).
  void shrink() noexcept;

 private:
  // What a block of `capacity` bytes costs the budget: its bytes beyond the resting size.
  static size_t charge(size_t capacity) noexcept {
    return capacity > kRestingBytes ? capacity - kRestingBytes : 0;
  }
  BufferBudget& budget_;
  std::unique_ptr<char[]> data_;
  std::unique_ptr<char[]> retired_;
  size_t size_ = 0;
  size_t capacity_ = 0;
  size_t retired_capacity_ = 0;
};

class Connection {
 public:
  // `tls`: the listener's context when it speaks TLS, else null.
  Connection(Reactor& reactor, int fd, const ParserLimits& limits, BufferBudget& budget,
             std::shared_ptr<TlsContext> tls = nullptr);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  detached_task run();

 private:
  friend class Reactor;
  struct InputAwaiter {
    Connection& c;
    bool await_ready() const noexcept {
      return c.input_pending_ || c.eof_ || c.timed_out_ || c.over_budget_;
    }
    void await_suspend(std::coroutine_handle<> h) noexcept { c.input_waiter_ = h; }
    void await_resume() noexcept { c.input_pending_ = false; }
  };
  struct FlushAwaiter {
    Connection& c;
    bool await_ready() const noexcept { return false; }
    // False (resume at once) when there is nothing left to wait for.
    bool await_suspend(std::coroutine_handle<> h) noexcept;
    void await_resume() noexcept {}
  };

  void answer(const Request* req, bool head);
  void wake_input() noexcept;
  void wake_flush() noexcept;
  void shutdown_socket() noexcept;

  Reactor& reactor_;
  int fd_;
  InputBuffer in_;
  std::string out_;  // plaintext answers of the turn (sent as they are without TLS)
  size_t sent_ = 0;  // of out_, or with TLS of wire_
  // TLS only (net/tls.hpp): the session, the ciphertext being sent (an io_uring send points
  // into it, so nothing is appended while one is in flight) and what waits behind it.
  std::unique_ptr<TlsSession> tls_;
  std::string wire_, wire_next_;
  bool sending_ = false;
  std::chrono::steady_clock::time_point accepted_;
  HttpParser parser_;
  Response res_;
  std::coroutine_handle<> input_waiter_;  // suspended until bytes arrive or input ends
  std::coroutine_handle<> flush_waiter_;  // suspended until out_ is sent

  unsigned inflight_ = 0;  // submitted io_uring operations not yet completed
  bool recv_armed_ = false;
  bool input_pending_ = false;  // bytes arrived since the coroutine last looked
  bool eof_ = false;            // no more input: the peer closed, or the reactor wants it gone
  bool broken_ = false;         // a send failed: nothing more can be written
  bool timed_out_ = false;      // the header timeout expired mid-request
  bool over_budget_ = false;    // its buffer could not grow within the server's BufferBudget
  bool busy_ = false;           // a request is being handled
  bool closing_ = false;
  bool answered_ = false;  // at least one answer was written (a drain may close it when idle)
  bool done_ = false;      // the coroutine has returned
  std::chrono::steady_clock::time_point last_activity_;
  std::chrono::steady_clock::time_point message_began_;

  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
};

}  // namespace keygate::net
