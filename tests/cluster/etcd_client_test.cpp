// The pieces of the etcd client that need no etcd: key ranges and the split point that
// makes loading N log N (the messages: etcd_grpc_test.cpp). The calls themselves run against a real
// etcd in tests/integration/cluster_test.cpp.
#include "cluster/etcd_client.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

using namespace keygate::cluster;

TEST(EtcdClient, PrefixEndIsTheFirstKeyPastEveryKeyWithThePrefix) {
  EXPECT_EQ(prefix_end("/keygate/key/"), "/keygate/key0");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_end(std::string("\xff\xff", 2)), std::string(1, '\0'));  // every key
}

// --etcd, `keygate cluster status` and the floor tool read their lists with it.
TEST(EtcdClient, AnEndpointListSplitsAtCommasLeavingOutEmptyItems) {
  EXPECT_EQ(split_endpoints("http://a:1,http://b:2"),
            (std::vector<std::string>{"http://a:1", "http://b:2"}));
  EXPECT_EQ(split_endpoints(",http://a:1,,"), (std::vector<std::string>{"http://a:1"}));
  EXPECT_TRUE(split_endpoints("").empty());
  EXPECT_TRUE(split_endpoints(",,").empty());
}

TEST(EtcdClient, MidpointLiesStrictlyBetweenItsEnds) {
  EXPECT_EQ(midpoint("a", "c"), "b");
  const std::string m = midpoint("/keygate/key/", "/keygate/key0");
  EXPECT_GT(m, "/keygate/key/");
  EXPECT_LT(m, "/keygate/key0");
  EXPECT_EQ(midpoint("a", std::string("a\0", 2)), "");  // nothing lies between
  std::mt19937 rng(7);
  for (int i = 0; i < 10'000; ++i) {
    std::string a(1 + rng() % 12, '\0'), b(1 + rng() % 12, '\0');
    for (char& c : a) c = static_cast<char>(rng());
    for (char& c : b) c = static_cast<char>(rng());
    if (a == b) continue;
    if (b < a) std::swap(a, b);
    const std::string mid = midpoint(a, b);
    if (mid.empty()) continue;
    ASSERT_GT(mid, a);
    ASSERT_LT(mid, b);
  }
}

// A member (or whatever answers on its port) that sends an answer without end: the client
// takes at most its bound of it and gives up at once, instead of buffering until the call's
// time runs out (gigabytes on loopback). The bound is the collector every call uses, the
// gateway's and gRPC's (at kMaxMessage); this drives it through a lease grant.
TEST(EtcdClient, AnAnswerWithoutEndIsCutAtItsBoundNotBuffered) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::atomic<uint64_t> sent{0};
  std::thread member([&] {
    const int c = ::accept(listener, nullptr, nullptr);
    if (c < 0) return;
    char request[4096];
    (void)::recv(c, request, sizeof request, 0);
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[";
    (void)::send(c, head.data(), head.size(), MSG_NOSIGNAL);
    const std::string chunk(64 << 10, ' ');
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until && sent < (uint64_t{4} << 30)) {
      const ssize_t n = ::send(c, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<uint64_t>(n);
    }
    ::close(c);
  });
  EtcdClient client({"http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port))});
  client.set_limits(4'000, 0);
  std::string error;
  const auto began = std::chrono::steady_clock::now();
  EXPECT_EQ(client.lease_grant(10, error), 0);
  const auto took = std::chrono::steady_clock::now() - began;
  member.join();
  ::close(listener);
  EXPECT_FALSE(error.empty());
  EXPECT_LT(took, std::chrono::milliseconds(3'000)) << "it read until the call's time ran out";
  EXPECT_LT(sent.load(), uint64_t{64} << 20) << "the client took " << sent.load() << " bytes";
}
