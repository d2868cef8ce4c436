// etcd's messages on the wire, checked byte for byte against what etcd 3.4 itself sends and
// accepts (the answer below was captured from Debian's etcd-server with curl, HTTP/2 and a
// RangeRequest for "x"); the calls themselves run against a real etcd in
// tests/integration/cluster_test.cpp.
#include "cluster/etcd_grpc.hpp"

#include <gtest/gtest.h>

using namespace keygate::cluster;

namespace {
std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}
}  // namespace

TEST(EtcdGrpc, ARangeRequestCarriesOnlyTheFieldsThatAreSet) {
  EXPECT_EQ(grpc::encode_range("x", "", 0, 0, false), bytes({0x0a, 0x01, 'x'}));
  // key, range_end, limit 2000, revision 300 (varints), count_only
  EXPECT_EQ(grpc::encode_range("a", "b", 300, 2000, true),
            bytes({0x0a, 1, 'a', 0x12, 1, 'b', 0x18, 0xd0, 0x0f, 0x20, 0xac, 0x02, 0x48, 1}));
}

TEST(EtcdGrpc, ACompareOnAnAbsentKeyStillSaysItsRevisionZero) {
  // A oneof member is on the wire even at its default: without it etcd would compare
  // nothing. Compare{target CREATE, key "k", create_revision 0}; failure: a keys-only range.
  const std::string txn = grpc::encode_txn({{Compare::Target::create, "k", 0}}, {});
  EXPECT_EQ(txn, bytes({0x0a, 7, 0x10, 1, 0x1a, 1, 'k', 0x28, 0,  //
                        0x1a, 7, 0x0a, 5, 0x0a, 1, 'k', 0x40, 1}));
}

TEST(EtcdGrpc, APutAndADeleteRangeAreRequestOpsOfTheirKind) {
  Op put{Op::Kind::put, "k", "v", 7, {}};
  Op del{Op::Kind::del, "a", {}, 0, "b"};
  EXPECT_EQ(grpc::encode_txn({}, {put, del}),
            bytes({0x12, 10, 0x12, 8, 0x0a, 1, 'k', 0x12, 1, 'v', 0x18, 7,  //
                   0x12, 8,  0x1a, 6, 0x0a, 1, 'a', 0x12, 1, 'b'}));
}

TEST(EtcdGrpc, ARangeResponseFromEtcdDecodes) {
  const std::string wire =
      bytes({0x00, 0x00, 0x00, 0x00, 0x2a, 0x0a, 0x18, 0x08, 0xbf, 0x9c, 0xc2, 0xc0,
             0xfa, 0xdc, 0xcd, 0x93, 0x2f, 0x10, 0xb2, 0xe8, 0x9e, 0xee, 0xd9, 0xd1,
             0xae, 0xf1, 0x24, 0x18, 0x02, 0x20, 0x02, 0x12, 0x0c, 0x0a, 0x01, 0x78,
             0x10, 0x02, 0x18, 0x02, 0x20, 0x01, 0x2a, 0x01, 0x79, 0x20, 0x01});
  std::string_view message;
  ASSERT_TRUE(grpc::unframe(wire, message));
  grpc::Header h;
  RangeResult r;
  int64_t count = 0;
  ASSERT_TRUE(grpc::decode_range(message, h, r, count));
  EXPECT_EQ(h.cluster_id, 3397744812459331135u);  // what the JSON gateway said as a string
  EXPECT_EQ(h.revision, 2);
  ASSERT_EQ(r.kvs.size(), 1u);
  EXPECT_EQ(r.kvs[0].key, "x");
  EXPECT_EQ(r.kvs[0].value, "y");
  EXPECT_EQ(r.kvs[0].create_revision, 2);
  EXPECT_EQ(r.kvs[0].mod_revision, 2);
  EXPECT_EQ(count, 1);
  EXPECT_FALSE(r.more);
}

TEST(EtcdGrpc, ATruncatedOrMisframedAnswerIsRefused) {
  std::string_view message;
  EXPECT_FALSE(grpc::unframe(bytes({0, 0, 0, 0, 3, 0x0a}), message));  // shorter than said
  EXPECT_FALSE(grpc::unframe(bytes({1, 0, 0, 0, 1, 0x0a}), message));  // compressed
  EXPECT_FALSE(grpc::unframe(bytes({0, 0, 0}), message));              // no prefix
  grpc::Header h;
  RangeResult r;
  int64_t count = 0;
  EXPECT_FALSE(grpc::decode_range(bytes({0x12, 0x0c, 0x0a, 0x01}), h, r, count));  // cut short
  EXPECT_FALSE(grpc::decode_range(bytes({0x18, 0xff}), h, r, count));  // a varint that never ends
}

TEST(EtcdGrpc, AFailedTransactionSaysWhichComparesFailed) {
  // Two compares: the first key was changed at revision 9 (compared 5), the second is as
  // compared (absent). The failure branch's ranges: the first finds the key, the second none.
  const std::vector<Compare> compares{{Compare::Target::mod, "a", 5},
                                      {Compare::Target::create, "b", 0}};
  const std::string kv = bytes({0x0a, 1, 'a', 0x10, 3, 0x18, 9});
  const std::string range1 = bytes({0x12, static_cast<int>(kv.size())}) + kv;
  const std::string op1 = bytes({0x0a, static_cast<int>(range1.size())}) + range1;
  const std::string op2 = bytes({0x0a, 0});
  const std::string txn = bytes({0x0a, 2, 0x18, 11}) +  // header: revision 11; not succeeded
                          bytes({0x1a, static_cast<int>(op1.size())}) + op1 +
                          bytes({0x1a, static_cast<int>(op2.size())}) + op2;
  grpc::Header h;
  TxnResult out;
  ASSERT_TRUE(grpc::decode_txn(txn, compares, h, out));
  EXPECT_FALSE(out.succeeded);
  EXPECT_EQ(out.revision, 11);
  EXPECT_EQ(out.failed, (std::vector<bool>{true, false}));
}

TEST(EtcdGrpc, AWatchStreamSplitAnywhereGivesItsMessagesWhole) {
  EXPECT_EQ(grpc::encode_watch_create("a", "b", 5),
            bytes({0x0a, 8, 0x0a, 1, 'a', 0x12, 1, 'b', 0x18, 5}));
  // Two WatchResponses: "created", then a PUT of a=v and a DELETE of b at revision 7.
  const std::string created = grpc::frame(bytes({0x18, 1}));
  const std::string put = bytes({0x12, 6, 0x0a, 1, 'a', 0x2a, 1, 'v'});
  const std::string del = bytes({0x08, 1, 0x12, 3, 0x0a, 1, 'b'});
  const std::string events =
      grpc::frame(bytes({0x0a, 2, 0x18, 7, 0x5a}) + bytes({static_cast<int>(put.size())}) + put +
                  bytes({0x5a, static_cast<int>(del.size())}) + del);
  const std::string stream = created + events;
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    std::string buffer;
    std::vector<WatchBatch> got;
    for (std::string_view part :
         {std::string_view(stream).substr(0, cut), std::string_view(stream).substr(cut)}) {
      buffer.append(part);
      size_t consumed = 0;
      std::string_view message;
      while (grpc::next_message(buffer, consumed, message) == grpc::Next::message) {
        WatchBatch b;
        bool is_created = false;
        ASSERT_TRUE(grpc::decode_watch(message, b, is_created));
        if (!is_created) got.push_back(b);
      }
      buffer.erase(0, consumed);
    }
    ASSERT_EQ(got.size(), 1u) << cut;
    EXPECT_EQ(got[0].revision, 7);
    ASSERT_EQ(got[0].events.size(), 2u);
    EXPECT_FALSE(got[0].events[0].deleted);
    EXPECT_EQ(got[0].events[0].kv.key, "a");
    EXPECT_EQ(got[0].events[0].kv.value, "v");
    EXPECT_TRUE(got[0].events[1].deleted);
    EXPECT_EQ(got[0].events[1].kv.key, "b");
  }
}

// A member, or a network, that announces a message of 4 GiB or sends a compressed one is
// refused at once, not buffered while the bytes keep coming.
TEST(EtcdGrpc, AStreamRefusesAMessageLongerThanTheBoundOrCompressed) {
  size_t consumed = 0;
  std::string_view message;
  EXPECT_EQ(grpc::next_message(bytes({0, 0xff, 0xff, 0xff, 0xff}), consumed, message),
            grpc::Next::bad);
  const uint32_t over = static_cast<uint32_t>(grpc::kMaxMessage + 1);
  EXPECT_EQ(grpc::next_message(bytes({0, static_cast<int>(over >> 24), static_cast<int>(over >> 16),
                                      static_cast<int>(over >> 8), static_cast<int>(over)}),
                               consumed, message),
            grpc::Next::bad);
  EXPECT_EQ(grpc::next_message(bytes({1, 0, 0, 0, 1, 0x08}), consumed, message), grpc::Next::bad);
  // At the bound, a message is only not whole yet.
  const uint32_t at = static_cast<uint32_t>(grpc::kMaxMessage);
  EXPECT_EQ(grpc::next_message(bytes({0, static_cast<int>(at >> 24), static_cast<int>(at >> 16),
                                      static_cast<int>(at >> 8), static_cast<int>(at)}),
                               consumed, message),
            grpc::Next::more);
  EXPECT_EQ(grpc::next_message(bytes({0, 0, 0}), consumed, message), grpc::Next::more);
  EXPECT_EQ(consumed, 0u);
}
