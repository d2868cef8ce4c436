// EtcdCommitter's lifecycle and its committer thread's loop: start (the root key, the load,
// the threads), stop, the queue of submissions, the deadline every write is answered
// within, the node's registration, and its metrics. The read side is in etcd_apply.cpp,
// the write path in etcd_txn.cpp.
#include "cluster/etcd_committer.hpp"

#include <algorithm>
#include <random>
#include <stdexcept>

#include "core/clock.hpp"
#include "core/json_writer.hpp"
#include "core/log.hpp"
#include "core/thread_name.hpp"

namespace keygate::cluster {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kMaxAttempts = 32;  // conflicts in a row before a write is given up (503)

}  // namespace

EtcdCommitter::EtcdCommitter(core::StateMachine& state, EtcdOptions options)
    : state_(state),
      options_(std::move(options)),
      layout_(options_.prefix),
      client_(options_.endpoints, options_.tls) {
  options_.prefix = layout_.prefix();
  if (const size_t scheme = options_.advertise_url.find("://"); scheme != std::string::npos)
    self_ = options_.advertise_url.substr(scheme + 3);  // as keep_registered() names it
  std::random_device random;                            // each node its own backoff sequence
  jitter_state_ = (uint64_t{random()} << 32) | random() | 1;
  Freshness::Options fo;
  fo.endpoints = options_.endpoints;
  fo.tls = options_.tls;
  fo.probe_key = layout_.root();
  fo.fence_key = layout_.node(
      "fence-" + core::to_string(core::IdKind::request, core::IdGenerator().next(core::now_ms())));
  fo.max_staleness = options_.max_staleness;
  Freshness::Hooks hooks;
  hooks.applied = [this] { return applied_.load(std::memory_order_acquire); };
  hooks.on_answer = [this](int64_t revision) {
    contact_unix_ms_.store(static_cast<int64_t>(core::now_ms()), std::memory_order_relaxed);
    int64_t seen = store_revision_.load(std::memory_order_relaxed);
    while (seen < revision && !store_revision_.compare_exchange_weak(seen, revision)) {
    }
  };
  hooks.every_10s = [this](EtcdClient& client) { health_.poll(client); };
  hooks.move_watch = [this] {
    move_watch_.store(true, std::memory_order_relaxed);
    wake_.notify_all();
  };
  freshness_ = std::make_unique<Freshness>(std::move(fo), std::move(hooks));
}

EtcdCommitter::~EtcdCommitter() {
  stop();
}

void EtcdCommitter::start(const core::KeyHash& root_key_hash) {
  std::string error;
  const auto t0 = Clock::now();
  // The cluster's root key: the first node stores its hash; every other node must have the
  // same key (its value never leaves the node).
  TxnResult created;
  const std::string root = layout_.root();
  if (!client_.txn({Compare{Compare::Target::create, root, 0}},
                   {Op{Op::Kind::put, root, hex(root_key_hash)}}, created, error))
    throw std::runtime_error("cannot reach etcd: " + error);
  if (!created.succeeded) {
    RangeResult r;
    if (!client_.range(root, {}, 0, 0, r, error))
      throw std::runtime_error("cannot reach etcd: " + error);
    if (r.kvs.empty() || r.kvs[0].value != hex(root_key_hash))
      throw std::runtime_error("this node's root key is not the cluster's (" + root +
                               " in etcd holds the hash of another): give every node the same "
                               "--root-key-file");
  }

  // Read once, here: the snapshot thread names it, and client_ is the committer thread's.
  cluster_id_ = client_.cluster_id();
  // The store's revision now: the node is ready once it has applied it.
  const uint64_t read_at = core::now_ms();  // a full load is fresh as of this moment
  int64_t store = 0, organizations = 0;
  if (!client_.count(layout_.kind("org"), prefix_end(layout_.kind("org")), 0, organizations, store,
                     error))
    throw std::runtime_error("cannot load the state from etcd: " + error);
  catch_up_to_ = store;
  // The node's own snapshot first; without one that etcd's history still follows, a peer's
  // (a file read at disk speed instead of every record from etcd); then
  // everything from etcd.
  int64_t revision = resume_from_snapshot();
  bool from_peer = false;
  if (revision == 0 && join_from_peer()) {
    from_peer = true;
    revision = resume_from_snapshot();
  }
  resumed_ = revision > 0;
  start_mode_ = !resumed_ ? "etcd" : from_peer ? "peer_snapshot" : "own_snapshot";
  if (!resumed_) {
    client_.set_limits(kLoadCallMs, 0);
    revision = load_all(client_, false);
  }
  state_.index().reclaim();
  state_.index().advance_clock(core::now_ms());
  applied_.store(revision, std::memory_order_release);
  store_revision_.store(revision, std::memory_order_relaxed);
  contact_unix_ms_.store(static_cast<int64_t>(core::now_ms()), std::memory_order_relaxed);
  load_seconds_ = std::chrono::duration<double>(Clock::now() - t0).count();
  watch_from_ = revision + 1;
  loaded_.store(true, std::memory_order_release);
  // From now on each call leaves a member that does not answer within a second for the next
  // (a stopped process keeps its connections open); the last member tried gets the rest of
  // the budget, and no further member is tried once the write timeout is nearly spent, so
  // that the thread is back in time to answer every write (answer_overdue()). The load
  // above may take longer per call (kLoadCallMs).
  client_.set_limits(1'000, std::max<long>(2'000, options_.write_timeout.count() - 1'500));
  // Registered before it is ready: a node that joins next finds it (and its snapshot).
  keep_registered();
  watcher_ = std::thread([this] {
    core::name_thread("kg-etcd-watch");
    watch_loop();
  });
  sender_ = std::thread([this] {
    core::name_thread("kg-etcd-send");
    send_loop();
  });
  thread_ = std::thread([this] {
    core::name_thread("kg-etcd-apply");
    run();
  });
  if (options_.endpoints.size() > 1)
    leader_finder_ = std::thread([this] {
      core::name_thread("kg-etcd-leader");
      find_leader_loop();
    });
  // A node resumed from its own snapshot is behind until its watch catches up: fresh from
  // the first probe it has applied.
  freshness_->start(resumed_ ? 0 : read_at);
}

void EtcdCommitter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  send_wake_.notify_all();
  if (freshness_) freshness_->stop();
  // The committer's thread first: it restarts the watch thread after a reload (run()).
  const bool was_running = thread_.joinable();
  if (thread_.joinable()) thread_.join();
  if (watcher_.joinable()) watcher_.join();
  if (sender_.joinable()) sender_.join();  // within one call's budget
  if (snapshotter_.joinable()) snapshotter_.join();
  if (leader_finder_.joinable()) leader_finder_.join();  // within one status call
  if (was_running) answer_the_rest();
  // A clean stop leaves a snapshot of everything applied: the restart resumes from it.
  if (was_running && options_.data_dir && loaded_.load()) {
    core::RcuThread rcu;
    take_snapshot();
  }
}

// Transactions and the watch go to etcd's leader. A follower forwards every transaction to
// it (a decode, a forward and a hop for each write) and delivers a commit to its watches
// only after the leader told it, while a write is answered when this node's watch delivers
// it: on three members here, 4,903 writes/s against 4,494 through a node whose list named
// a follower first (cluster/README.md, "Talking to etcd"). Every few seconds this thread
// asks each member whom it follows; a member counts as the leader only when it says so
// itself, answering in time, so a leader that hangs is never preferred. The sender and the
// watch move to it when it changes, and otherwise keep to their usual order: a call that
// fails there goes on to the next member as always, and a stuck watch is moved by the
// freshness probe.
void EtcdCommitter::find_leader_loop() {
  std::vector<std::unique_ptr<EtcdClient>> members;
  for (const std::string& endpoint : options_.endpoints) {
    members.push_back(std::make_unique<EtcdClient>(std::vector{endpoint}, options_.tls));
    members.back()->set_limits(500, 500);
  }
  for (;;) {
    int found = -1;
    for (size_t i = 0; i < members.size() && found < 0; ++i) {
      std::string member, leader, error;
      if (members[i]->leadership(member, leader, error) && !member.empty() && member == leader)
        found = static_cast<int>(i);
    }
    if (found >= 0 && leader_endpoint_.exchange(found, std::memory_order_relaxed) != found)
      core::log(core::Level::info, "cluster.leader_found",
                {{"endpoint", options_.endpoints[static_cast<size_t>(found)]}});
    std::unique_lock lock(mutex_);
    if (send_wake_.wait_for(lock, std::chrono::seconds(3), [this] { return stopping_; })) return;
  }
}

void EtcdCommitter::submit(core::Submission* s) {
  s->submitted_ms = core::now_ms();
  bool wake;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(s);
    wake = takes_commands_;
  }
  if (wake) wake_.notify_all();
}

bool EtcdCommitter::writable() const noexcept {
  if (!loaded_.load(std::memory_order_acquire)) return false;
  if (applied_.load(std::memory_order_acquire) < catch_up_to_) return false;  // still catching up
  const int64_t since =
      static_cast<int64_t>(core::now_ms()) - contact_unix_ms_.load(std::memory_order_relaxed);
  return since <= options_.stale_after.count();
}

// Every write is answered within write_timeout, whatever etcd does (the thread's own calls
// give up within half of it). What still waits then is answered with what is known: a
// command not sent yet changed nothing; one whose transaction was refused and waits to run
// again may have been committed by an earlier attempt whose answer was lost, which is not
// known; one etcd committed, which this node's stuck watch has not delivered, is answered
// as committed: that is known, and this node stopped vouching for keys long before
// (max_staleness < write_timeout), so no verification here contradicts a revocation.
void EtcdCommitter::answer_overdue() {
  const uint64_t now = core::now_ms();
  const uint64_t limit = static_cast<uint64_t>(options_.write_timeout.count());
  // A command submitted after `now` was read is not overdue (unsigned: `now - submitted`
  // would wrap around and answer it at once, which CI once saw as a spurious 503).
  auto overdue = [&](const core::Submission* s) {
    return now > s->submitted_ms && now - s->submitted_ms > limit;
  };
  const std::string waited =
      "it waited longer than --write-timeout-ms (" + std::to_string(limit) + " ms)";
  std::vector<core::Submission*> not_sent;
  {
    std::lock_guard lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end();)
      if (overdue(*it))
        alone_.erase(*it), not_sent.push_back(*it), it = queue_.erase(it);
      else
        ++it;
  }
  for (core::Submission* s : not_sent) {
    s->outcome = {};
    s->outcome.error = unavailable(waited + " before etcd could take it");
    s->done(s);
  }
  std::erase_if(waiting_, [&](Waiting& w) {
    if (!overdue(w.submission)) return false;
    w.submission->outcome = std::move(w.outcome);
    w.submission->done(w.submission);
    return true;
  });
  std::erase_if(retries_, [&](Retry& r) {
    if (!overdue(r.submission)) return false;
    r.submission->outcome = {};
    r.submission->outcome.error = outcome_unknown(waited);
    r.submission->done(r.submission);
    return true;
  });
}

// This node's registration: a key under <prefix>/nodes/ bound to a lease of 10 s, renewed
// every 3 s. If the lease expired (etcd was away longer than that), a new one is taken.
void EtcdCommitter::keep_registered() {
  if (self_.empty()) return;
  std::string error;
  if (lease_ && Clock::now() - renewed_ < std::chrono::seconds(3)) return;
  if (lease_) {
    const int64_t ttl = client_.lease_keepalive(lease_, error);
    if (ttl > 0) {
      renewed_ = Clock::now();
      return;
    }
    if (ttl < 0) return;  // etcd did not answer: try again in a moment, the lease may live
    lease_ = 0;
  }
  const int64_t lease = client_.lease_grant(10, error);
  if (!lease) return;
  const std::string& name = self_;
  std::string value;
  core::JsonWriter w(value);
  w.begin_object().field("url", std::string_view(options_.advertise_url));
  if (!options_.admin_url.empty()) w.field("admin_url", std::string_view(options_.admin_url));
  w.field("started", std::string_view(start_mode_))
      .field("registered_unix_ms", core::now_ms())
      .end_object();
  TxnResult r;
  if (client_.txn({}, {Op{Op::Kind::put, layout_.node(name), value, lease}}, r, error)) {
    lease_ = lease;
    renewed_ = Clock::now();
  }
}

void EtcdCommitter::run() {
  core::RcuThread rcu;
  // A node that loaded everything from etcd writes a snapshot at once: its restart, and a
  // node that joins from it, start from that instead.
  auto last_snapshot = resumed_ ? Clock::now() : Clock::now() - options_.snapshot_interval;
  for (;;) {
    std::deque<WatchBatch> batches;
    std::optional<Txn> answered;
    std::string fatal;
    bool watch_compacted = false;
    {
      std::unique_lock lock(mutex_);
      const bool can_retry = retry_ready();
      auto wait = std::chrono::milliseconds(250);
      if (!can_retry && !retries_.empty() && retry_after_ms_ > core::now_ms())
        wait = std::min(wait, std::chrono::milliseconds(retry_after_ms_ - core::now_ms()));
      wake_.wait_for(lock, wait, [&] {
        takes_commands_ = !in_flight_ && waiting_.empty() && retries_.empty();
        return stopping_ || !batches_.empty() || !watch_error_.empty() || can_retry || inbox_ ||
               (takes_commands_ && !queue_.empty());
      });
      if (stopping_) break;
      batches.swap(batches_);
      answered.swap(inbox_);
      if (answered && !queue_.empty()) turnaround_from_ = answered->answered;
      fatal = watch_error_;
      watch_compacted = watch_compacted_;
    }
    try {
      if (answered) finish(*answered);  // may apply it (apply_own())
    } catch (const std::runtime_error& e) {
      cannot_follow(e.what());
      break;
    }
    if (!fatal.empty() && watch_compacted) {
      // The watch resumes from a revision etcd compacted (this node was cut off longer than
      // etcd keeps history): load everything again at the present revision and watch on
      // from there, instead of exiting into a restart that loads it anyway. Meanwhile the
      // node vouches for nothing: its applied revision stays behind the store's.
      if (!reload()) {
        std::unique_lock lock(mutex_);  // etcd is away: try again in a moment
        wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
      }
      answer_overdue();
      continue;
    }
    if (!fatal.empty()) {
      cannot_follow(fatal);
      break;
    }
    try {
      for (const WatchBatch& b : batches) apply(b);
    } catch (const std::runtime_error& e) {
      cannot_follow(e.what());  // a change this node cannot apply
      break;
    }
    state_.index().reclaim();  // what the watch or apply_own() retired (a no-op if nothing)
    state_.index().advance_clock(core::now_ms());

    // The writers of what is now applied are answered once the next transaction has left
    // (below): answering 32 of them took 75-79 µs of the ~400 between etcd's answer and the
    // next transaction (keygate_cluster_turnaround_seconds), and nothing of the next depends
    // on it. What it depends on is that every committed command is applied, so that the
    // next commands see it.
    const int64_t applied = applied_.load(std::memory_order_acquire);
    const bool unapplied = std::any_of(waiting_.begin(), waiting_.end(),
                                       [&](const Waiting& w) { return w.revision > applied; });
    if (retry_ready()) {
      // Caught up past every refusal: a refused transaction whose token was applied had been
      // committed by an earlier attempt, and its commands are answered as they were then;
      // the others are executed again on the new state.
      std::vector<Retry> again;
      for (Retry& r : retries_) {
        const auto it = tokens_seen_.find(r.token);
        if (it != tokens_seen_.end() && it->second > 0) {
          r.submission->outcome = std::move(r.outcome);
          r.submission->done(r.submission);
        } else if (r.attempts >= kMaxAttempts) {
          r.submission->outcome = {};
          r.submission->outcome.error = unavailable("the organization changed on other nodes " +
                                                    std::to_string(kMaxAttempts) +
                                                    " times in a row while this change was tried");
          r.submission->done(r.submission);
        } else {
          again.push_back({r.submission, 0, r.attempts});
        }
        tokens_seen_.erase(r.token);
      }
      retries_.clear();
      execute(again);
    }
    // One transaction in flight at a time, carrying what queued meanwhile (as many commands
    // as fit in etcd's --max-txn-ops: execute()): the next is sent once the last is applied.
    std::vector<Retry> fresh;
    {
      std::lock_guard lock(mutex_);
      while (!in_flight_ && !unapplied && retries_.empty() && !queue_.empty() &&
             fresh.size() < options_.max_txn_ops) {  // each costs an operation at least
        // A command of a batch etcd refused goes alone, to get an answer of its own.
        const bool alone = alone_.contains(queue_.front());
        if (alone && !fresh.empty()) break;
        alone_.erase(queue_.front());
        fresh.push_back({queue_.front()});
        queue_.pop_front();
        if (alone) break;
      }
    }
    if (!fresh.empty()) execute(fresh);
    std::erase_if(waiting_, [&](Waiting& w) {
      if (w.revision > applied) return false;
      w.submission->outcome = std::move(w.outcome);
      w.submission->done(w.submission);
      return true;
    });
    if (options_.data_dir &&
        (Clock::now() - last_snapshot >= options_.snapshot_interval ||
         state_.index().audit().snapshot_due(options_.audit_memory_bytes)) &&
        !snapshot_running_.load(std::memory_order_acquire)) {
      last_snapshot = Clock::now();
      if (snapshotter_.joinable()) snapshotter_.join();
      snapshot_running_.store(true, std::memory_order_release);
      snapshotter_ = std::thread([this] {
        core::name_thread("kg-snapshot");
        core::run_in_background();
        core::RcuThread rcu;
        take_snapshot();
        snapshot_running_.store(false, std::memory_order_release);
      });
    }
    answer_overdue();
  }
}

// The committer's thread ends: this node cannot follow the cluster any longer.
void EtcdCommitter::cannot_follow(const std::string& why) {
  core::log(core::Level::error, "cluster.cannot_follow", {{"error", why}});
  if (options_.on_fatal) options_.on_fatal(why);
  loaded_.store(false, std::memory_order_release);  // not ready; writes refused
}

// Whether the commands held back by conflicts may be decided again: nothing in flight, the
// watch caught up past every refusal, and their backoff over.
bool EtcdCommitter::retry_ready() const {
  if (in_flight_ || retries_.empty() || core::now_ms() < retry_after_ms_) return false;
  const int64_t applied = applied_.load(std::memory_order_acquire);
  return std::all_of(retries_.begin(), retries_.end(),
                     [&](const Retry& r) { return r.catch_up_to <= applied; });
}

// After every thread has stopped: whatever still waits gets an answer, since nothing more
// will be applied here. A command etcd committed is answered as committed; one whose
// transaction was sent and not answered may or may not have been made.
void EtcdCommitter::answer_the_rest() {
  std::lock_guard lock(mutex_);
  for (Waiting& w : waiting_) {
    w.submission->outcome = std::move(w.outcome);
    w.submission->done(w.submission);
  }
  for (Retry& r : retries_) {
    r.submission->outcome = {};
    r.submission->outcome.error = outcome_unknown("the node is stopping");
    r.submission->done(r.submission);
  }
  std::vector<Retry> unsent;
  if (outbox_) unsent = std::move(outbox_->staged_by);
  for (core::Submission* s : queue_) unsent.push_back({s});
  for (Retry& r : unsent) {
    r.submission->outcome = {};
    r.submission->outcome.error = unavailable("the node is stopping");
    r.submission->done(r.submission);
  }
  if (inbox_) {
    for (size_t i = 0; i < inbox_->staged_by.size(); ++i) {
      core::Submission* s = inbox_->staged_by[i].submission;
      s->outcome = {};
      if (inbox_->sent && inbox_->result.succeeded)
        s->outcome = std::move(inbox_->outcomes[i]);
      else if (inbox_->sent || !inbox_->refused)
        s->outcome.error = outcome_unknown("the node is stopping");
      else
        s->outcome.error = unavailable("the node is stopping");
      s->done(s);
    }
  }
  waiting_.clear();
  retries_.clear();
  queue_.clear();
  outbox_.reset();
  inbox_.reset();
}

void EtcdCommitter::write_metrics(std::string& out) const {
  const int64_t applied = applied_.load(std::memory_order_relaxed);
  const int64_t store = store_revision_.load(std::memory_order_relaxed);
  const int64_t contact = contact_unix_ms_.load(std::memory_order_relaxed);
  core::appendf(
      out,
      "# HELP keygate_cluster_applied_revision The etcd revision this node has applied.\n"
      "# TYPE keygate_cluster_applied_revision gauge\nkeygate_cluster_applied_revision %lld\n",
      static_cast<long long>(applied));
  core::appendf(
      out,
      "# HELP keygate_cluster_revision_lag Revisions the store is ahead of this node (as of "
      "the last contact).\n# TYPE keygate_cluster_revision_lag gauge\nkeygate_cluster_revision_lag "
      "%lld\n",
      static_cast<long long>(std::max<int64_t>(0, store - applied)));
  core::appendf(
      out,
      "# HELP keygate_cluster_contact_age_seconds Since etcd last answered this node.\n"
      "# TYPE keygate_cluster_contact_age_seconds gauge\nkeygate_cluster_contact_age_seconds "
      "%.3f\n",
      contact ? static_cast<double>(static_cast<int64_t>(core::now_ms()) - contact) / 1e3 : -1.0);
  core::appendf(out,
                "# HELP keygate_cluster_txns_total Transactions sent to etcd.\n# TYPE "
                "keygate_cluster_txns_total "
                "counter\nkeygate_cluster_txns_total %llu\n",
                static_cast<unsigned long long>(txns_.load(std::memory_order_relaxed)));
  core::appendf(
      out,
      "# HELP keygate_cluster_conflicts_total Transactions refused because another node changed "
      "the organization first (then executed again).\n# TYPE keygate_cluster_conflicts_total "
      "counter\nkeygate_cluster_conflicts_total %llu\n",
      static_cast<unsigned long long>(conflicts_.load(std::memory_order_relaxed)));
  core::appendf(out,
                "# HELP keygate_cluster_unconflicted_resends_total Commands of a refused "
                "transaction whose organizations had not changed: sent again at once, alone.\n"
                "# TYPE keygate_cluster_unconflicted_resends_total counter\n"
                "keygate_cluster_unconflicted_resends_total %llu\n",
                static_cast<unsigned long long>(isolated_.load(std::memory_order_relaxed)));
  core::appendf(out,
                "# HELP keygate_cluster_txns_applied_from_answer_total Transactions of this "
                "node's applied as etcd answered them (nothing came before them), not when the "
                "watch brought them.\n# TYPE keygate_cluster_txns_applied_from_answer_total "
                "counter\nkeygate_cluster_txns_applied_from_answer_total %llu\n",
                static_cast<unsigned long long>(applied_own_.load(std::memory_order_relaxed)));
  core::appendf(out,
                "# HELP keygate_cluster_turnaround_seconds This node's share of a write's path "
                "while writes queue: from etcd's answer to a transaction to the next one sent.\n"
                "# TYPE keygate_cluster_turnaround_seconds summary\n"
                "keygate_cluster_turnaround_seconds_sum %.6f\n"
                "keygate_cluster_turnaround_seconds_count %llu\n",
                static_cast<double>(turnaround_ns_.load(std::memory_order_relaxed)) / 1e9,
                static_cast<unsigned long long>(turnarounds_.load(std::memory_order_relaxed)));
  core::appendf(
      out,
      "# HELP keygate_cluster_failures_total Transactions no etcd endpoint answered.\n"
      "# TYPE keygate_cluster_failures_total counter\nkeygate_cluster_failures_total %llu\n",
      static_cast<unsigned long long>(failures_.load(std::memory_order_relaxed)));
  core::appendf(out,
                "# HELP keygate_cluster_audit_sweeps_total Organizations whose audit events past "
                "the retention this node deleted from etcd (a range delete each).\n"
                "# TYPE keygate_cluster_audit_sweeps_total counter\n"
                "keygate_cluster_audit_sweeps_total %llu\n",
                static_cast<unsigned long long>(swept_orgs_.load(std::memory_order_relaxed)));
  core::appendf(
      out,
      "# HELP keygate_cluster_reloads_total Times the node loaded the whole state again "
      "because etcd had compacted the history its watch needed.\n"
      "# TYPE keygate_cluster_reloads_total counter\nkeygate_cluster_reloads_total %llu\n",
      static_cast<unsigned long long>(reloads_.load(std::memory_order_relaxed)));
  core::appendf(out,
                "# HELP keygate_cluster_live_nodes Nodes registered in etcd, this one included: "
                "each enforces 1/n of every rate limit.\n"
                "# TYPE keygate_cluster_live_nodes gauge\nkeygate_cluster_live_nodes %u\n",
                live_nodes_.load(std::memory_order_relaxed));
  core::appendf(
      out,
      "# HELP keygate_log_writable 1 while changes are taken.\n# TYPE keygate_log_writable "
      "gauge\nkeygate_log_writable %d\n",
      writable() ? 1 : 0);
  const uint64_t now = core::now_ms(), fresh = freshness_->fresh_as_of_ms();
  core::appendf(out,
                "# HELP keygate_cluster_staleness_seconds How far behind etcd's present this node "
                "can show it is at most (cluster/README.md, \"Bounded staleness\").\n"
                "# TYPE keygate_cluster_staleness_seconds gauge\n"
                "keygate_cluster_staleness_seconds %.3f\n",
                fresh ? static_cast<double>(now - std::min(now, fresh)) / 1e3 : -1.0);
  core::appendf(out,
                "# HELP keygate_cluster_vouching 1 while this node is within --max-staleness-ms "
                "and answers verifications; 0 while it answers them 503 NODE_STALE.\n"
                "# TYPE keygate_cluster_vouching gauge\nkeygate_cluster_vouching %d\n",
                now <= vouch_until().load(std::memory_order_relaxed) ? 1 : 0);
  core::appendf(out,
                "# HELP keygate_cluster_watch_moves_total Watches moved off a member that hung.\n"
                "# TYPE keygate_cluster_watch_moves_total counter\n"
                "keygate_cluster_watch_moves_total %llu\n",
                static_cast<unsigned long long>(freshness_->watch_moves()));
  core::appendf(out,
                "# HELP keygate_cluster_probe_failures_total Freshness reads no member answered "
                "in time.\n# TYPE keygate_cluster_probe_failures_total counter\n"
                "keygate_cluster_probe_failures_total %llu\n",
                static_cast<unsigned long long>(freshness_->probes_failed()));
  health_.write_metrics(out);
}

}  // namespace keygate::cluster
