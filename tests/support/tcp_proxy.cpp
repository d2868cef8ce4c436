#include "support/tcp_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
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
  // HTTP/1.1: the request in flight loses its answer, or gets it this late. HTTP/2: the
  // stream whose answer is lost (0: none), or held (hold_ms for hold_stream).
  std::atomic<bool> drop{false};
  std::atomic<int> hold_ms{0};
  std::atomic<uint32_t> drop_stream{0}, hold_stream{0};
  std::string first_request;         // its first 64 bytes, as matched (under the proxy's mutex_)
  std::atomic<bool> stalled{false};  // stall_connections_of()
  // HTTP/2 (keygate's gRPC calls to etcd, one after another on a kept connection): the
  // client's bytes are held from a request's first frame until its last (END_STREAM), then
  // matched as "POST <path>" and its body and passed on. The header blocks are decoded with
  // one HPACK decoder for the connection, as its dynamic table spans requests.
  std::atomic<bool> h2{false};
  std::string from_client, from_server;  // bytes not yet parsed into frames
  std::string held;                      // the client's frames not yet passed on
  bool preface_seen = false;
  uint32_t request_stream = 0;  // the request being held (0: none)
  std::string header_block, path, body;
  nghttp2_hd_inflater* inflater = nullptr;
  void shut() {
    ::shutdown(client, SHUT_RDWR);
    ::shutdown(upstream, SHUT_RDWR);
  }
  ~Link() {
    ::close(client);
    ::close(upstream);
    if (inflater) nghttp2_hd_inflate_del(inflater);
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

void TcpProxy::stall_connections_of(std::string request_start, bool on) {
  std::lock_guard l(mutex_);
  for (auto& link : links_)
    if (link->first_request.starts_with(request_start)) link->stalled = on;
  stall_start_ = on ? std::move(request_start) : std::string();
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
    ++accepted_;
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

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct Frame {
  uint32_t length;
  uint8_t type, flags;
  uint32_t stream;
  std::string_view payload;
};

// The next whole frame at the front of `in`, if there is one.
bool next_frame(std::string_view in, Frame& f) {
  if (in.size() < 9) return false;
  const auto* b = reinterpret_cast<const uint8_t*>(in.data());
  f.length = (uint32_t{b[0]} << 16) | (uint32_t{b[1]} << 8) | b[2];
  f.type = b[3];
  f.flags = b[4];
  f.stream = ((uint32_t{b[5]} << 24) | (uint32_t{b[6]} << 16) | (uint32_t{b[7]} << 8) | b[8]) &
             0x7fffffffu;
  if (in.size() < 9 + f.length) return false;
  f.payload = in.substr(9, f.length);
  return true;
}

// A frame's payload without its padding (and a HEADERS frame's priority fields).
std::string_view content(const Frame& f) {
  std::string_view p = f.payload;
  size_t pad = 0;
  if (f.flags & 0x8) {  // PADDED
    if (p.empty()) return {};
    pad = static_cast<uint8_t>(p[0]);
    p.remove_prefix(1);
  }
  if (f.type == 1 && (f.flags & 0x20)) p.remove_prefix(std::min<size_t>(5, p.size()));  // PRIORITY
  return p.substr(0, p.size() >= pad ? p.size() - pad : 0);
}

// The :path of a request's header block, decoded with the connection's HPACK decoder
// (every block must go through it, in order, for its dynamic table to stay right).
std::string path_of(nghttp2_hd_inflater* inflater, std::string_view block) {
  std::string path;
  auto* in = reinterpret_cast<const uint8_t*>(block.data());
  size_t left = block.size();
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t used = nghttp2_hd_inflate_hd2(inflater, &nv, &flags, in, left, 1);
    if (used < 0) break;
    in += used;
    left -= static_cast<size_t>(used);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      const std::string_view name(reinterpret_cast<const char*>(nv.name), nv.namelen);
      if (name == ":path") path.assign(reinterpret_cast<const char*>(nv.value), nv.valuelen);
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater);
      break;
    }
    if (used == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) break;  // no progress: malformed
  }
  return path;
}

}  // namespace

bool TcpProxy::send_all(const std::shared_ptr<Link>& link, int to, std::string_view bytes) {
  for (size_t sent = 0; sent < bytes.size();) {
    const ssize_t w = ::send(to, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (w <= 0) {
      link->shut();
      return false;
    }
    sent += static_cast<size_t>(w);
  }
  return true;
}

// Decides what happens to a request: `request` is its first chunk (HTTP/1.1) or, for
// HTTP/2, "POST <path>\r\n\r\n<body>" once it is whole, on `stream`.
void TcpProxy::match(const std::shared_ptr<Link>& link, std::string_view request, uint32_t stream) {
  std::lock_guard l(mutex_);
  if (link->first_request.empty()) {
    link->first_request = request.substr(0, 64);
    if (!stall_start_.empty() && request.starts_with(stall_start_)) link->stalled = true;
  }
  if (!armed_.empty() && request.starts_with(armed_)) {
    if (stream)
      link->drop_stream = stream;
    else
      link->drop = true;
    armed_.clear();
  }
  if (!hold_start_.empty() && request.starts_with(hold_start_) &&
      request.find(hold_containing_) != std::string_view::npos) {
    link->hold_ms = hold_ms_;
    if (stream) link->hold_stream = stream;
    hold_start_.clear();
  }
  if (!before_start_.empty() && request.starts_with(before_start_) &&
      request.find(before_containing_) != std::string_view::npos) {
    before_start_.clear();
    std::exchange(before_, {})();  // under the lock: other requests wait for it too
  }
}

// HTTP/2 from the client: whole frames are held while a request is open and passed on with
// its last one, once matched; frames outside a request go on at once. False: stop.
bool TcpProxy::client_frames(const std::shared_ptr<Link>& link, std::string_view chunk) {
  link->from_client.append(chunk);
  std::string_view rest(link->from_client);
  if (!link->preface_seen) {
    if (rest.size() < kPreface.size()) return true;
    link->held.append(rest.substr(0, kPreface.size()));
    rest.remove_prefix(kPreface.size());
    link->preface_seen = true;
  }
  Frame f;
  while (next_frame(rest, f)) {
    link->held.append(rest.substr(0, 9 + f.length));
    if (f.stream != 0 && (f.type == 1 || f.type == 9 || f.type == 0)) {
      if (f.type == 1) {  // a request begins
        link->request_stream = f.stream;
        link->header_block.clear();
        link->path.clear();
        link->body.clear();
      }
      if (f.type == 1 || f.type == 9) {
        link->header_block += content(f);
        if (f.flags & 0x4) link->path = path_of(link->inflater, link->header_block);  // END_HEADERS
      }
      if (f.type == 0) link->body += content(f);
      if ((f.type == 0 || f.type == 1) && (f.flags & 0x1)) {  // END_STREAM: the request is whole
        match(link, "POST " + link->path + "\r\n\r\n" + link->body, f.stream);
        link->request_stream = 0;
      }
    }
    rest.remove_prefix(9 + f.length);
    if (link->request_stream == 0) {
      if (!send_all(link, link->upstream, link->held)) return false;
      link->held.clear();
    }
  }
  link->from_client.erase(0, link->from_client.size() - rest.size());
  return true;
}

void TcpProxy::pump(std::shared_ptr<Link> link, bool from_client) {
  const int from = from_client ? link->client : link->upstream;
  const int to = from_client ? link->upstream : link->client;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(from, buffer, sizeof buffer);
    if (n <= 0) break;
    while ((stalled_ || link->stalled) && !stopping_)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::string_view chunk(buffer, static_cast<size_t>(n));
    if (from_client) {
      if (!link->h2 && chunk.starts_with("PRI ")) {
        if (nghttp2_hd_inflate_new(&link->inflater) != 0) break;
        link->h2 = true;
      }
      if (link->h2) {
        if (!client_frames(link, chunk)) return;
        continue;
      }
      match(link, chunk, 0);
    } else if (link->h2) {
      // An answer begins with its HEADERS frame on the request's stream (the server's
      // SETTINGS and window updates come before the work is done, and go through).
      link->from_server.append(chunk);
      std::string_view rest(link->from_server);
      Frame f;
      bool drop = false;
      int hold = 0;
      while (next_frame(rest, f)) {
        rest.remove_prefix(9 + f.length);
        if (f.type != 1 || f.stream == 0) continue;
        if (f.stream == link->drop_stream.load()) drop = true;
        if (f.stream == link->hold_stream.load()) {
          link->hold_stream = 0;
          hold = link->hold_ms.exchange(0);
        }
      }
      link->from_server.erase(0, link->from_server.size() - rest.size());
      if (drop) {  // the server answered: the work is done, the answer is lost
        ++dropped_;
        break;
      }
      if (hold > 0) std::this_thread::sleep_for(std::chrono::milliseconds(hold));
    } else if (link->drop) {  // the server answered: the work is done, the answer is lost
      ++dropped_;
      break;
    } else if (const int ms = link->hold_ms.exchange(0); ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
    if (!send_all(link, to, chunk)) return;
  }
  link->shut();
}

}  // namespace keygate::testing
