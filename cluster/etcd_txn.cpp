// EtcdCommitter's write path: a batch of commands becomes one guarded etcd transaction
// (execute(), on the committer's thread), which the sender thread sends (send_loop(): the
// only blocking calls of the write path, so that the committer's thread goes on applying
// the watch, revocations included, while a member takes its time), and whose answer comes
// back to the committer's thread to be given to the clients (finish()).
#include <algorithm>
#include <set>

#include "cluster/etcd_committer.hpp"
#include "core/clock.hpp"
#include "core/log.hpp"
#include "persistence/codec.hpp"

namespace keygate::cluster {

namespace {

// Encoded bytes of staged records before another command is added: a transaction stays well
// under etcd's --max-request-bytes (1.5 MiB by default) with base64 and JSON around them,
// since one command stages at most ~100 KiB (a 64 KiB certificate, its event).
constexpr size_t kMaxStagedBytes = 512 * 1024;
// An audit event's put carries this lease until the sender puts the day's lease in its place
// (granting one is a call to etcd, which the committer's thread does not make).
constexpr int64_t kAuditLease = -1;
// An organization's audit events of one transaction share a value up to this size (a value
// of one event may be larger). etcd keeps a value in pages of 4 KiB: one of several KiB
// wastes part of its last page (perf/RESULTS.md: 1,468 bytes of database per key created
// with every event of a transaction in one value, 1,338 at 1,800 bytes, 1,378 one each).
constexpr size_t kEventsValueBytes = 2048;

using Clock = std::chrono::steady_clock;

// The organization a staged record belongs to.
core::Id staged_org(const core::StateMachine::Staged& st) {
  return st.org       ? st.org->id
         : st.key     ? st.key->organization_id
         : st.event   ? st.event->organization_id
         : st.project ? st.project->organization_id
                      : st.cert->organization_id;
}

// What a transaction's records cost etcd (execute()): operations in its success branch,
// compares (and so reads in its failure branch), and the organizations counted so far.
struct OpBudget {
  size_t ops = 0, compares = 0;
  std::vector<core::Id> orgs;  // those whose version it puts
  // Of each organization with events: the bytes of its last value of events so far.
  std::vector<std::pair<core::Id, size_t>> events;
};

}  // namespace

core::Error EtcdCommitter::outcome_unknown(const std::string& why) {
  return core::make_error(
      core::ErrorCode::storage_unavailable,
      "The cluster's store (etcd) did not confirm the change: " + why +
          ". It may have been made or not; read the resource before trying again. "
          "Verification still works.");
}

core::Error EtcdCommitter::unavailable(const std::string& why) {
  return core::make_error(core::ErrorCode::storage_unavailable,
                          "The cluster's store (etcd) cannot take the change right now, so nothing "
                          "was changed: " +
                              why + ". Retry later; verification still works.");
}

// Executes commands against the state as of applied_, one after the other as the journal
// does (each sees what the earlier ones staged), and hands everything they staged to the
// sender as one transaction guarded by the versions of the organizations they touched:
// etcd's group commit.
void EtcdCommitter::execute(std::vector<Retry>& batch) {
  if (in_flight_) {  // one transaction at a time: these go first once it is answered
    std::lock_guard lock(mutex_);
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(it->submission);
    batch.clear();
    return;
  }
  Txn t;
  size_t staged_bytes = 0;
  std::vector<std::string> values;  // each record staged, encoded (once: the ops take them)
  std::string payload;              // scratch for the encoder
  auto measure = [&] {              // encodes what the last command staged
    for (size_t k = values.size(); k < state_.staged().size(); ++k) {
      persistence::append_staged(state_.staged()[k], payload, values.emplace_back());
      staged_bytes += values.back().size();
    }
  };
  // etcd refuses a transaction with more than --max-txn-ops operations in a branch or
  // compares. What a command's records cost there, counted as the loop below builds them
  // (an upper bound: a record that changes nothing indexed costs less):
  OpBudget used;
  auto cost = [&](OpBudget b, size_t from) {
    for (size_t k = from; k < state_.staged().size(); ++k) {
      const core::StateMachine::Staged& st = state_.staged()[k];
      const core::Id org = staged_org(st);
      if (std::find(b.orgs.begin(), b.orgs.end(), org) == b.orgs.end()) {
        b.orgs.push_back(org);  // its version: compared and put
        ++b.ops;
        ++b.compares;
      }
      if (st.org) {  // the record; a new slug put, compared, the old one deleted
        b.ops += 3;
        ++b.compares;
      } else if (st.key) {  // the record, and the earlier form deleted; or, a new key's,
        b.ops += 2;         // compared absent under both forms' hash keys
        b.compares += 2;
      } else if (st.event) {  // a put for an organization's events, kEventsValueBytes each
        auto g = std::find_if(b.events.begin(), b.events.end(),
                              [&](const auto& e) { return e.first == org; });
        if (g == b.events.end() || g->second + values[k].size() > kEventsValueBytes) {
          ++b.ops;
          if (g == b.events.end()) g = b.events.insert(b.events.end(), {org, 0});
          g->second = 0;
        }
        g->second += values[k].size();
      } else {
        ++b.ops;
      }
    }
    return b;
  };
  auto run = [&](Retry& r) {  // false: refused, and answered
    core::Outcome out = state_.execute(r.submission->command, core::now_ms(), r.submission->actor,
                                       r.submission->authority);
    if (out.error) {  // refused: nothing staged, answered at once
      r.submission->outcome = std::move(out);
      r.submission->done(r.submission);
      return false;
    }
    t.staged_by.push_back(r);
    t.outcomes.push_back(std::move(out));
    t.staged_end.push_back(state_.staged().size());
    return true;
  };
  for (size_t i = 0; i < batch.size(); ++i) {
    if (staged_bytes >= kMaxStagedBytes) {  // the rest go in the next transaction
      std::lock_guard lock(mutex_);
      for (size_t j = batch.size(); j > i; --j) queue_.push_front(batch[j - 1].submission);
      break;
    }
    const size_t before = state_.staged().size(), slugs_before = state_.slug_changes();
    if (!run(batch[i])) continue;
    measure();
    const OpBudget with = cost(used, before);
    const size_t limit = options_.max_txn_ops;
    if (t.staged_by.size() > 1 && (with.ops > limit || with.compares > limit)) {
      // It does not fit: the transaction goes without it (its records are the last staged),
      // and it waits for the next.
      state_.discard_from(before, slugs_before);
      for (size_t k = before; k < values.size(); ++k) staged_bytes -= values[k].size();
      values.resize(before);
      t.staged_by.pop_back();
      t.outcomes.pop_back();
      t.staged_end.pop_back();
      std::lock_guard lock(mutex_);
      for (size_t j = batch.size(); j > i; --j) queue_.push_front(batch[j - 1].submission);
      break;
    }
    used = with;
  }
  batch.clear();
  if (t.staged_by.empty()) {
    state_.discard();
    return;
  }
  // One operation per key (a transaction may not name a key twice), in the order staged:
  // the watch delivers them in this order, so an organization comes before its keys.
  auto set_op = [&](Op op) {
    for (Op& o : t.ops)
      if (o.key == op.key) {
        o = std::move(op);
        return;
      }
    t.ops.push_back(std::move(op));
  };
  auto compare = [&](Compare c, core::Id org) {
    t.compares.push_back(std::move(c));
    t.compared_org.push_back(org);
  };
  std::set<core::Id> orgs;
  // Each organization's audit events of this transaction: one value, under the first one's
  // id, in the order staged (cluster/README.md, "Data layout").
  std::vector<std::pair<core::Id, Op>> events;
  {
    core::ReadSection rs;
    for (size_t k = 0; k < state_.staged().size(); ++k) {
      const core::StateMachine::Staged& st = state_.staged()[k];
      std::string& value = values[k];
      const core::Id org = staged_org(st);
      t.staged_org.push_back(org);
      orgs.insert(org);
      if (st.org) {
        const core::OrgSlot* current = state_.index().find_org(org);
        const std::string before = current ? current->load()->slug : std::string();
        if (st.org->slug != before) {  // a new organization, or a new slug: it must be free
          const std::string slug = layout_.slug(st.org->slug);
          compare({Compare::Target::create, slug, 0}, org);
          set_op({Op::Kind::put, slug, core::to_string(core::IdKind::organization, org)});
          if (!before.empty()) set_op({Op::Kind::del, layout_.slug(before), {}});
        }
        set_op({Op::Kind::put, layout_.organization(org), std::move(value)});
      } else if (st.key) {
        // Under its value's hash: one put a key. A new key's value must be no other key's,
        // of either form (a node of an earlier release indexes its keys' values under
        // hash()). A key written before in the earlier form moves: that record goes, so
        // etcd never holds a key twice by a write of this release (cluster/README.md).
        const std::string record = layout_.api_key(st.key_hash);
        if (!state_.index().find_key(st.key->id)) {
          compare({Compare::Target::create, record, 0}, org);
          compare({Compare::Target::create, layout_.hash(st.key_hash), 0}, org);
        } else {
          set_op({Op::Kind::del, layout_.earlier_api_key(st.key->id), {}});
        }
        set_op({Op::Kind::put, record, std::move(value)});
      } else if (st.event) {
        // In the same transaction as the change it describes; etcd drops it with its lease.
        // An organization's events share values of up to kEventsValueBytes, as cost()
        // counted them: a put costs etcd nearly as much for 600 bytes as for 2 KB (one event
        // a put was a third of a key creation's puts; perf/RESULTS.md).
        const auto same = std::find_if(events.begin(), events.end(),
                                       [&](const auto& e) { return e.first == org; });
        if (same != events.end() && same->second.value.size() + value.size() <= kEventsValueBytes) {
          same->second.value += value;
        } else {
          if (same != events.end()) {
            set_op(std::move(same->second));
            events.erase(same);
          }
          events.emplace_back(org, Op{Op::Kind::put, layout_.audit_event(org, st.event->id),
                                      std::move(value), kAuditLease});
        }
      } else if (st.project) {
        set_op({Op::Kind::put, layout_.project(org, st.project->id), std::move(value)});
      } else {
        const std::string k = layout_.certificate(org, st.cert->id);
        set_op(st.cert_deleted ? Op{Op::Kind::del, k, {}} : Op{Op::Kind::put, k, std::move(value)});
      }
    }
  }
  for (auto& [org, op] : events) set_op(std::move(op));  // after the changes they describe
  state_.discard();  // applied once committed (finish(), the watch)
  // The version keys carry this transaction's token: if an endpoint takes it but its answer
  // is lost, the client sends the same transaction to the next endpoint, whose compares
  // then fail; the token in the watch says the first one went through (see run()). It is
  // registered before the transaction leaves, since the watch may deliver it before the
  // answer comes back.
  t.token = core::to_string(core::IdKind::request, tokens_.next(core::now_ms()));
  tokens_seen_.emplace(t.token, 0);
  for (const core::Id& org : orgs) {
    const std::string v = layout_.version(org);
    const auto it = versions_.find(org);
    compare({Compare::Target::mod, v, it == versions_.end() ? 0 : it->second}, org);
    set_op({Op::Kind::put, v, t.token});
  }
  in_flight_ = true;
  {
    std::lock_guard lock(mutex_);
    outbox_ = std::move(t);
  }
  send_wake_.notify_all();
  if (turnaround_from_ != Clock::time_point{}) {
    const auto took =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - turnaround_from_);
    turnaround_ns_.fetch_add(static_cast<uint64_t>(took.count()), std::memory_order_relaxed);
    turnarounds_.fetch_add(1, std::memory_order_relaxed);
    turnaround_from_ = {};
  }
}

// The sender thread: sends what execute() built, one transaction at a time, and keeps the
// node's registration alive. Its calls give up within the write timeout's budget
// (EtcdClient::set_limits), so an answer is back in time for answer_overdue() to need it.
void EtcdCommitter::send_loop() {
  auto last_check = Clock::now();
  int leader = -1;  // the leader's endpoint, as last moved to
  for (;;) {
    std::optional<Txn> t;
    {
      std::unique_lock lock(mutex_);
      send_wake_.wait_for(lock, sweep_.empty() ? std::chrono::seconds(1) : std::chrono::seconds(0),
                          [this] { return stopping_ || outbox_; });
      if (stopping_) return;  // stop() answers what was not sent
      t.swap(outbox_);
    }
    if (const int found = leader_endpoint_.load(std::memory_order_relaxed); found != leader) {
      leader = found;
      client_.prefer_endpoint(static_cast<size_t>(found));
    }
    if (t) {
      send(*t);
      t->answered = Clock::now();
      {
        std::lock_guard lock(mutex_);
        inbox_ = std::move(t);
      }
      wake_.notify_all();
    }
    if (Clock::now() - last_check >= std::chrono::seconds(1)) {
      keep_registered();
      last_check = Clock::now();
    }
    sweep_audit_events();
  }
}

// Audit events past the retention leave etcd by a range delete per organization (event ids
// grow with time), in the sender's own transactions, a hundred organizations at a time
// between writes. Leases alone are not enough: etcd 3.4 restarts every lease's TTL at a
// leader change unless it runs with --experimental-enable-lease-checkpoint
// (etcd-io/etcd#9395), so a 91-day lease may never run out. Only organizations that hold
// an expired event in this node's memory (which mirrors etcd) are swept; every node
// sweeps, and a range already empty costs etcd one index lookup.
void EtcdCommitter::sweep_audit_events() {
  const auto retention_ms = static_cast<uint64_t>(options_.audit_retention.count()) * 1000;
  const uint64_t now = core::now_ms();
  if (!retention_ms || now <= retention_ms) return;
  const uint64_t cutoff = now - retention_ms;
  if (sweep_.empty()) {
    // A quarter of the retention between sweeps, at least a second and at most an hour.
    const uint64_t every = std::clamp<uint64_t>(retention_ms / 4, 1'000, 3'600'000);
    if (now < next_sweep_ms_) return;
    next_sweep_ms_ = now + every;
    sweep_ = state_.index().audit().orgs_with_events_before(cutoff);
    sweep_cutoff_ms_ = cutoff;
    if (sweep_.empty()) return;
  }
  constexpr size_t kPerTxn = 100;  // etcd takes 128 operations in one transaction
  std::vector<Op> ops;
  while (!sweep_.empty() && ops.size() < kPerTxn) {
    const core::Id org = sweep_.back();
    sweep_.pop_back();
    Op del{Op::Kind::del, layout_.audit_events(org), {}};
    del.range_end = layout_.audit_event(org, core::Id{sweep_cutoff_ms_ << 16, 0});
    ops.push_back(std::move(del));
  }
  TxnResult r;
  std::string error;
  if (!client_.txn({}, ops, r, error)) {
    core::log(core::Level::warn, "cluster.audit_sweep_failed", {{"error", error}});
    sweep_.clear();  // the next sweep starts over
    next_sweep_ms_ = now + 10'000;
    return;
  }
  swept_orgs_.fetch_add(ops.size(), std::memory_order_relaxed);
  // The sweep is done: what it deleted leaves memory, and every page (the snapshot's events
  // too). The watch's deletion of a value names only the first of the events it held.
  if (sweep_.empty()) state_.index().audit().set_floor(sweep_cutoff_ms_);
}

void EtcdCommitter::send(Txn& t) {
  std::string error;
  int64_t lease = 0;
  for (Op& op : t.ops)
    if (op.lease == kAuditLease) {
      if (!lease && !(lease = audit_lease(error))) break;
      op.lease = lease;
    }
  txns_.fetch_add(1, std::memory_order_relaxed);
  if (error.empty()) t.sent = client_.txn(t.compares, t.ops, t.result, error);
  t.refused = !t.sent && client_.last_call_refused();
  t.error = std::move(error);
  if (!t.sent) {
    audit_lease_ = {-1, 0};  // perhaps etcd lost it: the next transaction takes a new one
    return;
  }
  contact_unix_ms_.store(static_cast<int64_t>(core::now_ms()), std::memory_order_relaxed);
  int64_t seen = store_revision_.load(std::memory_order_relaxed);
  while (seen < t.result.revision &&
         !store_revision_.compare_exchange_weak(seen, t.result.revision)) {
  }
}

int64_t EtcdCommitter::audit_lease(std::string& error) {
  const int64_t day = static_cast<int64_t>(core::now_ms() / 86'400'000);
  if (audit_lease_.first == day && audit_lease_.second) return audit_lease_.second;
  const int64_t lease = client_.lease_grant(options_.audit_retention.count() + 86'400, error);
  if (lease) audit_lease_ = {day, lease};
  return lease;
}

// The committer's thread, with the sender's answer: committed commands wait for the watch;
// a refusal for good splits the batch; a conflict holds back only its organizations.
void EtcdCommitter::finish(Txn& t) {
  in_flight_ = false;
  const TxnResult& r = t.result;
  if (!t.sent || r.succeeded) tokens_seen_.erase(t.token);
  if (t.refused) {
    // etcd refused the transaction itself (too large, say): nothing was committed. One
    // command alone gets its own answer; several are sent again one by one, so that the
    // others commit (a command is isolated from its batch).
    core::log(
        core::Level::warn,
        t.staged_by.size() == 1 ? "cluster.command_refused" : "cluster.batch_split",
        {{"commands", static_cast<unsigned long long>(t.staged_by.size())}, {"error", t.error}});
    if (t.staged_by.size() == 1) {
      core::Submission* s = t.staged_by.front().submission;
      s->outcome = {};
      s->outcome.error = core::make_error(
          core::ErrorCode::body_too_large,
          "The cluster's store (etcd) refused this change for good, so nothing was changed: " +
              t.error +
              ". Make it smaller (etcd takes at most its --max-request-bytes, 1.5 MiB "
              "by default, in one request).");
      s->done(s);
      return;
    }
    std::lock_guard lock(mutex_);
    for (auto it = t.staged_by.rbegin(); it != t.staged_by.rend(); ++it) {
      alone_.insert(it->submission);
      queue_.push_front(it->submission);
    }
    return;
  }
  if (!t.sent) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    core::log(core::Level::error, "cluster.txn_failed", {{"error", t.error}});
    for (Retry& p : t.staged_by) {
      p.submission->outcome = {};
      p.submission->outcome.error = outcome_unknown("no endpoint answered in time");
      p.submission->done(p.submission);
    }
    return;
  }
  if (r.succeeded) {
    // Answered once applied: now, when nothing came before it (apply_own()), else when the
    // watch delivers it (run()). Waiting first, so that a stop answers them either way.
    for (size_t i = 0; i < t.staged_by.size(); ++i)
      waiting_.push_back({t.staged_by[i].submission, std::move(t.outcomes[i]), r.revision});
    apply_own(t, r.revision);
    return;
  }
  // Another node changed an organization (or took a slug, or a hash) after our revision:
  // the commands of the organizations that conflicted catch up to the store's revision and
  // are decided again. The others are sent again at once, in a transaction of their own:
  // this one committed nothing (had an earlier attempt of it committed, every compare
  // would have failed, since it bumped every organization's version).
  conflicts_.fetch_add(1, std::memory_order_relaxed);
  std::set<core::Id> conflicted;
  for (size_t i = 0; i < r.failed.size(); ++i)
    if (r.failed[i]) conflicted.insert(t.compared_org[i]);
  std::vector<Retry> unaffected;
  for (size_t i = 0, record = 0; i < t.staged_by.size(); ++i) {
    bool hit = conflicted.empty();  // not known which: every command conflicted
    for (; record < t.staged_end[i]; ++record)
      hit = hit || conflicted.contains(t.staged_org[record]);
    if (hit)
      retries_.push_back({t.staged_by[i].submission, r.revision, t.staged_by[i].attempts + 1,
                          t.token, std::move(t.outcomes[i])});
    else
      unaffected.push_back({t.staged_by[i].submission, 0, t.staged_by[i].attempts});
  }
  if (std::none_of(retries_.begin(), retries_.end(),
                   [&](const Retry& x) { return x.token == t.token; }))
    tokens_seen_.erase(t.token);
  // Backoff: up to 2^attempts ms (64 at most), at random.
  int attempts = 0;
  for (const Retry& x : retries_) attempts = std::max(attempts, x.attempts);
  jitter_state_ ^= jitter_state_ << 13, jitter_state_ ^= jitter_state_ >> 7,
      jitter_state_ ^= jitter_state_ << 17;
  const uint64_t window = uint64_t{1} << std::min(attempts, 6);
  retry_after_ms_ = std::max(retry_after_ms_, core::now_ms() + jitter_state_ % (window + 1));
  if (!unaffected.empty()) {
    isolated_.fetch_add(unaffected.size(), std::memory_order_relaxed);
    execute(unaffected);
  }
}

}  // namespace keygate::cluster
