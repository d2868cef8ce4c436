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
constexpr int64_t kHourUs = int64_t{3'600} * 1'000'000;

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
    // This interval's hits, a count per key: sorted, then counted run by run.
    std::sort(drained_.begin(), drained_.end());
    for (size_t i = 0; i < drained_.size();) {
      size_t j = i + 1;
      while (j < drained_.size() && drained_[j] == drained_[i]) ++j;
      if (pending_.size() < kMaxPendingKeys)
        pending_.push_back({drained_[i], static_cast<uint32_t>(j - i)});
      else
        unsent_.fetch_add(j - i, std::memory_order_relaxed);
      i = j;
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
    }
    backlog_.store(pending_.size(), std::memory_order_relaxed);
  }
}

bool FleetCounters::mark_pushed(core::Id id) {
  if (pushed_count_ * 2 >= pushed_.size()) {
    if (pushed_.size() >= 2 * kMaxPushedKeys) return true;  // full: sent again, not missed
    std::vector<core::Id> old(std::max<size_t>(1024, pushed_.size() * 2));
    old.swap(pushed_);
    pushed_count_ = 0;
    for (const core::Id& o : old)
      if (!o.empty()) mark_pushed(o);
  }
  const size_t mask = pushed_.size() - 1;
  for (size_t at = core::IdHash{}(id)&mask;; at = (at + 1) & mask) {
    if (pushed_[at] == id) return false;
    if (pushed_[at].empty()) {
      pushed_[at] = id;
      ++pushed_count_;
      return true;
    }
  }
}

bool FleetCounters::exchange(uint64_t now_ms) {
  const uint64_t now_s = now_ms / 1000;
  if (now_s != pushed_second_) {
    std::fill(pushed_.begin(), pushed_.end(), core::Id{});
    pushed_count_ = 0;
    pushed_second_ = now_s;
  }
  out_.clear();
  rated_.clear();
  debt_caps_.clear();
  uses_.clear();
  size_t commands = 0;
  const size_t take = std::min(pending_.size(), kMaxKeysPerExchange);
  char name[32];
  {
    core::ReadSection rs;
    const uint64_t mono = core::monotonic_ns();
    for (size_t i = 0; i < take; ++i) {
      const Pending& p = pending_[i];
      const core::KeySlot* slot = index_.find_key(p.id);
      if (!slot) continue;  // gone since (reclaimed)
      const core::RateLimit limit = limits_.for_key(*slot->load());
      if (limit.requests_per_second) {
        const size_t n = core::format_id(core::IdKind::api_key, p.id, name);
        key_.assign(options_.prefix).append("/rl/{").append(name, n).append("}");
        char interval[32];
        const auto end = std::to_chars(interval, interval + sizeof interval,
                                       1e6 / limit.requests_per_second, std::chars_format::fixed, 6)
                             .ptr;
        const uint64_t tat = slot->rate_tat_ns.load(std::memory_order_relaxed);
        begin_command(out_, 7);
        add_arg(out_, "EVALSHA");
        add_arg(out_, script_sha_);
        add_arg(out_, "1");
        add_arg(out_, key_);
        add_arg(out_, uint64_t{p.hits});
        add_arg(out_, std::string_view(interval, static_cast<size_t>(end - interval)));
        add_arg(out_, tat > mono ? (tat - mono) / 1000 : uint64_t{0});
        rated_.push_back(p.id);
        const double tolerance_us = 1e6 / limit.requests_per_second * std::max(limit.burst, 1u);
        const uint32_t nodes = limits_.nodes ? limits_.nodes->load(std::memory_order_relaxed) : 1;
        debt_caps_.push_back(std::max(kHourUs, static_cast<int64_t>(tolerance_us * (nodes + 1))));
        ++commands;
      }
      if (mark_pushed(p.id)) uses_.push_back(p.id);
    }
  }
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(take));
  const size_t rated_bytes = out_.size();
  const std::string uses_key = options_.prefix + "/last_used";
  if (!uses_.empty()) {
    begin_command(out_, 3 + 2 * uses_.size());
    add_arg(out_, "ZADD");
    add_arg(out_, uses_key);
    add_arg(out_, "GT");
    for (const core::Id& id : uses_) {
      add_arg(out_, now_s);
      add_arg(out_, std::string_view(name, core::format_id(core::IdKind::api_key, id, name)));
    }
    ++commands;
  }
  const bool read_uses = now_ms >= next_uses_read_ms_;
  if (read_uses) {
    begin_command(out_, 8);
    add_arg(out_, "ZRANGEBYSCORE");
    add_arg(out_, uses_key);
    add_arg(out_, uses_since_s_);
    add_arg(out_, "+inf");
    add_arg(out_, "WITHSCORES");
    add_arg(out_, "LIMIT");
    add_arg(out_, uses_offset_);
    add_arg(out_, uint64_t{kUsesPage});
    ++commands;
  }
  if (commands == 0) return true;
  hits_sent_.fetch_add(take, std::memory_order_relaxed);

  // Replies: an integer for each key (how far ahead the fleet's bucket is, µs), then the
  // ZADD's, then the last uses read. No read section is held across the round trip.
  debts_.assign(rated_.size(), 0);
  bool noscript = false;
  auto on_reply = [&](size_t i, std::string_view raw) {
    if (i < rated_.size()) {
      if (raw.starts_with(':'))
        std::from_chars(raw.data() + 1, raw.data() + raw.size() - 2, debts_[i]);
      else if (raw.starts_with("-NOSCRIPT"))
        noscript = true;
    } else if (read_uses && i == commands - 1) {
      apply_uses(raw, now_ms);
    }
  };
  auto r = redis_.pipeline_raw(out_, commands, on_reply);
  if (!r) {
    went_down(r.error());
    return false;
  }
  // A Redis that restarted since the script was loaded answers NOSCRIPT: load it again and
  // send those keys' hits once more (they were not counted). The script's name is its
  // SHA-1, the same after loading again.
  if (noscript) {
    if (!load_script()) return false;
    r = redis_.pipeline_raw(std::string_view(out_).substr(0, rated_bytes), rated_.size(), on_reply);
    if (!r) {
      went_down(r.error());
      return false;
    }
  }
  const uint64_t now_ns = core::monotonic_ns();
  core::ReadSection rs;
  for (size_t i = 0; i < rated_.size(); ++i) {
    if (debts_[i] <= 0) continue;
    core::KeySlot* slot = index_.find_key(rated_[i]);
    if (!slot) continue;
    // At least as far ahead as the fleet is: this node's own hits since the exchange left
    // are in its bucket already and in the fleet's at the next one.
    // Never further than the fleet can be (every node's full bucket and one more, or an
    // hour): a Redis that answers nonsense, or that someone else wrote to, cannot shut a
    // key out for longer.
    const uint64_t fleet =
        now_ns + static_cast<uint64_t>(std::min<int64_t>(debts_[i], debt_caps_[i])) * 1000;
    uint64_t tat = slot->rate_tat_ns.load(std::memory_order_relaxed);
    while (tat < fleet &&
           !slot->rate_tat_ns.compare_exchange_weak(tat, fleet, std::memory_order_relaxed)) {
    }
  }
  return true;
}

// The ZRANGEBYSCORE reply, read in place: an array of member (key id), score (second).
void FleetCounters::apply_uses(std::string_view raw, uint64_t now_ms) {
  auto line = [&](char type, int64_t& v) {
    const size_t end = raw.find("\r\n");
    if (raw.empty() || raw[0] != type || end == std::string_view::npos) return false;
    const bool ok = std::from_chars(raw.data() + 1, raw.data() + end, v).ptr == raw.data() + end;
    raw.remove_prefix(end + 2);
    return ok;
  };
  auto bulk = [&](std::string_view& out) {
    int64_t n = 0;
    if (!line('$', n) || n < 0 || raw.size() < static_cast<size_t>(n) + 2) return false;
    out = raw.substr(0, static_cast<size_t>(n));
    raw.remove_prefix(static_cast<size_t>(n) + 2);
    return true;
  };
  int64_t count = 0;
  if (!line('*', count)) return;  // an error reply: read again next time
  const size_t n = static_cast<size_t>(count) / 2;
  uint64_t newest = 0;
  core::ReadSection rs;
  for (size_t i = 0; i < n; ++i) {
    std::string_view member, score;
    if (!bulk(member) || !bulk(score)) return;
    uint64_t s = 0;
    std::from_chars(score.data(), score.data() + score.size(), s);
    const auto id = core::parse_id(core::IdKind::api_key, member);
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
