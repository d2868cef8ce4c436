#include "support/tcp_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>
#include <utility>

#include "support/check.hpp"

namespace keygate::testing {

struct TcpProxy::Link {
  int client = -1, upstream = -1;
  std::atomic<bool> drop{false};  // the request in flight loses its answer
  std::atomic<int> hold_ms{0};    // ...or gets it this late
  void shut() {
    ::shutdown(client, SHUT_RDWR);
    ::shutdown(upstream, SHUT_RDWR);
  }
  ~Link() {
    ::close(client);
    ::close(upstream);
  }
};

TcpProxy::TcpProxy(uint16_t upstream_port, std::string upstream_host)
    : upstream_(upstream_port), upstream_host_(std::move(upstream_host)) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listener_, 64) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    helper_failed(std::string("TcpProxy: ") + std::strerror(errno));
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TcpProxy::~TcpProxy() {
  stopping_ = true;
  acceptor_.join();
  {
    std::lock_guard l(mutex_);
    for (auto& link : links_) link->shut();
  }
  for (auto& t : threads_) t.join();
  ::close(listener_);
}

void TcpProxy::drop_answer_to(std::string request_start) {
  std::lock_guard l(mutex_);
  armed_ = std::move(request_start);
}

void TcpProxy::before_request(std::string request_start, std::string containing,
                              std::function<void()> fn) {
  std::lock_guard l(mutex_);
  before_start_ = std::move(request_start);
  before_containing_ = std::move(containing);
  before_ = std::move(fn);
}

void TcpProxy::hold_answer_to(std::string request_start, std::string containing, int delay_ms) {
  std::lock_guard l(mutex_);
  hold_start_ = std::move(request_start);
  hold_containing_ = std::move(containing);
  hold_ms_ = delay_ms;
}

void TcpProxy::cut(bool on) {
  cut_ = on;
  if (!on) return;
  std::lock_guard l(mutex_);
  for (auto& link : links_) link->shut();
}

void TcpProxy::accept_loop() {
  while (!stopping_) {
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    if (cut_) {
      ::close(client);
      continue;
    }
    auto link = std::make_shared<Link>();
    link->client = client;
    link->upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, upstream_host_.c_str(), &a.sin_addr);
    a.sin_port = htons(upstream_);
    if (::connect(link->upstream, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      link->shut();  // the upstream is down: so is the proxy, for this connection
      continue;
    }
    std::lock_guard l(mutex_);
    links_.push_back(link);
    threads_.emplace_back([this, link] { pump(link, true); });
    threads_.emplace_back([this, link] { pump(link, false); });
  }
}

void TcpProxy::pump(std::shared_ptr<Link> link, bool from_client) {
  const int from = from_client ? link->client : link->upstream;
  const int to = from_client ? link->upstream : link->client;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(from, buffer, sizeof buffer);
    if (n <= 0) break;
    if (from_client) {
      std::lock_guard l(mutex_);
      if (!armed_.empty() && static_cast<size_t>(n) >= armed_.size() &&
          std::memcmp(buffer, armed_.data(), armed_.size()) == 0) {
        link->drop = true;
        armed_.clear();
      }
      const std::string_view chunk(buffer, static_cast<size_t>(n));
      if (!hold_start_.empty() && chunk.starts_with(hold_start_) &&
          chunk.find(hold_containing_) != std::string_view::npos) {
        link->hold_ms = hold_ms_;
        hold_start_.clear();
      }
      if (!before_start_.empty() && chunk.starts_with(before_start_) &&
          chunk.find(before_containing_) != std::string_view::npos) {
        before_start_.clear();
        std::exchange(before_, {})();  // under the lock: other requests wait for it too
      }
    } else if (link->drop) {  // the server answered: the work is done, the answer is lost
      ++dropped_;
      break;
    } else if (const int ms = link->hold_ms.exchange(0); ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
    for (ssize_t sent = 0; sent < n;) {
      const ssize_t w = ::write(to, buffer + sent, static_cast<size_t>(n - sent));
      if (w <= 0) {
        link->shut();
        return;
      }
      sent += w;
    }
  }
  link->shut();
}

}  // namespace keygate::testing
