#include "net/connection.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/reactor.hpp"

namespace keygate::net {

namespace {
// Answers up to this size keep their string's memory from one burst to the next.
constexpr size_t kRestingOutputBytes = 64 * 1024;
}  // namespace

InputBuffer::~InputBuffer() {
  budget_.give(charge(capacity_) + charge(retired_capacity_));
}

bool InputBuffer::append(const char* p, size_t n, bool keep_old) {
  if (size_ + n > capacity_) {
    size_t cap = capacity_ ? capacity_ : kRestingBytes;
    while (cap < size_ + n) cap *= 2;
    // The new block is taken from the budget before the old one is given back: for a moment
    // both exist. A retired block (a handler still reads it) stays charged until released;
    // only one can be retired at a time, so a second growth during a request frees the
    // first retired block's charge by replacing it.
    if (!budget_.take(charge(cap))) return false;
    auto grown = std::make_unique_for_overwrite<char[]>(cap);
    if (size_) std::memcpy(grown.get(), data_.get(), size_);
    if (keep_old && data_) {
      budget_.give(charge(retired_capacity_));
      retired_ = std::move(data_);
      retired_capacity_ = capacity_;
    } else {
      budget_.give(charge(capacity_));
    }
    data_ = std::move(grown);
    capacity_ = cap;
  }
  std::memcpy(data_.get() + size_, p, n);
  size_ += n;
  return true;
}

void InputBuffer::discard_front(size_t n) noexcept {
  if (n == 0) return;
  std::memmove(data_.get(), data_.get() + n, size_ - n);
  size_ -= n;
}

void InputBuffer::release_retired() noexcept {
  if (!retired_) return;
  retired_.reset();
  budget_.give(charge(std::exchange(retired_capacity_, 0)));
}

void InputBuffer::shrink() noexcept {
  if (capacity_ <= kRestingBytes || size_ > kRestingBytes || retired_) return;
  auto rest = std::make_unique_for_overwrite<char[]>(kRestingBytes);
  if (size_) std::memcpy(rest.get(), data_.get(), size_);
  data_ = std::move(rest);
  budget_.give(charge(std::exchange(capacity_, kRestingBytes)));
}

Connection::Connection(Reactor& reactor, int fd, const ParserLimits& limits, BufferBudget& budget,
                       std::shared_ptr<TlsContext> tls)
    : reactor_(reactor),
      fd_(fd),
      in_(budget),
      tls_(tls ? std::make_unique<TlsSession>(std::move(tls)) : nullptr),
      accepted_(reactor.now_),
      parser_(limits),
      last_activity_(reactor.now_) {}

bool Connection::FlushAwaiter::await_suspend(std::coroutine_handle<> h) noexcept {
  if (!c.tls_) {
    c.flush_waiter_ = h;
    c.reactor_.queue_send(c);
    return true;
  }
  // Over TLS: the turn's answers become records behind whatever is being sent.
  if (!c.tls_->send(c.out_, c.wire_next_)) {
    c.broken_ = true;  // no session to answer in (a timeout before the handshake ended)
    c.eof_ = true;
  }
  c.out_.clear();
  if (c.broken_ || (!c.sending_ && c.wire_.empty() && c.wire_next_.empty())) {
    c.wire_next_.clear();
    return false;
  }
  c.flush_waiter_ = h;
  c.reactor_.send_tls(c);
  return true;
}

void Connection::wake_input() noexcept {
  if (auto h = std::exchange(input_waiter_, {})) h.resume();
}

void Connection::wake_flush() noexcept {
  if (auto h = std::exchange(flush_waiter_, {})) h.resume();
}

void Connection::shutdown_socket() noexcept {
  ::shutdown(fd_, SHUT_RDWR);
}

void Connection::answer(const Request* req, bool head) {
  const bool close = closing_ || res_.close || reactor_.draining_ || (req && !req->keep_alive);
  serialize(res_, head, close, reactor_.date_, out_);
  answered_ = true;
  if (close) closing_ = true;
}

// The story of one connection: answer every complete request in the buffer, in order;
// send the answers in one write; wait for more bytes; repeat until either side is done.
detached_task Connection::run() {
  Service& service = reactor_.service_;
  for (;;) {
    while (!closing_) {
      HttpParser::Event ev = parser_.parse(in_.data(), in_.size());
      if (ev == HttpParser::Event::need_more) break;
      if (ev == HttpParser::Event::expect_continue) {
        out_.append("HTTP/1.1 100 Continue\r\n\r\n");
        continue;
      }
      if (ev != HttpParser::Event::request) {
        res_.reset();
        service.reject(ev == HttpParser::Event::headers_too_large ? ProtocolError::headers_too_large
                       : ev == HttpParser::Event::body_too_large  ? ProtocolError::body_too_large
                                                                  : ProtocolError::malformed,
                       res_);
        closing_ = true;
        answer(nullptr, false);
        break;
      }
      Request& req = parser_.request();
      req.socket = fd_;
      if (tls_) {
        req.tls = true;
        req.peer_certificate = tls_->peer();
      }
      res_.reset();
      busy_ = true;
      if (auto pending = service.handle(req, res_)) co_await std::move(*pending);
      answer(&req, req.method == Method::head);
      if (res_.file.fd >= 0 && req.method != Method::head) {
        // A body from a file goes out a chunk at a time behind the head: never whole in
        // memory, and its first bytes leave at once. A file that reads short cannot keep
        // the length promised: the connection closes, and the client sees a cut body.
        // The handler is done (nothing reads the request any more): what is left is a send,
        // so the tick's rule for a peer that stops reading (Reactor::on_tick: cut off after
        // the idle timeout without progress, or at the drain's end) applies to it as to any
        // answer. Left busy, a joining node that hung mid-transfer held the connection and
        // the snapshot's file for good, and stopped a drain from ending.
        busy_ = false;
        constexpr size_t kFileChunk = size_t{1} << 20;
        uint64_t offset = 0;
        while (offset < res_.file.size && !broken_) {
          co_await FlushAwaiter{*this};
          if (broken_) break;
          const auto want =
              static_cast<size_t>(std::min<uint64_t>(kFileChunk, res_.file.size - offset));
          const size_t at = out_.size();
          out_.resize(at + want);
          size_t got = 0;
          while (got < want) {
            const ssize_t n = ::pread(res_.file.fd, out_.data() + at + got, want - got,
                                      static_cast<off_t>(offset + got));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<size_t>(n);
          }
          out_.resize(at + got);
          offset += got;
          if (got < want) {
            closing_ = true;
            break;
          }
        }
      }
      res_.file.close();
      busy_ = false;
      in_.release_retired();
      parser_.next();
    }
    // Bytes before the request in progress are answered: drop them.
    if (size_t done = parser_.message_start()) {
      in_.discard_front(done);
      parser_.rebase(done);
    }
    // A big body or burst is answered: the buffer goes back to rest, so a connection that
    // once needed megabytes does not keep them for the rest of its life.
    in_.shrink();
    if (!parser_.in_message())
      message_began_ = {};
    else if (message_began_ == std::chrono::steady_clock::time_point{})
      message_began_ = reactor_.now_;

    if (!out_.empty()) {
      co_await FlushAwaiter{*this};
      // Likewise the answers of a long pipelined burst.
      if (out_.capacity() > kRestingOutputBytes) std::string().swap(out_);
    }
    if (closing_ || eof_ || broken_) break;
    co_await InputAwaiter{*this};
    if (timed_out_ || over_budget_) {
      res_.reset();
      service.reject(over_budget_ ? ProtocolError::overloaded : ProtocolError::timeout, res_);
      closing_ = true;
      answer(nullptr, false);
      co_await FlushAwaiter{*this};
      break;
    }
    // On end of input, one more pass answers whatever complete requests arrived with it.
  }
  done_ = true;
  shutdown_socket();
  reactor_.finished_.push_back(this);  // freed once its last io_uring operation completes
}

}  // namespace keygate::net
