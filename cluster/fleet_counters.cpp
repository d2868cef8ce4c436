#include "cluster/fleet_counters.hpp"

#include <algorithm>
#include <charconv>
#include <cinttypes>

#include "core/clock.hpp"
#include "core/committer.hpp"
#include "core/log.hpp"

namespace keygate::cluster {

using core::Level;
using core::log;

namespace {

// KEYS[1]: a key's fleet-wide theoretical arrival time (µs on Redis's clock); ARGV[1] the
// hits to add, ARGV[2] the interval between two tokens (µs, a fraction allowed), ARGV[3]
// how far ahead of now the sending node's own bucket is (µs): the fleet's is never behind
// it, so a Redis that restarted empty starts from what the nodes know, not a full bucket.
// Answers how far ahead of Redis's now the arrival time is, in µs: 0 for a full bucket. The
// key expires as its bucket fills, so Redis forgets every key no one uses. Microseconds
// since 1970 (1.8e15) stay exact in Lua's doubles, and '%.0f' writes them without an
// exponent. TIME in a script is safe from Redis 5 on (scripts replicate their effects).
constexpr std::string_view kTakeScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local hits = tonumber(ARGV[1])
local floor = now + tonumber(ARGV[3])
local new = tat + hits * tonumber(ARGV[2])
if new < floor then new = floor end
if new > tat then
  redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.floor((new - now) / 1000) + 1)
end
return new - now
)lua";

constexpr size_t kUsesPage = 10'000;  // last uses read per exchange at most
constexpr size_t kMaxPushedKeys = 1'000'000;
// Keys an exchange sends at most (a few ms of Redis's time), and keys waiting at most: past
// that, hits are left out of the fleet's count (and counted), never held without bound.
constexpr size_t kMaxKeysPerExchange = 10'000;
constexpr size_t kMaxPendingKeys = 1'000'000;

}  // namespace

FleetCounters::FleetCounters(Options options, const core::Index& index,
                             const core::RateDefaults& limits, core::HitLog& hits)
    : options_(std::move(options)),
      index_(index),
      limits_(limits),
      hits_(hits),
      redis_(options_.redis) {}

FleetCounters::~FleetCounters() {
  stop();
}

void FleetCounters::start() {
  thread_ = std::thread([this] { run(); });
}

void FleetCounters::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FleetCounters::went_down(const std::string& why) {
  shared_.store(false, std::memory_order_relaxed);
  if (was_up_ || last_error_.empty()) {
    ++fallbacks_;
    log(Level::warn, "redis.unavailable",
        {{"error", why}, {"note", "rate limits fall back to each node's fair share"}});
  }
  was_up_ = false;
  last_error_ = why;
  script_sha_.clear();
  redis_.close();
}

bool FleetCounters::load_script() {
  auto r = redis_.call({"SCRIPT", "LOAD", std::string(kTakeScript)});
  if (!r) {
    went_down(r.error());
    return false;
  }
  if (r->type != RedisReply::Type::bulk) {
    went_down("SCRIPT LOAD: " + r->str);
    return false;
  }
  script_sha_ = r->str;
  return true;
}

void FleetCounters::run() {
  core::RcuThread rcu;
  auto next = std::chrono::steady_clock::now();
  auto next_try = next;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (wake_.wait_until(lock, next, [&] { return stopping_; })) return;
    }
    next += options_.interval;
    const auto now = std::chrono::steady_clock::now();
    if (next < now) next = now + options_.interval;  // late (Redis was slow): no catching up

    drained_.clear();
    hits_.drain(drained_);
    if (!shared_.load(std::memory_order_relaxed)) {
      // Away: the hits stay this node's (its fair share counted them); the fleet is told
      // nothing it could only get wrong later. Try again every 250 ms.
      pending_.clear();
      pending_order_.clear();
      if (now < next_try) continue;
      next_try = now + std::chrono::milliseconds(250);
      if (!load_script()) continue;
      shared_.store(true, std::memory_order_relaxed);
      was_up_ = true;
      // Read every last use again: those written while away were missed.
      uses_since_s_ = 0;
      uses_offset_ = 0;
      next_uses_read_ms_ = 0;
      log(Level::info, "redis.available",
          {{"redis", options_.redis.url.redacted()},
           {"interval_ms", static_cast<long long>(options_.interval.count())}});
      continue;
    }
    for (const core::Id& id : drained_) {
      auto [it, added] = pending_.try_emplace(id, 0);
      if (added) {
        if (pending_.size() > kMaxPendingKeys) {
          pending_.erase(it);
          ++unsent_;
          continue;
        }
        pending_order_.push_back(id);
      }
      ++it->second;
    }
    const auto t0 = std::chrono::steady_clock::now();
    if (exchange(core::now_ms())) {
      ++exchanges_ok_;
      last_exchange_us_.store(
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::steady_clock::now() - t0)
                                    .count()));
    } else {
      ++exchanges_failed_;
      next_try = std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
      pending_.clear();
      pending_order_.clear();
    }
    backlog_.store(pending_.size(), std::memory_order_relaxed);
  }
}

bool FleetCounters::exchange(uint64_t now_ms) {
  const std::string rl = options_.prefix + "/rl/{";
  const std::string uses_key = options_.prefix + "/last_used";
  const uint32_t now_s = static_cast<uint32_t>(now_ms / 1000);
  std::vector<RedisClient::Command> commands;
  std::vector<core::Id> rated;  // the key of each EVALSHA, in order
  RedisClient::Command zadd = {"ZADD", uses_key, "GT"};
  size_t sent = 0;
  {
    core::ReadSection rs;
    const uint64_t mono = core::monotonic_ns();
    for (; sent < kMaxKeysPerExchange && !pending_order_.empty(); ++sent) {
      const core::Id id = pending_order_.front();
      pending_order_.pop_front();
      const auto it = pending_.find(id);
      const uint32_t n = it->second;
      pending_.erase(it);
      const core::KeySlot* slot = index_.find_key(id);
      if (!slot) continue;  // gone since (reclaimed)
      const core::RateLimit limit = limits_.for_key(*slot->load());
      const std::string name = core::to_string(core::IdKind::api_key, id);
      if (limit.requests_per_second) {
        char interval[32];
        std::snprintf(interval, sizeof interval, "%.6f", 1e6 / limit.requests_per_second);
        const uint64_t tat = slot->rate_tat_ns.load(std::memory_order_relaxed);
        const uint64_t ahead_us = tat > mono ? (tat - mono) / 1000 : 0;
        commands.push_back({"EVALSHA", script_sha_, "1", rl + name + "}", std::to_string(n),
                            interval, std::to_string(ahead_us)});
        rated.push_back(id);
      }
      auto& pushed = pushed_s_[id];
      if (pushed != now_s) {
        pushed = now_s;
        zadd.push_back(std::to_string(now_s));
        zadd.push_back(name);
      }
    }
  }
  if (pushed_s_.size() > kMaxPushedKeys) pushed_s_.clear();  // at worst sent again this second
  const bool any_use = zadd.size() > 3;
  if (any_use) commands.push_back(std::move(zadd));
  const bool read_uses = now_ms >= next_uses_read_ms_;
  if (read_uses)
    commands.push_back({"ZRANGEBYSCORE", uses_key, std::to_string(uses_since_s_), "+inf",
                        "WITHSCORES", "LIMIT", std::to_string(uses_offset_),
                        std::to_string(kUsesPage)});
  if (commands.empty()) return true;
  hits_sent_.fetch_add(sent, std::memory_order_relaxed);

  auto replies = redis_.pipeline(commands);
  if (!replies) {
    went_down(replies.error());
    return false;
  }
  // A Redis that restarted since the script was loaded answers NOSCRIPT: load it again and
  // send those keys' hits once more (they were not counted).
  for (size_t i = 0; i < rated.size(); ++i)
    if (!(*replies)[i].ok() && (*replies)[i].str.starts_with("NOSCRIPT")) {
      if (!load_script()) return false;
      std::vector<RedisClient::Command> again(commands.begin(),
                                              commands.begin() + static_cast<long>(rated.size()));
      for (auto& c : again) c[1] = script_sha_;
      auto second = redis_.pipeline(again);
      if (!second) {
        went_down(second.error());
        return false;
      }
      for (size_t j = 0; j < rated.size(); ++j) (*replies)[j] = std::move((*second)[j]);
      break;
    }
  const uint64_t now_ns = core::monotonic_ns();
  core::ReadSection rs;
  for (size_t i = 0; i < rated.size(); ++i) {
    const RedisReply& r = (*replies)[i];
    if (r.type != RedisReply::Type::integer || r.integer <= 0) continue;
    core::KeySlot* slot = index_.find_key(rated[i]);
    if (!slot) continue;
    // At least as far ahead as the fleet is: this node's own hits since the exchange left
    // are in its bucket already and in the fleet's at the next one.
    const uint64_t fleet = now_ns + static_cast<uint64_t>(r.integer) * 1000;
    uint64_t tat = slot->rate_tat_ns.load(std::memory_order_relaxed);
    while (tat < fleet &&
           !slot->rate_tat_ns.compare_exchange_weak(tat, fleet, std::memory_order_relaxed)) {
    }
  }
  if (read_uses) {
    const RedisReply& r = replies->back();
    if (r.type == RedisReply::Type::array) {
      const size_t n = r.elements.size() / 2;
      uint64_t newest = 0;
      for (size_t i = 0; i < n; ++i) {
        const auto id = core::parse_id(core::IdKind::api_key, r.elements[2 * i].str);
        const std::string& score = r.elements[2 * i + 1].str;
        uint64_t s = 0;
        std::from_chars(score.data(), score.data() + score.size(), s);
        if (!id || !s) continue;
        newest = std::max(newest, s);
        core::KeySlot* slot = index_.find_key(*id);
        if (slot && slot->last_used_ms() < s * 1000) slot->set_last_used_ms(s * 1000);
      }
      uses_seen_.fetch_add(n, std::memory_order_relaxed);
      if (n == kUsesPage) {
        uses_offset_ += n;  // more: the next page at the next exchange
      } else {
        // From the second before the newest read on: a use another node sent with either
        // after this read (an exchange a little late across a second's turn) is not missed,
        // and only those two seconds are read twice.
        if (newest) uses_since_s_ = newest - 1;
        uses_offset_ = 0;
        next_uses_read_ms_ = now_ms + 1000;
      }
    }
  }
  return true;
}

void FleetCounters::write_metrics(std::string& out) const {
  core::appendf(out,
                "# HELP keygate_redis_up 1 while this node shares its rate-limit counts through "
                "Redis; 0 while it enforces its fair share alone.\n"
                "# TYPE keygate_redis_up gauge\nkeygate_redis_up %d\n",
                shared_.load(std::memory_order_relaxed) ? 1 : 0);
  core::appendf(out,
                "# HELP keygate_redis_exchanges_total Round trips to Redis, by result.\n"
                "# TYPE keygate_redis_exchanges_total counter\n"
                "keygate_redis_exchanges_total{result=\"ok\"} %" PRIu64
                "\nkeygate_redis_exchanges_total{result=\"failed\"} %" PRIu64 "\n",
                exchanges_ok_.load(std::memory_order_relaxed),
                exchanges_failed_.load(std::memory_order_relaxed));
  core::appendf(out,
                "# HELP keygate_redis_fallbacks_total Times Redis went away and the node fell "
                "back to its fair share.\n# TYPE keygate_redis_fallbacks_total counter\n"
                "keygate_redis_fallbacks_total %" PRIu64 "\n",
                fallbacks_.load(std::memory_order_relaxed));
  core::appendf(out,
                "# HELP keygate_redis_exchange_seconds How long the last round trip took.\n"
                "# TYPE keygate_redis_exchange_seconds gauge\nkeygate_redis_exchange_seconds "
                "%.6f\n",
                static_cast<double>(last_exchange_us_.load(std::memory_order_relaxed)) / 1e6);
  core::appendf(out,
                "# HELP keygate_redis_keys_sent_total Keys whose hits were sent, an exchange "
                "each.\n# TYPE keygate_redis_keys_sent_total counter\n"
                "keygate_redis_keys_sent_total %" PRIu64 "\n",
                hits_sent_.load(std::memory_order_relaxed));
  core::appendf(out,
                "# HELP keygate_redis_hits_dropped_total Hits the node counted but left out of "
                "the fleet's count (a full ring, or over a million keys waiting).\n"
                "# TYPE keygate_redis_hits_dropped_total counter\n"
                "keygate_redis_hits_dropped_total %" PRIu64 "\n",
                hits_.dropped() + unsent_.load(std::memory_order_relaxed));
  core::appendf(out,
                "# HELP keygate_redis_backlog_keys Keys whose hits wait for a later exchange "
                "(more were used in an interval than one exchange sends).\n"
                "# TYPE keygate_redis_backlog_keys gauge\nkeygate_redis_backlog_keys %" PRIu64 "\n",
                backlog_.load(std::memory_order_relaxed));
}

}  // namespace keygate::cluster
