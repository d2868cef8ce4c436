#include "net/reactor.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <system_error>

#include "net/connection.hpp"

namespace keygate::net {

namespace {

thread_local Reactor* t_current = nullptr;

uint64_t tag(void* p, uintptr_t op) {
  return reinterpret_cast<uintptr_t>(p) | op;
}

[[noreturn]] void fail(const char* what, int err) {
  throw std::system_error(err, std::system_category(), what);
}

}  // namespace

Reactor::Reactor(int listen_fd, Service& service, const ReactorOptions& options,
                 std::atomic<unsigned>& connection_count, BufferBudget& budget)
    : ring_(options.ring_entries, options.buffer_count, options.buffer_size),
      listen_fd_(listen_fd),
      service_(service),
      options_(options),
      connection_count_(connection_count),
      budget_(budget) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) fail("eventfd", errno);
  inbox_.reserve(64);
  running_.reserve(64);
}

Reactor::~Reactor() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Reactor* Reactor::current() noexcept {
  return t_current;
}

void Reactor::arm_accept() {
  io_uring_sqe* s = ring_.sqe();
  io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, tag(this, op_accept));
  accepting_ = true;
}

void Reactor::arm_wake() {
  io_uring_sqe* s = ring_.sqe();
  io_uring_prep_read(s, wake_fd_, &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(s, tag(this, op_wake));
}

// The timer that checks connections for timeouts, and a drain's wait for a connection that
// has been answered to go quiet (on_tick).
constexpr std::chrono::milliseconds kTick{250};
constexpr std::chrono::milliseconds kDrainQuiet = kTick;

void Reactor::arm_tick() {
  tick_.tv_sec = 0;
  tick_.tv_nsec = std::chrono::nanoseconds(kTick).count();
  io_uring_sqe* s = ring_.sqe();
  io_uring_prep_timeout(s, &tick_, 0, 0);
  io_uring_sqe_set_data64(s, tag(this, op_tick));
}

void Reactor::arm_recv(Connection& c) {
  io_uring_sqe* s = ring_.sqe();
  io_uring_prep_recv_multishot(s, c.fd_, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = Ring::kBufferGroup;
  io_uring_sqe_set_data64(s, tag(&c, op_recv));
  c.recv_armed_ = true;
  ++c.inflight_;
}

void Reactor::queue_send(Connection& c) {
  const std::string& bytes = c.tls_ ? c.wire_ : c.out_;
  io_uring_sqe* s = ring_.sqe();
  io_uring_prep_send(s, c.fd_, bytes.data() + c.sent_, bytes.size() - c.sent_, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, tag(&c, op_send));
  ++c.inflight_;
}

void Reactor::send_tls(Connection& c) {
  if (c.sending_) return;  // on_tls_sent() takes wire_next_ when the send in flight is done
  if (c.wire_.empty()) c.wire_.swap(c.wire_next_);
  if (c.wire_.empty() || c.broken_) {
    c.wire_.clear();
    c.wire_next_.clear();
    c.wake_flush();
    return;
  }
  c.sending_ = true;
  c.sent_ = 0;
  queue_send(c);
}

void Reactor::on_tls_sent(Connection& c, int res) {
  c.sending_ = false;
  if (res < 0) {
    c.broken_ = true;
    c.eof_ = true;
  } else {
    c.sent_ += static_cast<size_t>(res);
    c.last_activity_ = now_;
    if (c.sent_ < c.wire_.size()) {
      c.sending_ = true;
      queue_send(c);  // a short send: the rest goes in the same turn's submission
      return;
    }
    c.wire_.clear();
  }
  send_tls(c);  // what queued up behind it, or the flush waiter's wake-up
}

bool Reactor::receive_tls(Connection& c, const char* data, size_t n) {
  thread_local std::string plain;
  plain.clear();
  const TlsSession::Status st = c.tls_->receive(data, n, plain, c.wire_next_);
  if (!c.wire_next_.empty()) send_tls(c);  // handshake messages, tickets, alerts
  if (st == TlsSession::Status::failed) {
    // Not TLS (plain HTTP sent to the TLS port), a failed handshake, a bad record: close,
    // after the alert if there is one.
    c.eof_ = true;
    return true;
  }
  if (st == TlsSession::Status::closed) c.eof_ = true;
  if (plain.empty()) return true;
  return c.in_.append(plain.data(), plain.size(), c.busy_);
}

// One wake-up for however many posts arrive before the reactor takes its inbox (on_wake()
// swaps it whole under the lock): only the post that finds the inbox empty writes the
// eventfd. A committer answering a transaction of 32 writes made 32 system calls here,
// a microsecond each on a virtual machine, and as many wake-ups (perf/RESULTS.md).
void Reactor::post(std::coroutine_handle<> h) {
  bool first;
  {
    std::lock_guard lock(inbox_mutex_);
    first = inbox_.empty();
    inbox_.push_back(h);
  }
  if (!first) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void Reactor::request_stop() noexcept {
  stop_requested_.store(true, std::memory_order_release);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void Reactor::refresh_clock() {
  now_ = std::chrono::steady_clock::now();
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != date_second_) {
    date_second_ = ts.tv_sec;
    tm t;
    gmtime_r(&ts.tv_sec, &t);
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &t);
    date_.assign(buf, n);
  }
}

void Reactor::run() {
  t_current = this;
  refresh_clock();
  arm_accept();
  arm_wake();
  arm_tick();
  // A drain ends when every connection is done and the multishot accept has completed
  // for good: until its cancellation is submitted and seen, the kernel may still accept
  // connections for this ring, and a process that exited then would reset them (a
  // restart under load would fail requests that the next process could have answered).
  while (!(draining_ && local_connections_ == 0 && !accepting_)) {
    int rc = io_uring_submit_and_wait(ring_.get(), 1);
    if (rc < 0 && rc != -EINTR && rc != -ETIME) fail("io_uring_submit_and_wait", -rc);
    refresh_clock();
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring_.get(), head, cqe) {
      on_completion(cqe);
      ++seen;
    }
    io_uring_cq_advance(ring_.get(), seen);
    if (!finished_.empty()) reap();
  }
  t_current = nullptr;
}

void Reactor::on_completion(io_uring_cqe* cqe) {
  const uint64_t data = io_uring_cqe_get_data64(cqe);
  const auto op = static_cast<Op>(data & 7);
  void* ptr = reinterpret_cast<void*>(data & ~uint64_t{7});
  switch (op) {
    case op_accept:
      on_accept(cqe->res, cqe->flags & IORING_CQE_F_MORE);
      break;
    case op_wake:
      on_wake();
      break;
    case op_tick:
      on_tick();
      break;
    case op_recv:
      on_recv(*static_cast<Connection*>(ptr), cqe->res, cqe->flags);
      break;
    case op_send: {
      auto& c = *static_cast<Connection*>(ptr);
      --c.inflight_;
      if (c.tls_) {
        on_tls_sent(c, cqe->res);
      } else if (cqe->res < 0) {
        c.broken_ = true;
        c.eof_ = true;
        c.out_.clear();
        c.sent_ = 0;
        c.wake_flush();
      } else {
        c.sent_ += static_cast<size_t>(cqe->res);
        if (c.sent_ < c.out_.size()) {
          queue_send(c);  // a short send: the rest goes in the same turn's submission
        } else {
          c.out_.clear();
          c.sent_ = 0;
          c.last_activity_ = now_;
          c.wake_flush();
        }
      }
      break;
    }
    case op_ignore:
      break;
  }
}

void Reactor::on_accept(int res, bool more) {
  if (!more) accepting_ = false;
  if (res >= 0) {
    const int fd = res;
    // A connection accepted as the drain began (the cancel raced the accept) is served
    // like the others: closing it would fail a request that a restart must not fail.
    if (connection_count_.load(std::memory_order_relaxed) >= options_.max_connections) {
      ::close(fd);  // over the connection limit: refuse at once rather than queue
    } else {
      connection_count_.fetch_add(1, std::memory_order_relaxed);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto* c = new Connection(*this, fd, options_.limits, budget_,
                               options_.tls ? options_.tls->current() : nullptr);
      c->next_ = connections_;
      if (connections_) connections_->prev_ = c;
      connections_ = c;
      ++local_connections_;
      arm_recv(*c);
      c->run();
    }
  }
  if (!accepting_ && !draining_) arm_accept();
}

void Reactor::on_recv(Connection& c, int res, uint32_t flags) {
  if (res > 0) {
    const auto bid = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    const size_t cap = options_.limits.max_header_bytes + options_.limits.max_body_bytes + 65536;
    if (c.in_.size() + static_cast<size_t>(res) > 2 * cap) {
      c.eof_ = true;  // a client pipelining far more than we can answer: cut it off
      c.shutdown_socket();
    } else if (c.over_budget_ ||
               !(c.tls_ ? receive_tls(c, ring_.buffer(bid), static_cast<size_t>(res))
                        : c.in_.append(ring_.buffer(bid), static_cast<size_t>(res), c.busy_))) {
      c.over_budget_ = true;  // answered 503 and closed by its coroutine
    } else {
      c.input_pending_ = true;
      c.last_activity_ = now_;
    }
    ring_.recycle(bid);
  } else if (res != -ENOBUFS) {
    c.eof_ = true;  // 0: orderly close; < 0: reset or shut down by us
  }
  if (!(flags & IORING_CQE_F_MORE)) {
    c.recv_armed_ = false;
    --c.inflight_;
    // Multishot receive ends on its own when the buffer ring ran dry: rearm.
    if (!c.eof_ && !c.done_) arm_recv(c);
  }
  c.wake_input();
}

void Reactor::on_wake() {
  {
    std::lock_guard lock(inbox_mutex_);
    running_.swap(inbox_);
  }
  for (auto h : running_) h.resume();
  running_.clear();
  if (stop_requested_.load(std::memory_order_acquire) && !draining_) begin_drain();
  arm_wake();
}

void Reactor::begin_drain() {
  draining_ = true;
  drain_deadline_ = now_ + options_.drain_timeout;
  if (accepting_) {
    io_uring_sqe* s = ring_.sqe();
    io_uring_prep_cancel64(s, tag(this, op_accept), 0);
    io_uring_sqe_set_data64(s, tag(this, op_ignore));
  }
  on_tick();
}

void Reactor::on_tick() {
  const bool past_drain = draining_ && now_ >= drain_deadline_;
  for (Connection* c = connections_; c; c = c->next_) {
    if (c->done_ || c->busy_) continue;
    if (c->flush_waiter_) {
      // A peer that stops reading: its send never completes. Cut it off.
      if (past_drain || now_ - c->last_activity_ >= options_.idle_timeout) c->shutdown_socket();
      continue;
    }
    if (!c->input_waiter_) continue;
    // Draining closes a connection once it is quiet: not in the middle of a request, and
    // idle since its last activity for a tick (250 ms) after an answer, a second before
    // the first (accepted moments ago, perhaps as the drain began, its first request is on
    // its way). A client that reuses its connection sends the next request as soon as it
    // has read the last answer: closing then would fail that request (a load generator
    // does not retry it, and a restart must fail nothing), so it is answered instead,
    // with `Connection: close` like every answer of a drain, and the client reconnects to
    // the listening socket. One that stays silent does not hold up the stop; a request it
    // sends as the close happens is the client's to retry, as HTTP clients do on a reused
    // connection (RFC 9112 9.3.1).
    if (c->tls_ && !c->tls_->handshake_done() && now_ - c->accepted_ >= options_.header_timeout) {
      c->eof_ = true;  // a handshake that stalls is timed out like a slow header
      c->wake_input();
      continue;
    }
    const bool mid_request = c->parser_.in_message();
    const bool quiet =
        now_ - c->last_activity_ >= (c->answered_ ? kDrainQuiet : std::chrono::seconds(1));
    if (past_drain || (draining_ && !mid_request && quiet)) {
      c->eof_ = true;
      c->wake_input();
    } else if (mid_request && !c->parser_.headers_complete() &&
               now_ - c->message_began_ >= options_.header_timeout) {
      c->timed_out_ = true;
      c->wake_input();
    } else if (now_ - c->last_activity_ >= options_.idle_timeout) {
      c->eof_ = true;
      c->wake_input();
    }
  }
  if (!draining_ || local_connections_ > 0) arm_tick();
}

void Reactor::reap() {
  size_t kept = 0;
  for (Connection* c : finished_) {
    if (c->inflight_ > 0) {
      finished_[kept++] = c;
      continue;
    }
    if (c->prev_)
      c->prev_->next_ = c->next_;
    else
      connections_ = c->next_;
    if (c->next_) c->next_->prev_ = c->prev_;
    ::close(c->fd_);
    delete c;
    --local_connections_;
    connection_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  finished_.resize(kept);
}

}  // namespace keygate::net
