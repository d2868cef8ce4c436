#include "cluster/freshness.hpp"

#include <algorithm>
#include <deque>

#include "core/clock.hpp"
#include "core/log.hpp"
#include "core/thread_name.hpp"

namespace keygate::cluster {

namespace {
using Clock = std::chrono::steady_clock;
// Probes answered but not yet applied here, at most: one per probe interval, so a node
// stuck this long keeps only the oldest and the newest few (the oldest decide freshness).
constexpr size_t kMaxPending = 64;
}  // namespace

Freshness::Freshness(Options options, Hooks hooks)
    : options_(std::move(options)), hooks_(std::move(hooks)) {}

Freshness::~Freshness() {
  stop();
}

void Freshness::set_fresh(uint64_t as_of_ms) {
  if (as_of_ms <= fresh_as_of_.load(std::memory_order_relaxed)) return;
  fresh_as_of_.store(as_of_ms, std::memory_order_relaxed);
  // relaxed suffices for readers: a verification that reads an older deadline refuses a
  // little early, never late; the index itself is published with its own ordering.
  vouch_until_.store(as_of_ms + static_cast<uint64_t>(options_.max_staleness.count()),
                     std::memory_order_relaxed);
}

void Freshness::start(uint64_t fresh_as_of_ms) {
  set_fresh(fresh_as_of_ms);
  thread_ = std::thread([this] {
    core::name_thread("kg-etcd-fresh");
    run();
  });
}

void Freshness::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Freshness::wait_until_vouching(std::chrono::milliseconds within) {
  const auto deadline = Clock::now() + within;
  while (core::now_ms() > vouch_until_.load(std::memory_order_relaxed)) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void Freshness::run() {
  EtcdClient client(options_.endpoints, options_.tls);
  // A read slower than half the bound is of no use to it: leave that member for the next.
  const long per_endpoint = std::max<long>(100, options_.max_staleness.count() / 2);
  client.set_limits(per_endpoint, 0);
  const uint64_t bound = static_cast<uint64_t>(options_.max_staleness.count());
  struct Probe {
    uint64_t sent_ms;
    int64_t revision;
    bool fence;
  };
  int64_t lease = 0;
  auto lease_renewed = Clock::now();
  std::deque<Probe> pending;  // answered, not applied here yet; oldest first
  auto next_probe = Clock::now();
  int64_t last_applied = hooks_.applied();
  uint64_t applied_moved_ms = core::now_ms(), last_move_ms = 0;
  bool stale = false;
  auto next_maintenance = Clock::now();
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_until(lock, std::min(next_probe, Clock::now() + std::chrono::milliseconds(20)),
                       [this] { return stopping_; });
      if (stopping_) return;
    }
    if (Clock::now() >= next_probe) {
      next_probe = Clock::now() + options_.probe_interval;
      const uint64_t sent = core::now_ms();
      RangeResult r;
      std::string error;
      // Linearizable (etcd's default for a range): served through the leader's quorum.
      if (client.range(options_.probe_key, {}, 0, 1, r, error)) {
        if (pending.size() == kMaxPending) pending.pop_back();
        pending.push_back({sent, r.revision, false});
        hooks_.on_answer(r.revision);
      } else {
        failed_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (hooks_.every_10s && Clock::now() >= next_maintenance) {
      next_maintenance = Clock::now() + std::chrono::seconds(10);
      hooks_.every_10s(client);
    }
    const int64_t applied = hooks_.applied();
    const uint64_t now = core::now_ms();
    if (applied != last_applied) last_applied = applied, applied_moved_ms = now;
    while (!pending.empty() && pending.front().revision <= applied) {
      set_fresh(pending.front().sent_ms);
      pending.pop_front();
    }
    // A probe unresolved for half the bound: this node lags, or etcd's revision moved
    // outside keygate's prefix, which the watch never delivers. A fence put under the
    // prefix tells the two apart: once the watch delivers it, everything committed before
    // it was written is applied here. One fence at a time, so at most two puts a second.
    const bool fencing =
        std::any_of(pending.begin(), pending.end(), [](const Probe& p) { return p.fence; });
    if (!pending.empty() && !fencing && now - pending.front().sent_ms > bound / 2) {
      std::string error;
      if (!lease || Clock::now() - lease_renewed > std::chrono::seconds(10)) {
        const int64_t ttl = lease ? client.lease_keepalive(lease, error) : 0;
        if (ttl <= 0) lease = client.lease_grant(30, error);
        lease_renewed = Clock::now();
      }
      const uint64_t sent = core::now_ms();
      TxnResult put;
      if (client.txn({}, {Op{Op::Kind::put, options_.fence_key, std::to_string(sent), lease}}, put,
                     error) &&
          put.succeeded) {
        if (pending.size() == kMaxPending) pending.pop_back();
        pending.push_back({sent, put.revision, true});
        hooks_.on_answer(put.revision);
      } else {
        failed_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    // The watch is stuck: a fence this node wrote under the prefix has not come back for
    // half the bound, and nothing was applied meanwhile. Its member hangs (or lost its
    // leader without saying so): move the watch, at most once per bound.
    const auto fence =
        std::find_if(pending.begin(), pending.end(), [](const Probe& p) { return p.fence; });
    if (fence != pending.end() && now - fence->sent_ms > bound / 2 &&
        now - applied_moved_ms > bound / 2 && now - last_move_ms > bound) {
      last_move_ms = now;
      watch_moves_.fetch_add(1, std::memory_order_relaxed);
      hooks_.move_watch();
    }
    const bool now_stale = now > vouch_until_.load(std::memory_order_relaxed);
    if (now_stale != stale) {
      stale = now_stale;
      const uint64_t as_of = fresh_as_of_.load(std::memory_order_relaxed);
      if (stale)
        core::log(core::Level::warn, "cluster.stale",
                  {{"behind_ms", static_cast<long long>(now - as_of)},
                   {"max_staleness_ms", static_cast<long long>(bound)},
                   {"applied_revision", static_cast<long long>(applied)},
                   {"note",
                    "no member has shown this node is within --max-staleness of etcd: it "
                    "stops vouching for keys (503 NODE_STALE) until one does"}});
      else
        core::log(core::Level::info, "cluster.fresh",
                  {{"applied_revision", static_cast<long long>(applied)}});
    }
  }
}

}  // namespace keygate::cluster
