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

// A key's record is under its value's hash (one etcd key a key, compared absent when
// created). The load reads that form first and the earlier form, under the key's id, after
// it, so that form must sort wholly outside [api_keys(), api_keys_end()): both
// EtcdCommitter::load_all() and an earlier release's in-order load depend on it.
TEST(Layout, AKeysRecordIsUnderItsHashAndTheEarlierFormSortsAfterIt) {
  const Layout layout("/kg");
  const core::KeyHash h = core::hash_key("sk_live_example");
  const std::string k = layout.api_key(h);
  ASSERT_EQ(k.size(), std::string("/kg/key/#").size() + 32);
  EXPECT_TRUE(k.starts_with("/kg/key/#"));
  EXPECT_EQ(0, std::memcmp(k.data() + 9, h.data(), 32));
  EXPECT_GE(k, layout.api_keys());
  EXPECT_LT(k, layout.api_keys_end());
  EXPECT_TRUE(k.starts_with(layout.kind("key")));
  core::KeyHash top;
  top.fill(0xff);
  EXPECT_LT(layout.api_key(top), layout.api_keys_end());
  const std::string earlier = layout.earlier_api_key(core::Id{});
  EXPECT_TRUE(earlier.starts_with("/kg/key/key_")) << earlier;
  EXPECT_GE(earlier, layout.api_keys_end());
}

}  // namespace keygate::cluster
