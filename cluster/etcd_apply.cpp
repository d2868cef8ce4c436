// EtcdCommitter's read side: the whole state loaded from etcd (at start, from the node's own
// snapshot or in full, and again in place when the watch falls behind a compaction), the
// watch stream that follows it, applying what it delivers, and the node's snapshots. All
// of it on the committer's thread, but for the watch thread (watch_loop()) and the
// snapshot thread (take_snapshot()).
#include <fcntl.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>

#include "cluster/etcd_committer.hpp"
#include "cluster/peer_snapshot.hpp"
#include "core/clock.hpp"
#include "core/log.hpp"
#include "core/thread_name.hpp"
#include "persistence/codec.hpp"
#include "persistence/data_dir.hpp"
#include "persistence/record.hpp"
#include "persistence/recovery.hpp"
#include "persistence/snapshot.hpp"

namespace keygate::cluster {

namespace {

constexpr int64_t kPage = 2'000;  // keys per range read while loading, at most

// A read at a revision etcd has compacted: the load starts over at a newer one.
struct Compacted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void cannot_load(const std::string& error) {
  // etcd: "etcdserver: mvcc: required revision has been compacted"
  if (error.find("revision has been compacted") != std::string::npos) throw Compacted(error);
  throw std::runtime_error("cannot load the state from etcd: " + error);
}

using Clock = std::chrono::steady_clock;

}  // namespace

// Reads [from, to) as of `revision` into the state, in key order. etcd 3.4 walks the whole
// remainder of a range to count it even when a page is asked for, so paging through N keys
// a thousand at a time costs N^2 / 2000 index steps (226 s for 1 M keys, measured). Instead
// a range that holds more than a page is split at a key between its ends and each half is
// loaded in turn: N log N steps. `known` is the range's count, when already asked (-1: not).
void EtcdCommitter::load(EtcdClient& client, const std::string& from, const std::string& to,
                         int64_t revision, int64_t known) {
  std::string error;
  int64_t count = known, store = 0;
  if (count < 0 && !client.count(from, to, revision, count, store, error)) cannot_load(error);
  if (count == 0) return;
  const std::string mid = count > kPage ? midpoint(from, to) : std::string();
  if (mid.empty()) {
    RangeResult all;
    if (!client.range(from, to, revision, 0, all, error)) cannot_load(error);
    {
      core::ReadSection rs;
      for (const KeyValue& kv : all.kvs) apply(kv, false);
    }
    loaded_records_ += all.kvs.size();
    answer_overdue();  // a reload while serving: writes still get their answer in time
    return;
  }
  int64_t left = 0;
  if (!client.count(from, mid, revision, left, store, error)) cannot_load(error);
  load(client, from, mid, revision, left);
  load(client, mid, to, revision, count - left);
}

int64_t EtcdCommitter::load_all(EtcdClient& client, bool replace) {
  std::set<std::pair<core::Id, core::Id>> seen;
  for (int attempt = 1;; ++attempt) {
    int64_t revision = 0, organizations = 0;
    std::string error;
    if (!client.count(layout_.kind("org"), prefix_end(layout_.kind("org")), 0, organizations,
                      revision, error))
      throw std::runtime_error("cannot load the state from etcd: " + error);
    // A load started over has put records already: what it no longer finds goes.
    replace = replace || attempt > 1;
    seen.clear();
    nodes_.clear();  // the load names every registration again
    seen_ = replace ? &seen : nullptr;
    struct Forget {  // seen_ never outlives `seen`, whatever the load throws
      std::set<std::pair<core::Id, core::Id>>*& pointer;
      ~Forget() { pointer = nullptr; }
    } forget{seen_};
    try {
      // The whole state as of one revision. Organizations first, then what belongs to them
      // (a range is in key order, and "key/" sorts before "org/"): projects before the keys
      // that name them.
      // API keys in two parts: the records under their hash first, then those of the
      // earlier form (Layout::earlier_api_key()), which replace them. A key in both forms
      // was last written by a node of an earlier release (a node of this one deletes the
      // earlier form with every write of the key), so the earlier form is the newer;
      // an earlier release's own load reads them in that order too ('#' sorts first).
      const std::string keys = layout_.kind("key");
      const std::vector<std::pair<std::string, std::string>> ranges = {
          {layout_.kind("org"), prefix_end(layout_.kind("org"))},
          {layout_.kind("proj"), prefix_end(layout_.kind("proj"))},
          {layout_.api_keys(), layout_.api_keys_end()},
          {keys, layout_.api_keys()},
          {layout_.api_keys_end(), prefix_end(keys)},
          {layout_.kind("cert"), prefix_end(layout_.kind("cert"))},
          {layout_.kind("audit"), prefix_end(layout_.kind("audit"))},
          {layout_.kind("ver"), prefix_end(layout_.kind("ver"))},
          {layout_.kind("nodes"), prefix_end(layout_.kind("nodes"))}};
      for (const auto& [from, to] : ranges) {
        int64_t known = from == layout_.kind("org") ? organizations : -1;
        // A node's first load puts the keys into the key tables as recovery puts a
        // snapshot's (Index::BulkLoad::snapshot): the tables sized once from the count,
        // filled in one pass at the end, no lookup per key. That needs each key once: those
        // under their hash (etcd holds each hash once, and a key keeps its hash), or those
        // of the earlier form when there were none (a store not yet written by this
        // release); any other keys go in one at a time, the earlier form replacing.
        const bool bulk = from.starts_with(keys) && !replace && state_.index().key_count() == 0;
        if (bulk) {
          int64_t store = 0;
          if (!client.count(from, to, revision, known, store, error)) cannot_load(error);
          state_.index().begin_bulk_load(core::Index::BulkLoad::snapshot,
                                         static_cast<size_t>(known));
        }
        try {
          load(client, from, to, revision, known);
        } catch (...) {
          if (bulk) state_.index().end_bulk_load();
          throw;
        }
        if (bulk && !state_.index().end_bulk_load())
          throw std::runtime_error("cannot load the state from etcd: two API keys under " + from +
                                   " have the same id or value hash");
      }
      // Read by their hashes, the keys were appended to their organizations' lists out of
      // id order, in which pages list them (end_bulk_load() did the same for its part).
      state_.index().restore_key_order();
    } catch (const Compacted& e) {
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
      try {
        state_.index().audit().for_each(0, [&](const core::AuditEvent& e, bool) {
          if (!seen.contains({e.organization_id, e.id}))
            gone_events.emplace_back(e.organization_id, e.id);
        });
      } catch (const std::runtime_error& e) {  // the snapshot's events: the next one drops them
        core::log(core::Level::error, "audit.unreadable", {{"error", e.what()}});
      }
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
  // Events past the retention are left out, as etcd drops them: those the snapshot holds
  // are read from it (core/audit.hpp), and a deletion the watch brings reaches memory only.
  const uint64_t retention_ms = static_cast<uint64_t>(options_.audit_retention.count()) * 1000;
  const uint64_t now = core::now_ms();
  const uint64_t cutoff = retention_ms && now > retention_ms ? now - retention_ms : 0;
  if (!persistence::write_snapshot(dir, state_.index(), static_cast<uint64_t>(revision) + 1, cutoff,
                                   info, error)) {
    core::log(core::Level::error, "cluster.snapshot_failed", {{"error", error}});
    return;
  }
  persistence::publish_audit(state_.index(), info);
  persistence::remove_covered(dir, static_cast<uint64_t>(revision) + 1);
  write_identity();
  core::log(core::Level::info, "cluster.snapshot_written",
            {{"revision", static_cast<long long>(revision)},
             {"records", static_cast<unsigned long long>(info.records)},
             {"bytes", static_cast<unsigned long long>(info.bytes)},
             {"seconds", info.seconds}});
}

// cluster.id: which etcd cluster and prefix the data directory's snapshots are of.
void EtcdCommitter::write_identity() const {
  const persistence::DataDir& dir = *options_.data_dir;
  const std::string tmp = dir.file(std::string(kIdentityFile) + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << cluster_id_ << ' ' << options_.prefix << '\n';
  }
  if (::rename(tmp.c_str(), dir.file(kIdentityFile).c_str()) != 0 || !dir.sync())
    core::log(core::Level::error, "cluster.snapshot_failed",
              {{"error", "cannot write " + dir.file(kIdentityFile)}});
}

// A node with no snapshot of this cluster asks the registered nodes, in random order, for
// theirs (cluster/peer_snapshot.hpp). Whatever fails (no peer, a peer that refuses, hangs or
// sends a damaged file) is logged and the next is asked; with none left the node loads
// from etcd. What was installed is then resumed from by resume_from_snapshot(), which also
// falls back to the full load when etcd has compacted the history after it.
bool EtcdCommitter::join_from_peer() {
  if (!options_.join_from_peer || !options_.data_dir || options_.root_key.empty()) return false;
  const persistence::DataDir& dir = *options_.data_dir;
  for (uint64_t s : dir.list().snapshots)  // of another cluster: never mixed with a peer's
    ::unlink(dir.file(persistence::snapshot_name(s)).c_str());
  RangeResult nodes;
  std::string error;
  const std::string from = layout_.kind("nodes");
  if (!client_.range(from, prefix_end(from), 0, 0, nodes, error)) {
    core::log(core::Level::warn, "cluster.peer_snapshot_failed", {{"error", error}});
    return false;
  }
  std::vector<std::string> peers;
  simdjson::dom::parser parser;
  for (const KeyValue& kv : nodes.kvs) {
    const std::string_view name = std::string_view(kv.key).substr(from.size());
    if (name.starts_with("fence-") || name == self_) continue;
    simdjson::dom::element doc;
    std::string_view url;
    if (parser.parse(kv.value).get(doc) != simdjson::SUCCESS) continue;
    if (doc["admin_url"].get(url) != simdjson::SUCCESS && doc["url"].get(url) != simdjson::SUCCESS)
      continue;
    if (url.starts_with("http://") || url.starts_with("https://")) peers.emplace_back(url);
  }
  if (peers.empty()) {
    core::log(core::Level::info, "cluster.no_peer",
              {{"note", "no other node is registered: loading everything from etcd"}});
    return false;
  }
  std::shuffle(peers.begin(), peers.end(), std::mt19937_64(std::random_device()()));
  PeerSnapshotRequest request;
  request.root_key = options_.root_key;
  request.ca_file = options_.peer_ca;
  request.identity = cluster_id_ + " " + options_.prefix;
  for (const std::string& peer : peers) {
    request.base_url = peer;
    PeerSnapshot got;
    if (!fetch_peer_snapshot(request, dir, got, error)) {
      core::log(core::Level::warn, "cluster.peer_snapshot_failed",
                {{"peer", peer}, {"error", error}});
      continue;
    }
    write_identity();
    core::log(core::Level::info, "cluster.peer_snapshot",
              {{"peer", peer},
               {"revision", static_cast<long long>(got.revision)},
               {"bytes", static_cast<unsigned long long>(got.bytes)},
               {"seconds", got.seconds}});
    return true;
  }
  return false;
}

bool EtcdCommitter::snapshot_for_peer(int& fd, uint64_t& size, int64_t& revision,
                                      std::string& identity, std::string& why) {
  if (!options_.data_dir) {
    why = "this node keeps no snapshots";
    return false;
  }
  const persistence::DataDir& dir = *options_.data_dir;
  for (int attempt = 0; attempt < 3; ++attempt) {  // a newer snapshot may remove the newest
    const auto listing = dir.list();
    if (listing.snapshots.empty()) break;
    const uint64_t seq = listing.snapshots.back();
    // Open, it stays readable whole even when a newer snapshot removes it meanwhile.
    fd = ::open(dir.file(persistence::snapshot_name(seq)).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      fd = -1;
      continue;
    }
    size = static_cast<uint64_t>(st.st_size);
    revision = static_cast<int64_t>(seq) - 1;
    identity = cluster_id_ + " " + options_.prefix;
    return true;
  }
  why = "this node has written no snapshot yet";
  return false;
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
  load(client_, layout_.kind("ver"), prefix_end(layout_.kind("ver")), revision, versions);
  nodes_.clear();  // registrations are renewed without a change the watch would bring
  load(client_, layout_.kind("nodes"), prefix_end(layout_.kind("nodes")), revision, -1);
  loaded_records_ = rep.snapshot_records;
  core::log(core::Level::info, "cluster.resumed",
            {{"revision", static_cast<long long>(revision)},
             {"records", static_cast<unsigned long long>(rep.snapshot_records)},
             {"seconds", std::chrono::duration<double>(Clock::now() - t0).count()}});
  return revision;
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
  // Checked by the stream about once a second: a stop, a member that hangs, or a new leader
  // (find_leader_loop()): the stream follows the leader, whose events come without a
  // follower's delay, and a write is answered when the watch delivers it.
  int leader = -1;
  auto keep_going = [&] {
    return running() && !move_watch_.load(std::memory_order_relaxed) &&
           leader_endpoint_.load(std::memory_order_relaxed) == leader;
  };
  while (running()) {
    if (const int found = leader_endpoint_.load(std::memory_order_relaxed); found != leader) {
      leader = found;
      const std::string before = client.endpoint();
      client.prefer_endpoint(static_cast<size_t>(found));
      if (client.endpoint() != before)
        core::log(core::Level::info, "cluster.watch_follows_leader",
                  {{"from", before},
                   {"to", client.endpoint()},
                   {"resume_from", static_cast<long long>(watch_from_)}});
    }
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
    if (!tokens_seen_.empty())
      if (auto it = tokens_seen_.find(kv.value); it != tokens_seen_.end())
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
  if (deleted && take("/audit/")) {  // its lease expired, or a sweep: past the retention
    // The key names the first of the events its value held; the others, as old, leave
    // memory and pages when this node's own sweep is done (sweep_audit_events()).
    if (!org_and(core::IdKind::audit_event)) bad("an audit event key");
    state_.index().audit().erase(org, id);
    return;
  }
  if (deleted && take("/cert/")) {
    if (!org_and(core::IdKind::certificate)) bad("a certificate key");
    state_.apply_certificate_deletion(org, id);
    return;
  }
  if (take("/nodes/")) {  // a registration came or its lease ran out
    note_node(k, deleted);
    return;
  }
  // Other deletions are of index keys (an old slug), which carry no state of their own, or
  // of an API key's record of the earlier form, moved under its hash by the same
  // transaction (Layout::earlier_api_key()).
  if (deleted || k.starts_with("/slug/") || k.starts_with("/hash/") || k == "/root") return;
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
    case persistence::RecordType::audit_event:
      // An organization's events of one transaction, one after the other (etcd_txn.cpp).
      for (size_t at = r.size;;) {
        auto e = persistence::decode_audit_event(r.payload);
        if (!e || !state_.index().find_org(e->organization_id)) bad("an audit event record");
        if (seen_) seen_->emplace(e->organization_id, e->id);
        state_.apply(std::move(*e));
        const persistence::ReadStatus next = persistence::read_record(kv.value, at, r);
        if (next == persistence::ReadStatus::end) break;
        if (next != persistence::ReadStatus::ok || r.type != persistence::RecordType::audit_event)
          bad("a damaged audit event record");
        at += r.size;
      }
      break;
    default:
      bad("a record of an unknown type");
  }
}

void EtcdCommitter::note_node(std::string_view name, bool deleted) {
  if (name.starts_with("fence-")) return;  // a freshness fence (cluster/freshness.hpp), no node
  if (deleted)
    nodes_.erase(std::string(name));
  else
    nodes_.emplace(name);
  const auto n = static_cast<uint32_t>(nodes_.size() + (nodes_.contains(self_) ? 0 : 1));
  if (live_nodes_.exchange(n, std::memory_order_relaxed) != n)
    core::log(core::Level::info, "cluster.nodes",
              {{"nodes", static_cast<unsigned long long>(n)},
               {"note", "each enforces 1/n of every rate limit"}});
}

void EtcdCommitter::apply(const WatchBatch& b) {
  core::ReadSection rs;  // find_org/accepts in apply() read the index
  // A revision applied already is this node's own transaction, applied from its answer
  // (apply_own()). etcd sends a revision's events in one response (it splits a batch only
  // between revisions, and keygate never asks for fragments), so a revision is skipped
  // whole or applied whole.
  const int64_t done = applied_.load(std::memory_order_relaxed);
  for (const WatchEvent& e : b.events) {
    if (e.kv.mod_revision <= done) continue;
    apply(e.kv, e.deleted);
    applied_.store(std::max(applied_.load(std::memory_order_relaxed), e.kv.mod_revision),
                   std::memory_order_release);
  }
  store_revision_.store(std::max(store_revision_.load(std::memory_order_relaxed), b.revision),
                        std::memory_order_relaxed);
}

// A transaction's answer usually comes back before the watch brings its revision, and
// with one transaction in flight the next one waited for the watch (perf/RESULTS.md,
// "ninth pass": +11 % writes/s on one member without that wait). When the revision etcd
// committed it at directly follows the one applied here, nothing else came between, and
// the transaction's events are exactly its puts, in order, each at that revision (apply()
// reads no other field of an event): so they are applied now, and the watch's copy is
// passed over (apply(WatchBatch)). Otherwise (another node's change came first and the
// watch has not delivered it) the writers wait for the watch, as everyone's changes always
// do on the other nodes. A deletion that may change state (a certificate's, an audit
// event's: etcd sends an event only for a key that was there) also leaves it to the watch;
// a slug's, and an API key's record of the earlier form (moved, in the same transaction),
// change nothing here. A transaction of deletions alone might not have made a revision at
// all, so it needs a put.
bool EtcdCommitter::apply_own(Txn& t, int64_t revision) {
  if (revision != applied_.load(std::memory_order_relaxed) + 1) return false;
  const std::string slugs = layout_.kind("slug"), keys = layout_.kind("key");
  bool put = false;
  for (const Op& op : t.ops)
    if (op.kind == Op::Kind::put)
      put = true;
    else if (!op.range_end.empty() || !(op.key.starts_with(slugs) || op.key.starts_with(keys)))
      return false;
  if (!put) return false;
  core::ReadSection rs;
  KeyValue kv;
  kv.mod_revision = revision;
  for (Op& op : t.ops) {
    if (op.kind != Op::Kind::put) continue;
    kv.key = std::move(op.key);  // the transaction is done with them
    kv.value = std::move(op.value);
    apply(kv, false);
  }
  applied_.store(revision, std::memory_order_release);
  store_revision_.store(std::max(store_revision_.load(std::memory_order_relaxed), revision),
                        std::memory_order_relaxed);
  applied_own_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// run()'s answer to a watch that etcd compacted past: the whole state again, then a new
// watch from the revision it was read at. False when etcd could not be read (try again).
bool EtcdCommitter::reload() {
  core::log(core::Level::warn, "cluster.reload", {{"from", static_cast<long long>(watch_from_)}});
  if (watcher_.joinable()) watcher_.join();  // it ended when it saw the compaction
  int64_t revision = 0;
  // A client of its own (client_ is the sender's), whose calls may take long: etcd 3.4
  // counts a range by walking it.
  // Not kLoadCallMs: this thread answers overdue writes between calls (answer_overdue()),
  // so a call here may take no longer than a write may wait.
  EtcdClient client(options_.endpoints, options_.tls);
  client.set_limits(5'000, 0);
  try {
    revision = load_all(client, true);
  } catch (const std::runtime_error& e) {
    core::log(core::Level::error, "cluster.reload_failed", {{"error", e.what()}});
    revision = -1;
  }
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

}  // namespace keygate::cluster
