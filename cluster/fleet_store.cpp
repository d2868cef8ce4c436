#include "cluster/fleet_store.hpp"

namespace keygate::cluster {

namespace {

// Puts ARGV[1] under KEYS[1] for ARGV[2] ms unless the key holds something; answers what
// it holds, or nil when it put the value. (SET NX GET would do from Redis 7.0 only.)
constexpr std::string_view kClaimScript = R"lua(
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
)lua";

}  // namespace

FleetStore::FleetStore(RedisClient::Options redis, std::string prefix)
    : redis_(std::move(redis)), prefix_(std::move(prefix)) {}

FleetStore::~FleetStore() {
  stop();
}

void FleetStore::start() {
  thread_ = std::thread([this] { run(); });
}

void FleetStore::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (core::SharedCall* c : queue_) c->done(c);  // ok stays false
  queue_.clear();
}

void FleetStore::submit(core::SharedCall* call) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(call);
      wake_.notify_one();
      return;
    }
  }
  call->done(call);  // stopping: failed, at once
}

void FleetStore::run() {
  std::vector<core::SharedCall*> calls;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      calls.swap(queue_);
    }
    // After a failure, Redis is left alone for a second: the calls meanwhile fail at once
    // (their callers use their node's memory) instead of each waiting out the timeout
    // behind a Redis that hangs.
    const auto now = std::chrono::steady_clock::now();
    if (now >= retry_at_ && !exchange(calls)) retry_at_ = now + std::chrono::seconds(1);
    for (core::SharedCall* c : calls) c->done(c);
    calls.clear();
  }
}

bool FleetStore::exchange(std::vector<core::SharedCall*>& calls) {
  std::string out;
  for (const core::SharedCall* c : calls) {
    const std::string name = prefix_ + "/" + c->name;
    switch (c->op) {
      case core::SharedCall::Op::claim:
        begin_command(out, 6);
        add_arg(out, "EVAL");
        add_arg(out, kClaimScript);
        add_arg(out, "1");
        add_arg(out, name);
        add_arg(out, c->value);
        add_arg(out, c->ttl_ms);
        break;
      case core::SharedCall::Op::put:
        begin_command(out, 5);
        add_arg(out, "SET");
        add_arg(out, name);
        add_arg(out, c->value);
        add_arg(out, "PX");
        add_arg(out, c->ttl_ms);
        break;
      case core::SharedCall::Op::remove:
        begin_command(out, 2);
        add_arg(out, "DEL");
        add_arg(out, name);
        break;
    }
  }
  RedisReply reply;
  const auto r = redis_.pipeline_raw(out, calls.size(), [&](size_t i, std::string_view raw) {
    core::SharedCall* c = calls[i];
    if (parse_reply(raw, reply) <= 0 || !reply.ok()) return;
    c->ok = true;
    if (c->op == core::SharedCall::Op::claim && reply.type == RedisReply::Type::bulk) {
      c->existed = true;
      c->value = std::move(reply.str);
    }
  });
  if (!r)
    for (core::SharedCall* c : calls) c->ok = false;
  return r.has_value();
}

}  // namespace keygate::cluster
