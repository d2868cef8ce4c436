// The Redis client's URL and reply parsing; talking to a real Redis is in
// integration/fleet_test.cpp.
#include "cluster/redis_client.hpp"

#include <gtest/gtest.h>

namespace keygate::cluster {
namespace {

TEST(RedisUrl, ParsesEveryPartAndKeepsThePasswordOutOfItsName) {
  auto u = parse_redis_url("redis://127.0.0.1");
  ASSERT_TRUE(u) << u.error();
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 6379);
  u = parse_redis_url("rediss://app:s%40cret@redis.internal:6380/3");
  ASSERT_TRUE(u) << u.error();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->user, "app");
  EXPECT_EQ(u->password, "s@cret");
  EXPECT_EQ(u->host, "redis.internal");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 3u);
  EXPECT_EQ(u->redacted(), "rediss://app:***@redis.internal:6380/3");
  u = parse_redis_url("redis://:only-password@[::1]:7000");
  ASSERT_TRUE(u) << u.error();
  EXPECT_EQ(u->user, "");
  EXPECT_EQ(u->password, "only-password");
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 7000);
  EXPECT_EQ(u->redacted(), "redis://:***@[::1]:7000");
  u = parse_redis_url("redis://app@h");  // a URL's user info: a lone word is the user
  ASSERT_TRUE(u);
  EXPECT_EQ(u->user, "app");
  EXPECT_EQ(u->password, "");
  EXPECT_EQ(u->redacted(), "redis://app@h:6379");
}

TEST(RedisUrl, RefusesWhatItCannotUseWithAReasonAndNoPassword) {
  const std::pair<const char*, const char*> bad[] = {
      {"http://h", "starts with redis://"},
      {"redis://", "names no host"},
      {"redis://h:0", "port"},
      {"redis://h:70000", "port"},
      {"redis://h:", "port"},
      {"redis://h:12x", "port"},
      {"redis://h/16", "database"},
      {"redis://h/x", "database"},
      {"redis://[::1", "IPv6"},
      {"redis://u:p%4@h", "%-escape"},
      {"redis://h ost", "white space"},
  };
  for (const auto& [url, why] : bad) {
    const auto u = parse_redis_url(url);
    ASSERT_FALSE(u) << url;
    EXPECT_NE(u.error().find(why), std::string::npos) << url << ": " << u.error();
  }
  const auto u = parse_redis_url("redis://u:hunter2@h:99999");
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().find("hunter2"), std::string::npos) << u.error();
}

TEST(RedisReply, ParsesEachTypeAndWaitsForTheRest) {
  RedisReply r;
  EXPECT_EQ(parse_reply("+OK\r\n", r), 5);
  EXPECT_EQ(r.type, RedisReply::Type::status);
  EXPECT_EQ(parse_reply("-NOSCRIPT No matching script\r\n", r), 30);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.str, "NOSCRIPT No matching script");
  EXPECT_EQ(parse_reply(":-42\r\n", r), 6);
  EXPECT_EQ(r.integer, -42);
  EXPECT_EQ(parse_reply("$3\r\na\r\n\r\n", r), 9);  // bulk strings may hold CRLF
  EXPECT_EQ(r.str, "a\r\n");
  EXPECT_EQ(parse_reply("$-1\r\n", r), 5);
  EXPECT_EQ(r.type, RedisReply::Type::nil);
  const std::string arr = "*3\r\n$4\r\nkey1\r\n$2\r\n17\r\n*1\r\n:1\r\n";
  EXPECT_EQ(parse_reply(arr, r), static_cast<long>(arr.size()));
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[1].str, "17");
  EXPECT_EQ(r.elements[2].elements[0].integer, 1);
  // Every prefix of a whole reply is "not yet", never a wrong reply.
  for (size_t n = 0; n < arr.size(); ++n) EXPECT_EQ(parse_reply(arr.substr(0, n), r), 0) << n;
  // Not RESP, or too big to be anything keygate asked for.
  EXPECT_EQ(parse_reply("HTTP/1.1 200 OK\r\n", r), -1);
  EXPECT_EQ(parse_reply("$5\r\nabcdeXY", r), -1);
  EXPECT_EQ(parse_reply("$999999999999\r\n", r), -1);
  EXPECT_EQ(parse_reply("*99999999\r\n", r), -1);
  EXPECT_EQ(parse_reply(":12a\r\n", r), -1);
  EXPECT_EQ(parse_reply(std::string(20, '*') + "1\r\n", r), -1);
  std::string deep;
  for (int i = 0; i < 20; ++i) deep += "*1\r\n";
  EXPECT_EQ(parse_reply(deep + ":1\r\n", r), -1);
}

TEST(RedisReply, CommandsAreEncodedAsArraysOfBulkStrings) {
  std::string out;
  encode_command({"SET", "k", std::string("a\r\nb", 4)}, out);
  EXPECT_EQ(out, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n");
}

}  // namespace
}  // namespace keygate::cluster
