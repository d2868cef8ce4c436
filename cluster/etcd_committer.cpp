#include "cluster/etcd_committer.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <stdexcept>

#include "core/clock.hpp"
#include "core/json_writer.hpp"
#include "core/log.hpp"
#include "core/thread_name.hpp"
#include "persistence/codec.hpp"
#include "persistence/record.hpp"
#include "persistence/recovery.hpp"
#include "persistence/snapshot.hpp"

namespace keygate::cluster {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kMaxAttempts = 32;  // conflicts in a row before a write is given up (503)
constexpr int64_t kPage = 2'000;  // keys per range read while loading, at most
// Commands per transaction. etcd takes at most 128 operations in one (--max-txn-ops); a
// command stages one to three records (a rotation, an organization with its first key),
// each at most three operations with its index keys, plus one version key per organization.
constexpr size_t kBatch = 16;
constexpr size_t kMaxStagedRecords = 24;  // before another command is added (at most 11 more)
// Encoded bytes of staged records before another command is added: a transaction stays well
// under etcd's --max-request-bytes (1.5 MiB by default) with base64 and JSON around them,
// since one command stages at most ~100 KiB (a 64 KiB certificate, its event).
constexpr size_t kMaxStagedBytes = 512 * 1024;

core::Error outcome_unknown(const std::string& why) {
  return core::make_error(
      core::ErrorCode::storage_unavailable,
      "The cluster's store (etcd) did not confirm the change: " + why +
          ". It may have been made or not; read the resource before trying again. "
          "Verification still works.");
}

core::Error unavailable(const std::string& why) {
  return core::make_error(core::ErrorCode::storage_unavailable,
                          "The cluster's store (etcd) cannot take the change right now, so nothing "
                          "was changed: " +
                              why + ". Retry later; verification still works.");
}

// A read at a revision etcd has compacted: the load starts over at a newer one.
struct Compacted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void cannot_load(const std::string& error) {
  // etcd: "etcdserver: mvcc: required revision has been compacted"
  if (error.find("revision has been compacted") != std::string::npos) throw Compacted(error);
  throw std::runtime_error("cannot load the state from etcd: " + error);
}

}  // namespace

EtcdCommitter::EtcdCommitter(core::StateMachine& state, EtcdOptions options)
    : state_(state),
      options_(std::move(options)),
      layout_(options_.prefix),
      client_(options_.endpoints, options_.tls) {
  options_.prefix = layout_.prefix();
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

// Reads [from, to) as of `revision` into the state, in key order. etcd 3.4 walks the whole
// remainder of a range to count it even when a page is asked for, so paging through N keys
// a thousand at a time costs N^2 / 2000 index steps (226 s for 1 M keys, measured). Instead
// a range that holds more than a page is split at a key between its ends and each half is
// loaded in turn: N log N steps. `known` is the range's count, when already asked (-1: not).
void EtcdCommitter::load(const std::string& from, const std::string& to, int64_t revision,
                         int64_t known) {
  std::string error;
  int64_t count = known, store = 0;
  if (count < 0 && !client_.count(from, to, revision, count, store, error)) cannot_load(error);
  if (count == 0) return;
  const std::string mid = count > kPage ? midpoint(from, to) : std::string();
  if (mid.empty()) {
    RangeResult all;
    if (!client_.range(from, to, revision, 0, all, error)) cannot_load(error);
    {
      core::ReadSection rs;
      for (const KeyValue& kv : all.kvs) apply(kv, false);
    }
    loaded_records_ += all.kvs.size();
    answer_overdue();  // a reload while serving: writes still get their answer in time
    return;
  }
  int64_t left = 0;
  if (!client_.count(from, mid, revision, left, store, error)) cannot_load(error);
  load(from, mid, revision, left);
  load(mid, to, revision, count - left);
}

int64_t EtcdCommitter::load_all(bool replace) {
  std::set<std::pair<core::Id, core::Id>> seen;
  for (int attempt = 1;; ++attempt) {
    int64_t revision = 0, organizations = 0;
    std::string error;
    if (!client_.count(layout_.kind("org"), prefix_end(layout_.kind("org")), 0, organizations,
                       revision, error))
      throw std::runtime_error("cannot load the state from etcd: " + error);
    // A load started over has put records already: what it no longer finds goes.
    replace = replace || attempt > 1;
    seen.clear();
    seen_ = replace ? &seen : nullptr;
    try {
      // The whole state as of one revision. Organizations first, then what belongs to them
      // (a range is in key order, and "key/" sorts before "org/"): projects before the keys
      // that name them.
      for (const char* kind : {"org", "proj", "key", "cert", "audit", "ver"}) {
        const std::string from = layout_.kind(kind);
        load(from, prefix_end(from), revision, kind == std::string("org") ? organizations : -1);
      }
    } catch (const Compacted& e) {
      seen_ = nullptr;
      core::log(core::Level::warn, "cluster.load_restarted",
                {{"revision", static_cast<long long>(revision)},
                 {"attempt", static_cast<long long>(attempt)},
                 {"error", e.what()}});
      continue;
    }
    seen_ = nullptr;
    if (replace) {
      std::vector<std::pair<core::Id, core::Id>> gone_certs, gone_events;
      {
        core::ReadSection rs;
        for (const core::OrgSlot* o = state_.index().first_org(); o; o = o->next())
          if (const core::CertificateSet* set = o->certs())
            for (const auto& c : set->items)
              if (!seen.contains({o->id, c->id})) gone_certs.emplace_back(o->id, c->id);
      }
      state_.index().audit().for_each(0, [&](const core::AuditEvent& e) {
        if (!seen.contains({e.organization_id, e.id}))
          gone_events.emplace_back(e.organization_id, e.id);
      });
      for (const auto& [org, id] : gone_certs) state_.apply_certificate_deletion(org, id);
      for (const auto& [org, id] : gone_events) state_.index().audit().erase(org, id);
      core::log(core::Level::info, "cluster.reloaded",
                {{"revision", static_cast<long long>(revision)},
                 {"certificates_removed", static_cast<unsigned long long>(gone_certs.size())},
                 {"audit_events_removed", static_cast<unsigned long long>(gone_events.size())}});
    }
    return revision;
  }
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
  int64_t revision = resume_from_snapshot();
  resumed_ = revision > 0;
  if (!resumed_) {
    revision = load_all(false);
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
  // above may take longer per call (etcd 3.4 counts a range by walking it).
  client_.set_limits(1'000, std::max<long>(2'000, options_.write_timeout.count() - 1'500));
  watcher_ = std::thread([this] {
    core::name_thread("kg-etcd-watch");
    watch_loop();
  });
  thread_ = std::thread([this] {
    core::name_thread("kg-etcd-apply");
    run();
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
  if (freshness_) freshness_->stop();
  // The apply thread first: it restarts the watch thread after a reload (run()).
  const bool was_running = thread_.joinable();
  if (thread_.joinable()) thread_.join();
  if (watcher_.joinable()) watcher_.join();
  if (snapshotter_.joinable()) snapshotter_.join();
  // A clean stop leaves a snapshot of everything applied: the restart resumes from it.
  if (was_running && options_.data_dir && loaded_.load()) {
    core::RcuThread rcu;
    take_snapshot();
  }
}

namespace {
const char* kIdentityFile = "cluster.id";  // which etcd cluster and prefix the snapshots are of
}

// Writes snapshot-<revision + 1>.kgs of what is applied (persistence/FORMAT.md, "Snapshots":
// the walk may see later changes too, which the watch from revision + 1 applies again,
// harmlessly), then the identity of the cluster it belongs to.
void EtcdCommitter::take_snapshot() {
  const persistence::DataDir& dir = *options_.data_dir;
  const int64_t revision = applied_.load(std::memory_order_acquire);
  persistence::SnapshotInfo info;
  std::string error;
  if (!persistence::write_snapshot(dir, state_.index(), static_cast<uint64_t>(revision) + 1, 0,
                                   info, error)) {
    core::log(core::Level::error, "cluster.snapshot_failed", {{"error", error}});
    return;
  }
  persistence::remove_covered(dir, static_cast<uint64_t>(revision) + 1);
  const std::string tmp = dir.file(std::string(kIdentityFile) + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << cluster_id_ << ' ' << options_.prefix << '\n';
  }
  if (::rename(tmp.c_str(), dir.file(kIdentityFile).c_str()) != 0 || !dir.sync())
    core::log(core::Level::error, "cluster.snapshot_failed",
              {{"error", "cannot write " + dir.file(kIdentityFile)}});
  core::log(core::Level::info, "cluster.snapshot_written",
            {{"revision", static_cast<long long>(revision)},
             {"records", static_cast<unsigned long long>(info.records)},
             {"bytes", static_cast<unsigned long long>(info.bytes)},
             {"seconds", info.seconds}});
}

// The node's own snapshot, if it has one of this cluster whose revision etcd still holds
// the history after: loaded, with the organizations' versions as of its revision. Returns
// that revision, or 0 (and removes the snapshots) when the node must load in full.
int64_t EtcdCommitter::resume_from_snapshot() {
  if (!options_.data_dir) return 0;
  const persistence::DataDir& dir = *options_.data_dir;
  const auto listing = dir.list();
  if (listing.snapshots.empty()) return 0;
  auto discard = [&](const char* why) {
    core::log(core::Level::warn, "cluster.full_reload", {{"reason", why}});
    for (uint64_t s : listing.snapshots) ::unlink(dir.file(persistence::snapshot_name(s)).c_str());
    dir.sync();
    return int64_t{0};
  };
  std::string cluster, prefix;
  std::ifstream(dir.file(kIdentityFile)) >> cluster >> prefix;
  if (cluster != cluster_id_ || prefix != options_.prefix)
    return discard("the snapshot is of another etcd cluster or prefix");
  const auto revision = static_cast<int64_t>(listing.snapshots.back()) - 1;
  int64_t versions = 0, store = 0;
  std::string error;
  // The organizations' versions as of the snapshot: etcd refuses a revision it compacted.
  if (!client_.count(layout_.kind("ver"), prefix_end(layout_.kind("ver")), revision, versions,
                     store, error)) {
    if (error.find("compacted") != std::string::npos)
      return discard("etcd compacted the history after the snapshot");
    throw std::runtime_error("cannot reach etcd: " + error);
  }
  const auto t0 = Clock::now();
  const persistence::RecoveryReport rep =
      persistence::recover(dir, state_, persistence::RecoverMode::start);
  if (!rep.snapshot_loaded || static_cast<int64_t>(rep.snapshot_seq) - 1 != revision)
    throw std::runtime_error("the node's snapshot in " + dir.path() +
                             " cannot be read: remove its snapshot-*.kgs files to load in full");
  load(layout_.kind("ver"), prefix_end(layout_.kind("ver")), revision, versions);
  loaded_records_ = rep.snapshot_records;
  core::log(core::Level::info, "cluster.resumed",
            {{"revision", static_cast<long long>(revision)},
             {"records", static_cast<unsigned long long>(rep.snapshot_records)},
             {"seconds", std::chrono::duration<double>(Clock::now() - t0).count()}});
  return revision;
}

void EtcdCommitter::submit(core::Submission* s) {
  s->submitted_ms = core::now_ms();
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(s);
  }
  wake_.notify_all();
}

bool EtcdCommitter::writable() const noexcept {
  if (!loaded_.load(std::memory_order_acquire)) return false;
  if (applied_.load(std::memory_order_acquire) < catch_up_to_) return false;  // still catching up
  const int64_t since =
      static_cast<int64_t>(core::now_ms()) - contact_unix_ms_.load(std::memory_order_relaxed);
  return since <= options_.stale_after.count();
}

// The watch thread: one long stream of changes under the prefix, resumed after a break
// from the revision after the last one it delivered, on the next endpoint, with backoff.
void EtcdCommitter::watch_loop() {
  core::RcuThread rcu;
  EtcdClient client(options_.endpoints, options_.tls);
  auto backoff = std::chrono::milliseconds(50);
  const std::string from = options_.prefix + "/", to = prefix_end(from);
  auto running = [this] {
    std::lock_guard lock(mutex_);
    return !stopping_;
  };
  // Checked by the stream about once a second: a stop, or a member that hangs.
  auto keep_going = [&] { return running() && !move_watch_.load(std::memory_order_relaxed); };
  while (running()) {
    std::string error;
    const bool stopped = client.watch(
        from, to, watch_from_,
        [&](const WatchBatch& b) {
          backoff = std::chrono::milliseconds(50);
          contact_unix_ms_.store(static_cast<int64_t>(core::now_ms()), std::memory_order_relaxed);
          if (b.compact_revision || b.canceled) {
            std::lock_guard lock(mutex_);
            watch_error_ = b.compact_revision
                               ? "etcd compacted its history past revision " +
                                     std::to_string(watch_from_) + ", which this node's watch needs"
                               : "etcd canceled the watch";
            watch_compacted_ = b.compact_revision != 0;
            wake_.notify_all();
            return false;
          }
          for (const WatchEvent& e : b.events)
            watch_from_ = std::max(watch_from_, e.kv.mod_revision + 1);
          {
            std::lock_guard lock(mutex_);
            batches_.push_back(b);
          }
          wake_.notify_all();
          return true;
        },
        keep_going, error);
    {
      std::lock_guard lock(mutex_);
      if (!watch_error_.empty()) return;
    }
    if (move_watch_.exchange(false, std::memory_order_relaxed)) {
      // The freshness probe saw etcd move on while this stream said nothing: its member
      // hangs. Resume from the next revision on another member.
      core::log(
          core::Level::warn, "cluster.watch_moved",
          {{"from", client.endpoint()}, {"resume_from", static_cast<long long>(watch_from_)}});
      client.skip_endpoint();
      continue;
    }
    if (stopped) continue;
    core::log(core::Level::warn, "cluster.watch_lost",
              {{"error", error}, {"resume_from", static_cast<long long>(watch_from_)}});
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, backoff, [this] { return stopping_; });
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2'000));
  }
}

void EtcdCommitter::apply(const KeyValue& kv, bool deleted) {
  std::string_view k(kv.key);
  if (!k.starts_with(options_.prefix)) return;
  k.remove_prefix(options_.prefix.size());
  auto take = [&](std::string_view kind) {
    if (!k.starts_with(kind)) return false;
    k.remove_prefix(kind.size());
    return true;
  };
  auto bad = [&](const char* what) {
    throw std::runtime_error(std::string("etcd holds ") + what + " at " + kv.key +
                             " that this node cannot read");
  };
  if (take("/ver/")) {
    const auto org = core::parse_id(core::IdKind::organization, k);
    if (!org) bad("an organization version");
    if (deleted) {
      versions_.erase(*org);
      return;
    }
    versions_[*org] = kv.mod_revision;
    if (!refused_tokens_.empty())
      if (auto it = refused_tokens_.find(kv.value); it != refused_tokens_.end())
        it->second = kv.mod_revision;
    return;
  }
  // "<org_id>/<id>": the rest of a key of a kind that lives under its organization.
  core::Id org, id;
  auto org_and = [&](core::IdKind kind) {
    const size_t slash = k.find('/');
    const auto o = core::parse_id(core::IdKind::organization, k.substr(0, slash));
    const auto i =
        slash == std::string_view::npos ? std::nullopt : core::parse_id(kind, k.substr(slash + 1));
    if (o && i) org = *o, id = *i;
    return o && i;
  };
  if (deleted && take("/audit/")) {  // its lease expired: past the retention
    if (!org_and(core::IdKind::audit_event)) bad("an audit event key");
    state_.index().audit().erase(org, id);
    return;
  }
  if (deleted && take("/cert/")) {
    if (!org_and(core::IdKind::certificate)) bad("a certificate key");
    state_.apply_certificate_deletion(org, id);
    return;
  }
  // Other deletions are of index keys (an old slug); index keys and the nodes' registrations
  // carry no state of their own.
  if (deleted || k.starts_with("/slug/") || k.starts_with("/hash/") || k.starts_with("/nodes/") ||
      k == "/root")
    return;
  // An entity: its value is a record as the log writes it (FORMAT.md "Records").
  persistence::RecordView r;
  if (persistence::read_record(kv.value, 0, r) != persistence::ReadStatus::ok)
    bad("a damaged record");
  switch (r.type) {
    case persistence::RecordType::organization: {
      auto o = persistence::decode_organization(r.payload);
      if (!o) bad("an organization record");
      state_.apply(std::move(o));
      break;
    }
    case persistence::RecordType::api_key: {
      core::KeyHash hash;
      uint64_t last_used = 0;
      auto key = persistence::decode_api_key(r.payload, hash, last_used, r.version);
      // The index refuses a version that changes a key's hash, takes another key's, or
      // names no organization: one check, the one recovery uses.
      if (!key || !state_.try_apply(hash, std::move(key), 0)) bad("an API key record");
      break;
    }
    case persistence::RecordType::project: {
      auto p = persistence::decode_project(r.payload);
      if (!p || !state_.apply(std::move(p))) bad("a project record");
      break;
    }
    case persistence::RecordType::certificate: {
      auto c = persistence::decode_certificate(r.payload, r.version);
      if (!c || !state_.index().find_org(c->organization_id)) bad("a certificate record");
      if (seen_) seen_->emplace(c->organization_id, c->id);
      state_.apply(std::move(c));
      break;
    }
    case persistence::RecordType::audit_event: {
      auto e = persistence::decode_audit_event(r.payload);
      if (!e || !state_.index().find_org(e->organization_id)) bad("an audit event record");
      if (seen_) seen_->emplace(e->organization_id, e->id);
      state_.apply(std::move(*e));
      break;
    }
    default:
      bad("a record of an unknown type");
  }
}

void EtcdCommitter::apply(const WatchBatch& b) {
  core::ReadSection rs;  // find_org/accepts in apply() read the index
  for (const WatchEvent& e : b.events) {
    apply(e.kv, e.deleted);
    applied_.store(std::max(applied_.load(std::memory_order_relaxed), e.kv.mod_revision),
                   std::memory_order_release);
  }
  store_revision_.store(std::max(store_revision_.load(std::memory_order_relaxed), b.revision),
                        std::memory_order_relaxed);
}

// Executes commands against the state as of applied_, one after the other as the journal
// does (each sees what the earlier ones staged), and commits everything they staged in one
// transaction guarded by the versions of the organizations they touched: etcd's group
// commit. A conflict sends the whole batch back to be executed again once caught up.
void EtcdCommitter::execute(std::vector<Retry>& batch) {
  std::vector<Retry> staged_by;  // the commands whose changes are in this transaction
  std::vector<core::Outcome> outcomes;
  std::vector<size_t> staged_end;  // of each of them: the end of its records in staged()
  size_t staged_bytes = 0, measured = 0;
  auto measure = [&] {  // the encoded size of what the last command staged
    std::string payload, value;
    for (; measured < state_.staged().size(); ++measured) {
      persistence::append_staged(state_.staged()[measured], payload, value);
      staged_bytes += value.size();
      value.clear();
    }
  };
  for (size_t i = 0; i < batch.size(); ++i) {
    Retry& r = batch[i];
    measure();
    if (state_.staged().size() >= kMaxStagedRecords ||
        staged_bytes >= kMaxStagedBytes) {  // the rest go in the next transaction
      std::lock_guard lock(mutex_);
      for (size_t j = batch.size(); j > i; --j) queue_.push_front(batch[j - 1].submission);
      break;
    }
    core::Outcome out = state_.execute(r.submission->command, core::now_ms(), r.submission->actor,
                                       r.submission->authority);
    if (out.error) {  // refused: nothing staged, answered at once
      r.submission->outcome = std::move(out);
      r.submission->done(r.submission);
      continue;
    }
    staged_by.push_back(r);
    outcomes.push_back(std::move(out));
    staged_end.push_back(state_.staged().size());
  }
  batch.clear();
  if (staged_by.empty()) {
    state_.discard();
    return;
  }
  std::vector<Compare> compares;
  std::vector<core::Id> compared_org;  // whose change each compare guards
  std::vector<core::Id> staged_org;    // of each staged record
  // One operation per key (a transaction may not name a key twice), in the order staged:
  // the watch delivers them in this order, so an organization comes before its keys.
  std::vector<Op> list;
  auto set_op = [&](Op op) {
    for (Op& o : list)
      if (o.key == op.key) {
        o = std::move(op);
        return;
      }
    list.push_back(std::move(op));
  };
  std::set<core::Id> orgs;
  std::string payload;
  int64_t lease = 0;
  std::string lease_error;
  {
    core::ReadSection rs;
    for (const auto& st : state_.staged()) {
      std::string value;
      persistence::append_staged(st, payload, value);
      if (st.org) {
        staged_org.push_back(st.org->id);
        orgs.insert(st.org->id);
        const core::OrgSlot* current = state_.index().find_org(st.org->id);
        const std::string before = current ? current->load()->slug : std::string();
        if (st.org->slug != before) {  // a new organization, or a new slug: it must be free
          const std::string slug = layout_.slug(st.org->slug);
          compares.push_back({Compare::Target::create, slug, 0});
          compared_org.push_back(st.org->id);
          set_op({Op::Kind::put, slug, core::to_string(core::IdKind::organization, st.org->id)});
          if (!before.empty()) set_op({Op::Kind::del, layout_.slug(before), {}});
        }
        const std::string k = layout_.organization(st.org->id);
        set_op({Op::Kind::put, k, std::move(value)});
      } else if (st.key) {
        staged_org.push_back(st.key->organization_id);
        orgs.insert(st.key->organization_id);
        if (!state_.index().find_key(st.key->id)) {  // a new key: its hash must be no other key's
          const std::string h = layout_.hash(st.key_hash);
          compares.push_back({Compare::Target::create, h, 0});
          compared_org.push_back(st.key->organization_id);
          set_op({Op::Kind::put, h, core::to_string(core::IdKind::api_key, st.key->id)});
        }
        const std::string k = layout_.api_key(st.key->id);
        set_op({Op::Kind::put, k, std::move(value)});
      } else if (st.event) {
        // In the same transaction as the change it describes; etcd drops it with its lease.
        staged_org.push_back(st.event->organization_id);
        orgs.insert(st.event->organization_id);
        if (!lease) lease = audit_lease(lease_error);
        set_op({Op::Kind::put, layout_.audit_event(st.event->organization_id, st.event->id),
                std::move(value), lease});
      } else if (st.project) {
        staged_org.push_back(st.project->organization_id);
        orgs.insert(st.project->organization_id);
        set_op({Op::Kind::put, layout_.project(st.project->organization_id, st.project->id),
                std::move(value)});
      } else {
        staged_org.push_back(st.cert->organization_id);
        orgs.insert(st.cert->organization_id);
        const std::string k = layout_.certificate(st.cert->organization_id, st.cert->id);
        set_op(st.cert_deleted ? Op{Op::Kind::del, k, {}} : Op{Op::Kind::put, k, std::move(value)});
      }
    }
  }
  state_.discard();  // published by the watch, never here
  // The version keys carry this transaction's token: if an endpoint takes it but its answer
  // is lost, the client sends the same transaction to the next endpoint, whose compares
  // then fail; the token in the watch says the first one went through (see run()).
  const std::string token = core::to_string(core::IdKind::request, tokens_.next(core::now_ms()));
  for (const core::Id& org : orgs) {
    const std::string v = layout_.version(org);
    const auto it = versions_.find(org);
    compares.push_back({Compare::Target::mod, v, it == versions_.end() ? 0 : it->second});
    compared_org.push_back(org);
    set_op({Op::Kind::put, v, token});
  }

  TxnResult r;
  std::string error = lease_error;
  txns_.fetch_add(1, std::memory_order_relaxed);
  bool sent = false;
  if (lease_error.empty()) sent = client_.txn(compares, list, r, error);
  if (!sent && client_.last_call_refused()) {
    // etcd refused the transaction itself (too large, say): nothing was committed. One
    // command alone gets its own answer; several are sent again one by one, so that the
    // others commit (a command is isolated from its batch).
    core::log(core::Level::warn,
              staged_by.size() == 1 ? "cluster.command_refused" : "cluster.batch_split",
              {{"commands", static_cast<unsigned long long>(staged_by.size())}, {"error", error}});
    if (staged_by.size() == 1) {
      core::Submission* s = staged_by.front().submission;
      s->outcome = {};
      s->outcome.error = core::make_error(
          core::ErrorCode::body_too_large,
          "The cluster's store (etcd) refused this change for good, so nothing was changed: " +
              error +
              ". Make it smaller (etcd takes at most its --max-request-bytes, 1.5 MiB "
              "by default, in one request).");
      s->done(s);
      return;
    }
    std::lock_guard lock(mutex_);
    for (auto it = staged_by.rbegin(); it != staged_by.rend(); ++it) {
      alone_.insert(it->submission);
      queue_.push_front(it->submission);
    }
    return;
  }
  if (!sent) {
    audit_lease_ = {-1, 0};  // perhaps etcd lost it: the next transaction takes a new one
    failures_.fetch_add(1, std::memory_order_relaxed);
    core::log(core::Level::error, "cluster.txn_failed", {{"error", error}});
    for (Retry& p : staged_by) {
      p.submission->outcome = {};
      p.submission->outcome.error = outcome_unknown("no endpoint answered in time");
      p.submission->done(p.submission);
    }
    return;
  }
  contact_unix_ms_.store(static_cast<int64_t>(core::now_ms()), std::memory_order_relaxed);
  store_revision_.store(std::max(store_revision_.load(std::memory_order_relaxed), r.revision),
                        std::memory_order_relaxed);
  if (r.succeeded) {
    for (size_t i = 0; i < staged_by.size(); ++i)
      waiting_.push_back({staged_by[i].submission, std::move(outcomes[i]), r.revision});
    return;
  }
  // Another node changed an organization (or took a slug, or a hash) after our revision:
  // the commands of the organizations that conflicted catch up to the store's revision and
  // are decided again. The others are sent again at once, in a transaction of their own:
  // this one committed nothing (had an earlier attempt of it committed, every compare
  // would have failed, since it bumped every organization's version).
  conflicts_.fetch_add(1, std::memory_order_relaxed);
  refused_tokens_.emplace(token, 0);
  std::set<core::Id> conflicted;
  for (size_t i = 0; i < r.failed.size(); ++i)
    if (r.failed[i]) conflicted.insert(compared_org[i]);
  std::vector<Retry> unaffected;
  for (size_t i = 0, record = 0; i < staged_by.size(); ++i) {
    bool hit = conflicted.empty();  // not known which: every command conflicted
    for (; record < staged_end[i]; ++record) hit = hit || conflicted.contains(staged_org[record]);
    if (hit)
      retries_.push_back({staged_by[i].submission, r.revision, staged_by[i].attempts + 1, token,
                          std::move(outcomes[i])});
    else
      unaffected.push_back({staged_by[i].submission, 0, staged_by[i].attempts});
  }
  if (!unaffected.empty()) {
    isolated_.fetch_add(unaffected.size(), std::memory_order_relaxed);
    execute(unaffected);  // fewer commands than this call had: the recursion ends
  }
}

int64_t EtcdCommitter::audit_lease(std::string& error) {
  const int64_t day = static_cast<int64_t>(core::now_ms() / 86'400'000);
  if (audit_lease_.first == day && audit_lease_.second) return audit_lease_.second;
  const int64_t lease = client_.lease_grant(options_.audit_retention.count() + 86'400, error);
  if (lease) audit_lease_ = {day, lease};
  return lease;
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
  if (options_.advertise_url.empty()) return;
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
  std::string name = options_.advertise_url.substr(options_.advertise_url.find("://") + 3);
  std::string value;
  core::JsonWriter w(value);
  w.begin_object()
      .field("url", std::string_view(options_.advertise_url))
      .field("registered_unix_ms", core::now_ms())
      .end_object();
  TxnResult r;
  if (client_.txn({}, {Op{Op::Kind::put, layout_.node(name), value, lease}}, r, error)) {
    lease_ = lease;
    renewed_ = Clock::now();
  }
}

// run()'s answer to a watch that etcd compacted past: the whole state again, then a new
// watch from the revision it was read at. False when etcd could not be read (try again).
bool EtcdCommitter::reload() {
  core::log(core::Level::warn, "cluster.reload", {{"from", static_cast<long long>(watch_from_)}});
  if (watcher_.joinable()) watcher_.join();  // it ended when it saw the compaction
  int64_t revision = 0;
  client_.set_limits(5'000, 0);  // a load's calls may take long (etcd 3.4 counts by walking)
  try {
    revision = load_all(true);
  } catch (const std::runtime_error& e) {
    core::log(core::Level::error, "cluster.reload_failed", {{"error", e.what()}});
    revision = -1;
  }
  client_.set_limits(1'000, std::max<long>(2'000, options_.write_timeout.count() - 1'500));
  state_.index().reclaim();
  if (revision < 0) return false;  // the error stays set: the next turn tries again
  reloads_.fetch_add(1, std::memory_order_relaxed);
  applied_.store(std::max(applied_.load(std::memory_order_relaxed), revision),
                 std::memory_order_release);
  store_revision_.store(std::max(store_revision_.load(std::memory_order_relaxed), revision),
                        std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    watch_error_.clear();
    watch_compacted_ = false;
    batches_.clear();
  }
  watch_from_ = revision + 1;
  watcher_ = std::thread([this] {
    core::name_thread("kg-etcd-watch");
    watch_loop();
  });
  return true;
}

void EtcdCommitter::run() {
  core::RcuThread rcu;
  auto last_check = Clock::now(), last_snapshot = Clock::now();
  for (;;) {
    std::deque<WatchBatch> batches;
    std::vector<Retry> fresh;
    std::string fatal;
    bool watch_compacted = false;
    {
      std::unique_lock lock(mutex_);
      const bool can_retry = !retries_.empty() && retries_.front().catch_up_to <= applied_.load();
      wake_.wait_for(lock, std::chrono::milliseconds(250), [&] {
        return stopping_ || !batches_.empty() || !watch_error_.empty() || can_retry ||
               (waiting_.empty() && retries_.empty() && !queue_.empty());
      });
      if (stopping_) break;
      batches.swap(batches_);
      fatal = watch_error_;
      watch_compacted = watch_compacted_;
      // One transaction in flight at a time, carrying what queued meanwhile (up to
      // kBatch commands): the next is sent once the last is applied.
      while (waiting_.empty() && retries_.empty() && !queue_.empty() && fresh.size() < kBatch) {
        // A command of a batch etcd refused goes alone, to get an answer of its own.
        const bool alone = alone_.contains(queue_.front());
        if (alone && !fresh.empty()) break;
        alone_.erase(queue_.front());
        fresh.push_back({queue_.front()});
        queue_.pop_front();
        if (alone) break;
      }
    }
    if (!fatal.empty() && watch_compacted) {
      // The watch resumes from a revision etcd compacted (this node was cut off longer than
      // etcd keeps history): load everything again at the present revision and watch on
      // from there, instead of exiting into a restart that loads it anyway. Meanwhile the
      // node vouches for nothing: its applied revision stays behind the store's.
      {
        std::lock_guard lock(mutex_);
        for (auto it = fresh.rbegin(); it != fresh.rend(); ++it) queue_.push_front(it->submission);
      }
      if (!reload()) {
        std::unique_lock lock(mutex_);  // etcd is away: try again in a moment
        wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
      }
      answer_overdue();
      continue;
    }
    if (!fatal.empty()) {
      core::log(core::Level::error, "cluster.cannot_follow", {{"error", fatal}});
      if (options_.on_fatal) options_.on_fatal(fatal);
      loaded_.store(false, std::memory_order_release);  // not ready; writes refused
      for (auto it = fresh.rbegin(); it != fresh.rend(); ++it) queue_.push_front(it->submission);
      break;
    }
    try {
      for (const WatchBatch& b : batches) apply(b);
    } catch (const std::runtime_error& e) {
      // A change this node cannot apply: it cannot follow the cluster any longer.
      core::log(core::Level::error, "cluster.cannot_follow", {{"error", e.what()}});
      if (options_.on_fatal) options_.on_fatal(e.what());
      loaded_.store(false, std::memory_order_release);
      break;
    }
    if (!batches.empty()) state_.index().reclaim();
    state_.index().advance_clock(core::now_ms());

    const int64_t applied = applied_.load(std::memory_order_acquire);
    std::erase_if(waiting_, [&](Waiting& w) {
      if (w.revision > applied) return false;
      w.submission->outcome = std::move(w.outcome);
      w.submission->done(w.submission);
      return true;
    });
    if (!retries_.empty() && std::all_of(retries_.begin(), retries_.end(), [&](const Retry& r) {
          return r.catch_up_to <= applied;
        })) {
      // Caught up past every refusal: a refused transaction whose token was applied had been
      // committed by an earlier attempt, and its commands are answered as they were then;
      // the others are executed again on the new state.
      std::vector<Retry> again;
      for (Retry& r : retries_) {
        const auto it = refused_tokens_.find(r.token);
        if (it != refused_tokens_.end() && it->second > 0) {
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
      }
      retries_.clear();
      refused_tokens_.clear();
      execute(again);
    }
    if (!fresh.empty()) execute(fresh);
    if (options_.data_dir && Clock::now() - last_snapshot >= options_.snapshot_interval &&
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
    if (Clock::now() - last_check >= std::chrono::seconds(1)) {
      keep_registered();
      last_check = Clock::now();
    }
  }
  // Whatever is still waiting gets an answer: nothing more will be applied here.
  std::lock_guard lock(mutex_);
  for (Waiting& w : waiting_) {
    w.submission->outcome = {};
    w.submission->outcome.error = unavailable("the node is stopping");
    w.submission->done(w.submission);
  }
  for (Retry& r : retries_) {
    r.submission->outcome = {};
    r.submission->outcome.error = unavailable("the node is stopping");
    r.submission->done(r.submission);
  }
  for (core::Submission* s : queue_) {
    s->outcome = {};
    s->outcome.error = unavailable("the node is stopping");
    s->done(s);
  }
  waiting_.clear();
  retries_.clear();
  queue_.clear();
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
  core::appendf(
      out,
      "# HELP keygate_cluster_failures_total Transactions no etcd endpoint answered.\n"
      "# TYPE keygate_cluster_failures_total counter\nkeygate_cluster_failures_total %llu\n",
      static_cast<unsigned long long>(failures_.load(std::memory_order_relaxed)));
  core::appendf(
      out,
      "# HELP keygate_cluster_reloads_total Times the node loaded the whole state again "
      "because etcd had compacted the history its watch needed.\n"
      "# TYPE keygate_cluster_reloads_total counter\nkeygate_cluster_reloads_total %llu\n",
      static_cast<unsigned long long>(reloads_.load(std::memory_order_relaxed)));
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
