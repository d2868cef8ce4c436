// The pieces of the etcd client that need no etcd: key ranges and the split point that
// makes loading N log N (the messages: etcd_grpc_test.cpp). The calls themselves run against a real
// etcd in tests/integration/cluster_test.cpp.
#include "cluster/etcd_client.hpp"

#include <gtest/gtest.h>

#include <random>

using namespace keygate::cluster;

TEST(EtcdClient, PrefixEndIsTheFirstKeyPastEveryKeyWithThePrefix) {
  EXPECT_EQ(prefix_end("/keygate/key/"), "/keygate/key0");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_end(std::string("\xff\xff", 2)), std::string(1, '\0'));  // every key
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
