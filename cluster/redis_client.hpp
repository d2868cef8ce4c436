// RedisClient: one connection to Redis speaking RESP2, over TCP or TLS (rediss://), for the
// fleet's hot counters (cluster/fleet_counters.hpp). Blocking, and every call is bounded
// by a deadline (rule 8: a Redis that hangs costs at most that). An exchange is pipelined:
// all of its commands leave in one write and their replies are read back in order, so one
// round trip carries any number of keys.
//
// Not thread-safe: one per thread. After any failure (refused, reset, timed out, a reply
// that is not RESP) the connection is closed and the next call connects again: a reply
// half read is never taken for the next command's.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace keygate::cluster {

struct RedisUrl {
  bool tls = false;  // rediss://
  std::string host;
  uint16_t port = 6379;
  std::string user;  // an ACL user (Redis 6+); empty: the default user
  std::string password;
  unsigned db = 0;
  // The URL without its password, for logs and errors.
  std::string redacted() const;
};

// Parses redis://[user[:password]@]host[:port][/db] and the same with rediss:// (an IPv6
// host in brackets; a password alone as redis://:password@host, %-escapes in either). A message
// naming what is wrong otherwise; never the password.
core::Expected<RedisUrl, std::string> parse_redis_url(std::string_view url);

// One reply. Errors (-ERR ...) are replies, not failures: a command can fail alone.
struct RedisReply {
  enum class Type : uint8_t { status, error, integer, bulk, nil, array } type = Type::nil;
  std::string str;  // status, error and bulk
  int64_t integer = 0;
  std::vector<RedisReply> elements;  // array
  bool ok() const noexcept { return type != Type::error; }
};

class RedisClient {
 public:
  struct Options {
    RedisUrl url;
    std::string ca_file;  // rediss://: the CA that signed Redis's certificate; empty: the system's
    std::chrono::milliseconds timeout{200};  // each call, connecting included
  };
  explicit RedisClient(Options options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  using Command = std::vector<std::string>;
  // Sends every command, then reads every reply, in order: one reply per command, or a
  // message (and the connection closed) when the exchange failed as a whole. Connects
  // first when not connected (AUTH and SELECT as the URL says).
  core::Expected<std::vector<RedisReply>, std::string> pipeline(
      const std::vector<Command>& commands);
  // The same without building anything: `encoded` holds `count` commands in RESP
  // (begin_command, add_arg), and each reply's bytes go to `on_reply` in order, valid only
  // during the call. The exchange's way: no allocation per key.
  core::Expected<bool, std::string> pipeline_raw(
      std::string_view encoded, size_t count,
      const std::function<void(size_t, std::string_view)>& on_reply);
  // One command: its reply, which may be an error reply.
  core::Expected<RedisReply, std::string> call(const Command& command);
  // Whether the last call found the connection closed and opened a new one (a Redis that
  // restarted has forgotten loaded scripts).
  bool reconnected() const noexcept { return reconnected_; }
  void close() noexcept;

 private:
  struct Conn;
  Options options_;
  std::unique_ptr<Conn> conn_;
  bool reconnected_ = false;
  core::Expected<bool, std::string> connect(std::chrono::steady_clock::time_point deadline);
};

// Appends `command` to `out` as a RESP array of bulk strings.
void encode_command(const RedisClient::Command& command, std::string& out);
// Parses one reply from the front of `in`: its length, or 0 when `in` holds only part of
// one, or -1 when it is not RESP (or nests deeper than 8 arrays).
long parse_reply(std::string_view in, RedisReply& out);
// The same, measuring the reply without building it.
long reply_length(std::string_view in);
// Writes a command into `out` without building it first: its number of arguments, then
// each argument.
void begin_command(std::string& out, size_t args);
void add_arg(std::string& out, std::string_view arg);
void add_arg(std::string& out, uint64_t value);

}  // namespace keygate::cluster
