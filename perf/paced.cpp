// keygate_paced: a fixed-rate (open-loop) load generator for GET /v1/auth, for measuring
// latency without coordinated omission.
//
//   keygate_paced --port P --rate R --seconds S --keys FILE [--connections C]
//
// A closed-loop generator (wrk) sends the next request when the last answer arrives: when
// the server stalls for 50 ms, it simply sends nothing for 50 ms, and the stall appears as
// one slow request among thousands. Here request i of the run is *due* at start + i / R,
// whatever happened before, and its latency is counted from that due time, not from when a
// connection was free to send it: a stall of 50 ms delays every request due during it, and
// each is counted with its full wait (as wrk2 does). Requests go round-robin over C
// keep-alive connections (HTTP/1.1, no pipelining); a request whose connection is still
// busy waits for it, and that wait is in its latency. One thread, epoll, asleep until the
// next request is due; each request carries the next key of FILE (one per line). Prints
// the count, the achieved rate, errors (any answer but 200) and p50 / p90 / p99 / p99.9 /
// max in microseconds, on one line:
//
//   sent=N rate=R errors=E p50=.. p90=.. p99=.. p999=.. max=..
//
// The generator checks itself: if it was more than a millisecond late sending a due
// request on an idle connection (its own core busy), it says so on stderr, since part of
// the figures is then its own.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
  int fd = -1;
  std::deque<Clock::time_point> due;  // of the requests waiting on this connection
  bool in_flight = false;
  std::string in;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "keygate_paced: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

int connect_to(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// The length of the first complete answer in `in` (headers and Content-Length body), or 0.
size_t answer_length(const std::string& in, int& status) {
  const size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  status = std::atoi(in.c_str() + 9);  // "HTTP/1.1 200"
  size_t body = 0;
  for (size_t at = in.find('\n'); at < end; at = in.find('\n', at + 1)) {
    if (strncasecmp(in.c_str() + at + 1, "content-length:", 15) == 0)
      body = std::strtoul(in.c_str() + at + 16, nullptr, 10);
  }
  return in.size() >= end + 4 + body ? end + 4 + body : 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Woken when due, not up to 50 us later (a thread's default timer slack), which would be
  // in every latency.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  uint16_t port = 0;
  double rate = 0, seconds = 0;
  int connections = 16;
  std::string keys_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--port")
      port = static_cast<uint16_t>(std::atoi(argv[i + 1]));
    else if (flag == "--rate")
      rate = std::atof(argv[i + 1]);
    else if (flag == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (flag == "--connections")
      connections = std::atoi(argv[i + 1]);
    else if (flag == "--keys")
      keys_path = argv[i + 1];
  }
  if (!port || rate <= 0 || seconds <= 0 || connections <= 0 || keys_path.empty()) {
    std::fprintf(stderr,
                 "usage: keygate_paced --port P --rate R --seconds S --keys FILE "
                 "[--connections C]\n");
    return 2;
  }
  std::vector<std::string> requests;  // built before the clock starts
  {
    std::ifstream in(keys_path);
    for (std::string key; std::getline(in, key) && requests.size() < 200'000;)
      requests.push_back("GET /v1/auth HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer " + key +
                         "\r\n\r\n");
    if (requests.empty()) die("no keys in the file");
  }

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> conns(static_cast<size_t>(connections));
  for (size_t i = 0; i < conns.size(); ++i) {
    conns[i].fd = connect_to(port);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0) die("epoll_ctl");
  }

  const auto total = static_cast<uint64_t>(rate * seconds);
  const auto interval = std::chrono::duration<double>(1.0 / rate);
  std::vector<uint32_t> latencies_us;
  latencies_us.reserve(total);
  uint64_t next = 0, errors = 0, sent_requests = 0;
  size_t key = 0;
  Clock::duration own_lag{};  // the generator's own lateness in sending on an idle connection
  const Clock::time_point start = Clock::now();
  auto due_of = [&](uint64_t i) {
    return start + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(i));
  };
  auto send_next = [&](Conn& c) {
    const std::string& r = requests[key++ % requests.size()];
    if (::send(c.fd, r.data(), r.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(r.size()))
      die("send");
    c.in_flight = true;
    ++sent_requests;
  };
  while (latencies_us.size() + errors < total) {
    const Clock::time_point now = Clock::now();
    // Every request now due joins its connection's queue; an idle connection sends at once.
    while (next < total && due_of(next) <= now) {
      Conn& c = conns[next % conns.size()];
      c.due.push_back(due_of(next));
      if (!c.in_flight) {
        own_lag = std::max(own_lag, now - due_of(next));
        send_next(c);
      }
      ++next;
    }
    // Sleeps until the next request is due, to the microsecond (epoll_pwait2), rather than
    // polling: a generator that never sleeps uses up its time slices, and on a core it
    // shares (the writers, keygate's journal) the scheduler then makes it wait whole
    // slices, milliseconds, which its figures would count as keygate's latency. One that
    // sleeps is woken promptly when it is due.
    int64_t wait_ns = 1'000'000'000;
    if (next < total)
      wait_ns = std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::nanoseconds>(due_of(next) - Clock::now())
                 .count());
    const timespec timeout{static_cast<time_t>(wait_ns / 1'000'000'000),
                           static_cast<long>(wait_ns % 1'000'000'000)};
    epoll_event events[64];
    const int n = ::epoll_pwait2(ep, events, 64, &timeout, nullptr);
    if (n < 0 && errno != EINTR) die("epoll_pwait2");
    for (int e = 0; e < n; ++e) {
      Conn& c = conns[events[e].data.u64];
      char buffer[16384];
      const ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (got <= 0) die("the server closed a connection");
      c.in.append(buffer, static_cast<size_t>(got));
      int status = 0;
      while (size_t len = answer_length(c.in, status)) {
        c.in.erase(0, len);
        const auto took = Clock::now() - c.due.front();
        c.due.pop_front();
        c.in_flight = false;
        if (status == 200)
          latencies_us.push_back(static_cast<uint32_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
        else
          ++errors;
        if (!c.due.empty()) send_next(c);
      }
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies_us.begin(), latencies_us.end());
  auto at = [&](double q) {
    if (latencies_us.empty()) return 0u;
    return latencies_us[std::min(
        latencies_us.size() - 1,
        static_cast<size_t>(q * static_cast<double>(latencies_us.size())))];
  };
  std::printf("sent=%llu rate=%.0f errors=%llu p50=%u p90=%u p99=%u p999=%u max=%u\n",
              static_cast<unsigned long long>(sent_requests),
              static_cast<double>(sent_requests) / elapsed, static_cast<unsigned long long>(errors),
              at(0.50), at(0.90), at(0.99), at(0.999),
              latencies_us.empty() ? 0u : latencies_us.back());
  const auto lag_us = std::chrono::duration_cast<std::chrono::microseconds>(own_lag).count();
  if (lag_us > 1000)
    std::fprintf(stderr,
                 "keygate_paced: the generator itself was up to %lld us late sending on an idle "
                 "connection: part of the latencies is its own\n",
                 static_cast<long long>(lag_us));
  return 0;
}
