// The keys keygate writes in etcd (cluster/README.md, "Data layout in etcd").
#include "cluster/layout.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "core/key_format.hpp"

namespace keygate::cluster {

// A key value's hash index key holds the 32 bytes of the hash, not 64 hex digits: it is in
// etcd's index and database once per key (perf/RESULTS.md, "Issue 36": bytes per key).
TEST(Layout, AHashIndexKeyIsThePrefixAndTheHashsBytes) {
  const Layout layout("/kg");
  const core::KeyHash h = core::hash_key("sk_live_example");
  const std::string k = layout.hash(h);
  ASSERT_EQ(k.size(), std::string("/kg/hash/").size() + 32);
  EXPECT_TRUE(k.starts_with("/kg/hash/"));
  EXPECT_EQ(0, std::memcmp(k.data() + 9, h.data(), 32));
  EXPECT_EQ(layout.kind("hash"), "/kg/hash/");
}

}  // namespace keygate::cluster
