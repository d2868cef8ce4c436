// Test helper: a TCP proxy on a free loopback port in front of a real server, that can lose
// answers, or cut its client off (cut()). Armed with drop_answer_to("POST /etcdserverpb.KV/Txn"),
// it forwards the next request that starts with that text, waits until the server has begun to
// answer (so the server did the work), then closes the client's connection without passing the
// answer on: the ambiguous failure a client sees when a network or a member dies between
// request and answer. Everything else is passed through byte for byte, streams included.
// HTTP/1.1 requests are matched by their first chunk; HTTP/2 ones (gRPC, one after another
// on a kept connection) as "POST <path>\r\n\r\n<body>" once whole, and their answer begins
// with the server's HEADERS frame on the request's stream.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace keygate::testing {

class TcpProxy {
 public:
  explicit TcpProxy(uint16_t upstream_port, std::string upstream_host = "127.0.0.1");
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;

  uint16_t port() const { return port_; }
  // The next request whose first bytes are `request_start` loses its answer.
  void drop_answer_to(std::string request_start);
  int answers_dropped() const { return dropped_.load(); }
  int connections() const { return accepted_.load(); }  // accepted so far
  // The next request whose first bytes are `request_start` and whose first chunk contains
  // `containing` gets its answer `delay` late: a member that takes its time over one call.
  void hold_answer_to(std::string request_start, std::string containing, int delay_ms);
  // The next request whose first bytes are `request_start` and whose first chunk contains
  // `containing` waits for `fn` to run before it goes on: something done to the server
  // between two of a client's calls (a compaction in the middle of a load).
  void before_request(std::string request_start, std::string containing, std::function<void()> fn);
  // Cut off: every open connection is closed, and new ones are closed as soon as they are
  // accepted, until cut(false). A member unreachable from one client only.
  void cut(bool on);
  // Stalled: connections stay open and new ones are accepted, but nothing passes either
  // way until stall(false). The member hangs for this one client, as a member whose host
  // stalls would for all (SIGSTOP), while the others reach it.
  void stall(bool on) { stalled_ = on; }
  // The same for the connections whose first request starts with `request_start` (open ones
  // and those opened later), until stall_connections_of(..., false): one of a client's
  // connections hangs, say its watch stream, while its other calls go through.
  void stall_connections_of(std::string request_start, bool on);

 private:
  struct Link;
  void accept_loop();
  void pump(std::shared_ptr<Link> link, bool from_client);
  void match(const std::shared_ptr<Link>& link, std::string_view request, uint32_t stream);
  bool client_frames(const std::shared_ptr<Link>& link, std::string_view chunk);
  static bool send_all(const std::shared_ptr<Link>& link, int to, std::string_view bytes);

  uint16_t upstream_;
  std::string upstream_host_;
  uint16_t port_ = 0;
  int listener_ = -1;
  std::atomic<bool> stopping_{false}, cut_{false}, stalled_{false};
  std::atomic<int> dropped_{0}, accepted_{0};
  std::mutex mutex_;
  std::string armed_;                         // empty: nothing to drop
  std::string hold_start_, hold_containing_;  // hold_answer_to(); empty: nothing to hold
  int hold_ms_ = 0;
  std::string before_start_, before_containing_;  // before_request(); empty: nothing to run
  std::function<void()> before_;
  std::string stall_start_;  // stall_connections_of(); empty: none
  std::vector<std::thread> threads_;
  std::vector<std::shared_ptr<Link>> links_;
  std::thread acceptor_;
};

}  // namespace keygate::testing
