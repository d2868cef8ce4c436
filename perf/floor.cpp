// keygate_floor: the floor of keygate's I/O model, for perf/bench_vs_nginx.sh (FLOOR=...).
//
// The bare liburing loop docs/architecture.md measured before keygate was written: one thread, one
// ring set up as the Reactor's (net::Ring, with ReactorOptions' defaults), multishot
// accept, multishot receive into its provided-buffer ring, every answer of a turn sent in
// the one submit_and_wait that ends it. It answers each request with a constant and does nothing
// else: no parsing beyond finding where a request ends, no key, no lookup. Run beside keygate and
// nginx, it shows how much of keygate's distance to nginx belongs to the I/O model and how much to
// keygate's own work. `--model epoll` runs the same loop on epoll instead (readiness, then
// recv and send as system calls: nginx's model without nginx's work), to weigh the two
// models against each other.
//
//   keygate_floor --listen 127.0.0.1:PORT [--answer-bytes N] [--model uring|epoll]
//
// N (default 150, about nginx's `return 200`) pads the answer with one header to exactly N
// bytes, so the floor can be measured with nginx's answer length or with keygate's.
// Requests must not carry a body (wrk's GETs); it is a benchmark tool, not a server.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "net/reactor.hpp"
#include "net/ring.hpp"

namespace {

using keygate::net::ReactorOptions;
using keygate::net::Ring;

constexpr uint64_t kAccept = 0, kRecv = 1, kSend = 2;  // low bits of user_data

[[noreturn]] void die(const char* what, int err) {
  std::fprintf(stderr, "keygate_floor: %s: %s\n", what, std::strerror(err));
  std::exit(1);
}

// How many requests end ("\r\n\r\n") in `bytes`; a request's end may be split anywhere
// between two reads, so `matched` carries how much of it the bytes before ended with.
unsigned count_requests(unsigned& matched, std::string_view bytes) {
  static constexpr char kEnd[] = "\r\n\r\n";
  unsigned n = 0;
  for (char ch : bytes) {
    matched = ch == kEnd[matched] ? matched + 1 : (ch == '\r' ? 1 : 0);
    if (matched == 4) {
      ++n;
      matched = 0;
    }
  }
  return n;
}

struct Conn {
  int fd;
  unsigned matched = 0;  // how much of "\r\n\r\n" the bytes received so far end with
  std::string inflight;  // the answers handed to the kernel, until their send completes
  size_t sent = 0;
  std::string next;  // answers produced while a send is in flight
  unsigned ops = 0;  // receives and sends the kernel still holds
  bool closed = false;
};

class UringFloor {
 public:
  UringFloor(int listen_fd, std::string answer, const ReactorOptions& defaults)
      : listen_fd_(listen_fd),
        answer_(std::move(answer)),
        ring_(defaults.ring_entries, defaults.buffer_count, defaults.buffer_size) {}

  [[noreturn]] void run() {
    arm_accept();
    for (;;) {
      if (int rc = io_uring_submit_and_wait(ring_.get(), 1); rc < 0 && rc != -EINTR)
        die("io_uring_submit_and_wait", -rc);
      unsigned head, seen = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(ring_.get(), head, cqe) {
        on_completion(*cqe);
        ++seen;
      }
      io_uring_cq_advance(ring_.get(), seen);
    }
  }

 private:
  void arm_accept() {
    io_uring_sqe* s = ring_.sqe();
    io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, kAccept);
  }

  void arm_recv(Conn& c) {
    io_uring_sqe* s = ring_.sqe();
    io_uring_prep_recv_multishot(s, c.fd, nullptr, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = Ring::kBufferGroup;
    io_uring_sqe_set_data64(s, reinterpret_cast<uintptr_t>(&c) | kRecv);
    ++c.ops;
  }

  void send(Conn& c) {
    io_uring_sqe* s = ring_.sqe();
    io_uring_prep_send(s, c.fd, c.inflight.data() + c.sent, c.inflight.size() - c.sent,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, reinterpret_cast<uintptr_t>(&c) | kSend);
    ++c.ops;
  }

  void on_completion(const io_uring_cqe& cqe) {
    const uint64_t data = io_uring_cqe_get_data64(&cqe);
    if (data == kAccept) {
      if (cqe.res >= 0) {
        int one = 1;
        ::setsockopt(cqe.res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        arm_recv(*new Conn{cqe.res});
      }
      if (!(cqe.flags & IORING_CQE_F_MORE)) arm_accept();
      return;
    }
    Conn& c = *reinterpret_cast<Conn*>(data & ~uint64_t{3});
    --c.ops;
    if ((data & 3) == kRecv) {
      if (cqe.res > 0) {
        const auto bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        answer(c, std::string_view(ring_.buffer(bid), static_cast<size_t>(cqe.res)));
        ring_.recycle(bid);
      } else if (cqe.res != -ENOBUFS) {
        c.closed = true;
      }
      if (cqe.flags & IORING_CQE_F_MORE)
        ++c.ops;  // still armed
      else if (!c.closed)
        arm_recv(c);
    } else if (cqe.res < 0 || c.closed) {
      c.closed = true;
    } else if ((c.sent += static_cast<size_t>(cqe.res)) < c.inflight.size()) {
      send(c);
    } else {
      c.inflight.swap(c.next);
      c.next.clear();
      c.sent = 0;
      if (!c.inflight.empty()) send(c);
    }
    if (c.closed && c.ops == 0) {
      ::close(c.fd);
      delete &c;
    } else if (c.closed) {
      ::shutdown(c.fd, SHUT_RDWR);  // ends the armed receive; the last completion frees c
    }
  }

  void answer(Conn& c, std::string_view bytes) {
    const bool idle = c.inflight.empty();
    std::string& out = idle ? c.inflight : c.next;
    for (unsigned n = count_requests(c.matched, bytes); n > 0; --n) out += answer_;
    if (idle && !c.inflight.empty()) send(c);
  }

  int listen_fd_;
  std::string answer_;
  Ring ring_;
};

// The same floor on epoll, level-triggered: one recv per readiness, the answers sent at
// once, EPOLLOUT only while a send is short.
class EpollFloor {
 public:
  EpollFloor(int listen_fd, std::string answer)
      : listen_fd_(listen_fd), answer_(std::move(answer)) {
    if ((ep_ = ::epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1", errno);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the listener
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &ev) < 0) die("epoll_ctl", errno);
  }

  [[noreturn]] void run() {
    epoll_event events[512];
    for (;;) {
      const int n = ::epoll_wait(ep_, events, 512, -1);
      if (n < 0 && errno != EINTR) die("epoll_wait", errno);
      for (int i = 0; i < n; ++i) {
        if (!events[i].data.ptr)
          accept_all();
        else
          on_ready(*static_cast<EConn*>(events[i].data.ptr), events[i].events);
      }
    }
  }

 private:
  struct EConn {
    int fd;
    unsigned matched = 0;
    std::string out;
    size_t sent = 0;
    bool want_out = false;
  };

  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = new EConn{fd};
      if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl", errno);
    }
  }

  void on_ready(EConn& c, uint32_t events) {
    if (events & EPOLLIN) {
      const ssize_t n = ::recv(c.fd, buf_, sizeof buf_, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return close(c);
      if (n > 0) {
        for (unsigned k = count_requests(c.matched, {buf_, static_cast<size_t>(n)}); k > 0; --k)
          c.out += answer_;
      }
    } else if (events & (EPOLLERR | EPOLLHUP)) {
      return close(c);
    }
    while (c.sent < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) return want_out(c, true);
        return close(c);
      }
      c.sent += static_cast<size_t>(n);
    }
    c.out.clear();
    c.sent = 0;
    want_out(c, false);
  }

  void want_out(EConn& c, bool want) {
    if (c.want_out == want) return;
    c.want_out = want;
    epoll_event ev{};
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
    ev.data.ptr = &c;
    if (::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) < 0) die("epoll_ctl", errno);
  }

  void close(EConn& c) {
    ::close(c.fd);  // also leaves the epoll set
    delete &c;
  }

  int listen_fd_;
  std::string answer_;
  int ep_ = -1;
  char buf_[65536];
};

// "HTTP/1.1 200 OK", Content-Length: 0 and one padding header, exactly `bytes` long.
std::string make_answer(size_t bytes) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ";
  const std::string tail = "\r\n\r\n";
  if (bytes < head.size() + tail.size()) bytes = head.size() + tail.size();
  return head + std::string(bytes - head.size() - tail.size(), 'x') + tail;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:18183";
  size_t bytes = 150;
  std::string_view model = "uring";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--listen")
      listen = argv[i + 1];
    else if (flag == "--answer-bytes")
      bytes = std::strtoul(argv[i + 1], nullptr, 10);
    else if (flag == "--model")
      model = argv[i + 1];
    else
      model = "";
  }
  if (argc % 2 == 0 || (model != "uring" && model != "epoll")) {
    std::fprintf(
        stderr,
        "usage: keygate_floor --listen HOST:PORT [--answer-bytes N] [--model uring|epoll]\n");
    return 2;
  }
  const size_t colon = listen.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(listen.c_str() + colon + 1)));
  if (colon == std::string::npos ||
      inet_pton(AF_INET, listen.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "keygate_floor: --listen wants IPv4:PORT, got %s\n", listen.c_str());
    return 2;
  }
  const int fd =
      ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (model == "epoll" ? SOCK_NONBLOCK : 0), 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("bind", errno);
  if (::listen(fd, 4096) < 0) die("listen", errno);
  std::printf("keygate_floor (%s) listening on %s, %zu-byte answers\n", std::string(model).c_str(),
              listen.c_str(), make_answer(bytes).size());
  std::fflush(stdout);
  try {
    if (model == "epoll") EpollFloor(fd, make_answer(bytes)).run();
    UringFloor(fd, make_answer(bytes), ReactorOptions{}).run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "keygate_floor: %s\n", e.what());
    return 1;
  }
}
