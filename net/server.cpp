#include "net/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <future>
#include <stdexcept>
#include <system_error>

namespace keygate::net {

std::string Endpoint::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool parse_endpoint(std::string_view text, Endpoint& out, std::string& error) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    error = "expected HOST:PORT, for example 127.0.0.1:8080";
    return false;
  }
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned value = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), value);
  if (r.ec != std::errc{} || r.ptr != port.data() + port.size() || value > 65535) {
    error = "the port must be a number from 0 to 65535";
    return false;
  }
  in6_addr a6;
  in_addr a4;
  std::string h(host.empty() ? "0.0.0.0" : host);
  if (inet_pton(AF_INET, h.c_str(), &a4) != 1 && inet_pton(AF_INET6, h.c_str(), &a6) != 1) {
    error = "the host must be an IPv4 or IPv6 address, not a name: " + h;
    return false;
  }
  out.host = h;
  out.port = static_cast<uint16_t>(value);
  return true;
}

namespace {

int open_listener(const Endpoint& ep, uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len;
  int family;
  if (inet_pton(AF_INET, ep.host.c_str(), &reinterpret_cast<sockaddr_in&>(ss).sin_addr) == 1) {
    auto& sin = reinterpret_cast<sockaddr_in&>(ss);
    sin.sin_family = family = AF_INET;
    sin.sin_port = htons(port);
    len = sizeof sin;
  } else {
    auto& sin6 = reinterpret_cast<sockaddr_in6&>(ss);
    inet_pton(AF_INET6, ep.host.c_str(), &sin6.sin6_addr);
    sin6.sin6_family = family = AF_INET6;
    sin6.sin6_port = htons(port);
    len = sizeof sin6;
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::system_category(), "socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // One listener per reactor: the kernel spreads new connections across them.
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0 || ::listen(fd, 4096) < 0) {
    int err = errno;
    ::close(fd);
    throw std::system_error(err, std::system_category(),
                            "cannot listen on " + Endpoint{ep.host, port}.to_string());
  }
  return fd;
}

}  // namespace

uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6&>(ss).sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
}

Server::Server(Service& service, ReactorOptions options, std::string name, Server* limits)
    : service_(service),
      options_(options),
      own_budget_(options_.max_buffer_bytes),
      connection_count_(limits ? limits->connection_count_ : own_count_),
      budget_(limits ? limits->budget_ : own_budget_),
      name_(std::move(name)) {}

Server::~Server() {
  stop();
  join();
  if (own_fds_)
    for (int fd : listen_fds_) ::close(fd);
}

void Server::start(const Endpoint& endpoint, unsigned threads, int inherited_fd) {
  if (threads == 0) threads = 1;
  bound_ = endpoint;
  if (inherited_fd >= 0) {
    own_fds_ = false;
    bound_.port = local_port(inherited_fd);
    listen_fds_.assign(threads, inherited_fd);  // several rings may accept on one socket
  } else {
    uint16_t port = endpoint.port;
    for (unsigned i = 0; i < threads; ++i) {
      int fd = open_listener(endpoint, port);
      if (port == 0) port = local_port(fd);
      listen_fds_.push_back(fd);
    }
    bound_.port = port;
  }
  // A ring with SINGLE_ISSUER belongs to the thread that creates it: each reactor is built
  // on its own thread, and start() waits until every one is up (or rethrows why not).
  reactors_.resize(threads);
  std::vector<std::promise<void>> up(threads);
  for (unsigned i = 0; i < threads; ++i) {
    threads_.emplace_back([this, i, &up] {
      const std::string name = name_ + "-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.c_str());  // "kg-reactor-0": top -H, perf
      try {
        reactors_[i] = std::make_unique<Reactor>(listen_fds_[i], service_, options_,
                                                 connection_count_, budget_);
      } catch (...) {
        up[i].set_exception(std::current_exception());
        return;
      }
      if (options_.thread_start) options_.thread_start();
      up[i].set_value();
      reactors_[i]->run();
      if (options_.thread_stop) options_.thread_stop();
    });
  }
  for (auto& p : up) p.get_future().get();
}

void Server::stop() noexcept {
  for (auto& r : reactors_)
    if (r) r->request_stop();
}

void Server::join() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

}  // namespace keygate::net
