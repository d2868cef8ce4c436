// EtcdCommitter: cluster mode's core::Committer. etcd is the one source of truth; every node
// keeps the whole state in its own index, fed only by etcd's watch stream, in revision
// order, so verification never talks to etcd (cluster/README.md has the data layout).
//
// A write: the node executes the command against its state as of applied revision R,
// encodes the records it staged as the log would, and commits them in one etcd transaction
// that succeeds only if nothing it relied on changed since R: the organization's version
// key (every change in an organization compares and bumps it, so the invariants that span
// an organization, such as 50 certificates at most, hold across nodes), and the index keys
// that carry uniqueness (a slug, a key's hash) must not exist yet. Nothing is published at
// commit: the change becomes visible when a node applies its revision, in revision order,
// from the watch (the writer from etcd's answer when that revision directly follows the
// one it applied: apply_own()), and the client is answered only after the writing node
// has applied it (read-your-writes on that node). A failed compare means another node got there
// first: the node catches up to the store's revision and executes again, so a real conflict gets
// the single node's error (409 slug_taken, ...).
//
// Threads: submit(), writable() and write_metrics() from any thread. The committer's own
// thread owns the StateMachine: it applies the watch, executes commands and answers them,
// and makes no blocking call to etcd (a hung member must not hold up revocations). The
// watch thread reads the stream; the sender thread sends transactions, one at a time, and
// keeps the node's registration; the freshness thread probes etcd's present.
//
// Source files, by concern: etcd_committer.cpp (lifecycle, the committer's loop, deadlines,
// metrics), etcd_apply.cpp (loading, the watch, applying, snapshots), etcd_txn.cpp (the
// write path: batch to transaction, sending, answering).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cluster/etcd_client.hpp"
#include "cluster/freshness.hpp"
#include "cluster/layout.hpp"
#include "cluster/store_health.hpp"
#include "core/committer.hpp"
#include "core/state_machine.hpp"
#include "persistence/data_dir.hpp"

namespace keygate::cluster {

// How long one call of a load (a count or a page of a range) may take on one member. etcd
// 3.4 counts a range by walking it: ~0.4-0.5 us a key here, so the whole key range of a
// 10 M-key cluster takes 3.5-4.7 s on a quiet member and more on a busy one, past the 5 s
// that suits every other call (a first node at 10 M keys refused to start at 5 s). A
// member that hangs during a load costs this long before the next one is tried. For a
// node's first load only: nothing waits on it (the node is not ready, writes are refused);
// a reload while serving keeps 5 s, since writes wait on the thread that loads.
inline constexpr long kLoadCallMs = 30'000;

struct EtcdOptions {
  std::vector<std::string> endpoints;  // "http://host:port" or "https://..."
  EtcdTls tls;
  std::string prefix = "/keygate";  // every key keygate writes starts with it
  std::chrono::milliseconds stale_after{5'000};
  // The node vouches for keys only while it can show it is within this much of etcd's
  // present (cluster/freshness.hpp); beyond, verification answers 503 NODE_STALE.
  std::chrono::milliseconds max_staleness{1'000};
  // Every write is answered within this much (503 when its outcome is not known by then).
  std::chrono::milliseconds write_timeout{5'000};
  // etcd's --max-txn-ops (128 by default): a transaction carries as many commands as fit,
  // counted in operations and compares (etcd_txn.cpp).
  size_t max_txn_ops = 128;
  // etcd's --quota-backend-bytes, when etcd does not report it (3.4): 80 % is warned about.
  int64_t etcd_quota_bytes = int64_t{2} << 30;
  // Where other nodes and `keygate cluster status` reach this node ("http://host:port"):
  // registered under <prefix>/nodes/ with a lease, so a node that dies leaves the list
  // within the lease's 10 s. Empty: not registered.
  std::string advertise_url;
  // Its management listener's, when it has one (--admin-listen): where a joining node asks
  // for this node's snapshot. Registered beside advertise_url.
  std::string admin_url;
  // A node with no snapshot of its own starts from a peer's (fetched with the root key,
  // checked) instead of reading everything from etcd; false: always from etcd.
  bool join_from_peer = true;
  std::string root_key;  // presented to a peer for its snapshot
  std::string peer_ca;   // an https peer's CA (empty: the system's)
  // The node's data directory: it keeps a snapshot of what the node applied, with its
  // revision (every snapshot_interval and at a clean stop), so that a restart loads it and
  // resumes the watch from there instead of reading everything from etcd again. Null: no
  // snapshots, every start loads in full.
  const persistence::DataDir* data_dir = nullptr;
  std::chrono::seconds snapshot_interval{300};
  // A snapshot is also taken when memory holds this many bytes of audit events: the node
  // reads older ones from its snapshot (core/audit.hpp). --audit-memory-bytes.
  size_t audit_memory_bytes = size_t{128} << 20;
  // Audit events are put with a lease of this much plus a day (one lease per UTC day), so
  // etcd drops them after it (--audit-retention). 0: no events are recorded.
  std::chrono::seconds audit_retention{90 * 86'400};
  // Called on the committer's thread when this node cannot go on from its state: etcd has
  // compacted the history its watch needs. main.cpp ends the process there, and the
  // restart loads the whole state again.
  std::function<void(const std::string& why)> on_fatal;
};

class EtcdCommitter final : public core::Committer {
 public:
  EtcdCommitter(core::StateMachine& state, EtcdOptions options);
  ~EtcdCommitter() override;
  EtcdCommitter(const EtcdCommitter&) = delete;
  EtcdCommitter& operator=(const EtcdCommitter&) = delete;

  // Registers the cluster's root key (its hash, stored once; a node with another root key
  // is refused), loads the whole state at one revision with paged range reads, then
  // starts watching from the next revision. Throws std::runtime_error when etcd cannot be
  // reached or holds what this node cannot read.
  void start(const core::KeyHash& root_key_hash);
  void stop();

  void submit(core::Submission* s) override;
  bool writable() const noexcept override;
  void write_metrics(std::string& out) const override;

  int64_t applied_revision() const noexcept { return applied_.load(std::memory_order_acquire); }
  // Unix ms until which this node may vouch for keys (read by every verification).
  const std::atomic<uint64_t>& vouch_until() const noexcept { return freshness_->vouch_until(); }
  // How many nodes are registered under <prefix>/nodes/, this one always among them: each
  // enforces its fair share of every rate limit (core/rate_limit.hpp). Any thread.
  const std::atomic<uint32_t>& live_nodes() const noexcept { return live_nodes_; }
  // Waits until the node has shown it is fresh (after a start that resumed from its own
  // snapshot and is catching up); whether it did within `within`.
  bool wait_until_vouching(std::chrono::milliseconds within) {
    return freshness_->wait_until_vouching(within);
  }
  uint64_t loaded_records() const noexcept { return loaded_records_; }
  double load_seconds() const noexcept { return load_seconds_; }
  bool resumed() const noexcept { return resumed_; }  // from a snapshot, its own or a peer's
  // How the node started: "own_snapshot", "peer_snapshot" or "etcd" (a full load).
  const char* start_mode() const noexcept { return start_mode_; }

  // GET /v1/cluster/snapshot, for a node that joins: this node's newest snapshot, open
  // (`fd`, the caller's to close, and its `size`: it is sent a chunk at a time, never read
  // whole), the revision it holds everything up to, and "<etcd cluster id> <prefix>";
  // false with `why` when there is none yet. Any thread.
  bool snapshot_for_peer(int& fd, uint64_t& size, int64_t& revision, std::string& identity,
                         std::string& why);

 private:
  struct Waiting {
    core::Submission* submission;
    core::Outcome outcome;
    int64_t revision;  // answered once applied_ reaches it
  };
  struct Retry {
    core::Submission* submission;
    int64_t catch_up_to = 0;  // executed again once applied_ reaches it
    int attempts = 0;
    // Of the refused transaction: its token, and what the command answered then. If the
    // refusal was of a transaction that an earlier attempt (on another endpoint) had
    // already committed, the token shows up in the watch and this is the answer.
    std::string token;
    core::Outcome outcome;
  };
  // A transaction: built on the committer's thread (execute()), sent on the sender's
  // (send()), answered on the committer's (finish()). One is in flight at a time.
  struct Txn {
    std::vector<Compare> compares;
    std::vector<core::Id> compared_org;  // whose change each compare guards
    std::vector<Op> ops;
    std::string token;                    // the value of the version keys it bumps
    std::vector<Retry> staged_by;         // the commands whose changes it carries
    std::vector<core::Outcome> outcomes;  // what each answers once committed
    std::vector<size_t> staged_end;       // of each: the end of its records in staged_org
    std::vector<core::Id> staged_org;     // of each record staged
    // The sender's result.
    bool sent = false, refused = false;  // refused: by etcd for good (HTTP 400)
    TxnResult result;
    std::string error;
    std::chrono::steady_clock::time_point answered;  // when the sender had etcd's answer
  };

  // etcd_apply.cpp: the read side.
  void load(EtcdClient& client, const std::string& from, const std::string& to, int64_t revision,
            int64_t known);
  // Everything under the prefix as of etcd's present revision, over what the state holds;
  // started over at a newer revision when etcd compacts the one it reads at. With
  // `replace`, what the state holds and etcd no longer does (a deleted certificate, an
  // expired audit event) is removed. Returns the revision read at.
  int64_t load_all(EtcdClient& client, bool replace);
  bool reload();
  int64_t resume_from_snapshot();
  bool join_from_peer();  // installs a peer's snapshot as this node's own
  void write_identity() const;
  void take_snapshot();
  void run();
  void watch_loop();
  void apply(const WatchBatch& batch);
  void apply(const KeyValue& kv, bool deleted);
  // A transaction of this node's that etcd committed at `revision`, applied from what it
  // carried, when nothing else came before it: false when it must wait for the watch.
  bool apply_own(Txn& t, int64_t revision);
  // etcd_txn.cpp: the write path.
  void execute(std::vector<Retry>& batch);
  void send_loop();
  void send(Txn& t);
  void finish(Txn& t);
  void sweep_audit_events();
  static core::Error outcome_unknown(const std::string& why);
  static core::Error unavailable(const std::string& why);
  void keep_registered();
  void find_leader_loop();
  // Answers, 503, what has waited longer than write_timeout (see run()).
  void answer_overdue();
  void answer_the_rest();  // at stop
  bool retry_ready() const;
  void cannot_follow(const std::string& why);  // logs it, calls on_fatal, refuses writes

  core::StateMachine& state_;
  EtcdOptions options_;
  Layout layout_;
  // The sender thread's after start (start() and the load use it before); a reload on the
  // committer's thread uses a client of its own.
  EtcdClient client_;
  std::unordered_map<core::Id, int64_t, core::IdHash> versions_;  // organization -> mod_revision
  // Each transaction writes a fresh token as its organizations' version values. Tokens of
  // transactions sent or refused and not settled yet -> the revision the watch showed them
  // at (0: not seen yet). Committer thread.
  core::IdGenerator tokens_;
  std::unordered_map<std::string, int64_t> tokens_seen_;
  bool in_flight_ = false;  // a transaction is with the sender (committer thread)
  // After a conflict, commands are decided again no sooner than this (Unix ms): a random
  // backoff that doubles with their attempts, so that nodes that keep colliding on one
  // organization spread out instead of one of them losing 32 times in a row.
  uint64_t retry_after_ms_ = 0;
  uint64_t jitter_state_ = 0x9e3779b97f4a7c15;  // xorshift; committer thread

  std::mutex mutex_;
  std::condition_variable wake_, send_wake_;
  std::optional<Txn> outbox_, inbox_;  // under mutex_: to send; sent, to be answered
  std::deque<core::Submission*> queue_;
  // Whether the committer's thread, as it last went to sleep, would take a new command at
  // once (nothing in flight, waiting or held back): only then does submit() wake it. Woken
  // for every command while a transaction was in flight, it went straight back to sleep,
  // two futex calls and a context switch a write (perf/RESULTS.md). Under mutex_.
  bool takes_commands_ = true;
  std::deque<WatchBatch> batches_;
  bool stopping_ = false;
  std::string watch_error_;       // set by the watch thread when the stream cannot go on
  bool watch_compacted_ = false;  // ...because etcd compacted the revision it resumes from
  // During load_all(replace): the certificates and audit events the load saw, {org, id}.
  std::set<std::pair<core::Id, core::Id>>* seen_ = nullptr;
  std::atomic<uint64_t> reloads_{0};

  std::vector<Waiting> waiting_;
  std::vector<Retry> retries_;
  std::thread thread_, watcher_, sender_;
  // With more than one endpoint: the one that is etcd's leader, found every few seconds by
  // its own thread (a member that hangs costs that thread, nobody else); -1: none known.
  // The sender starts its calls there whenever it changes.
  std::thread leader_finder_;
  std::atomic<int> leader_endpoint_{-1};
  int64_t watch_from_ = 0;  // the watch thread's next start revision
  int64_t lease_ = 0;       // of this node's registration; 0: none yet
  // The lease the audit events of one UTC day are put with: {day, lease}. Committer thread.
  std::pair<int64_t, int64_t> audit_lease_{-1, 0};
  // The lease for an event put now; 0 with `error` when etcd granted none.
  int64_t audit_lease(std::string& error);
  std::chrono::steady_clock::time_point renewed_;
  // The sender's sweep of expired audit events: organizations still to sweep, of events
  // before sweep_cutoff_ms_, and when the next sweep starts (sweep_audit_events()).
  std::vector<core::Id> sweep_;
  uint64_t sweep_cutoff_ms_ = 0, next_sweep_ms_ = 0;
  std::atomic<uint64_t> swept_orgs_{0};

  StoreHealth health_{options_.etcd_quota_bytes};
  std::unique_ptr<Freshness> freshness_;
  std::string cluster_id_;  // etcd's, read once at start (the snapshot thread writes it)
  std::atomic<bool> move_watch_{false};  // the watch's member hangs: go to another
  // Commands of a transaction etcd refused: each is sent again alone (under mutex_).
  std::unordered_set<core::Submission*> alone_;

  std::atomic<int64_t> applied_{0};
  std::atomic<int64_t> store_revision_{0};   // the newest revision seen from etcd
  std::atomic<int64_t> contact_unix_ms_{0};  // the last answer from etcd (any call or event)
  std::atomic<bool> loaded_{false};
  int64_t catch_up_to_ = 0;  // the store's revision at start: not ready before it is applied
  std::thread snapshotter_;
  std::atomic<bool> snapshot_running_{false};
  // The nodes registered (names as under <prefix>/nodes/), from the load and the watch; the
  // committer thread's. This node's own name is counted whether or not etcd shows it yet,
  // so that a node never takes the share of one fewer.
  std::set<std::string, std::less<>> nodes_;
  std::string self_;
  std::atomic<uint32_t> live_nodes_{1};
  void note_node(std::string_view name, bool deleted);
  bool resumed_ = false;
  const char* start_mode_ = "etcd";
  std::atomic<uint64_t> txns_{0}, conflicts_{0}, failures_{0};
  std::atomic<uint64_t> isolated_{0};     // commands sent again at once: not of a conflicted org
  std::atomic<uint64_t> applied_own_{0};  // transactions applied from their answer (apply_own())
  // The node's own share of a write's path while writes queue: from etcd's answer reaching
  // the sender to the next transaction handed to it, when commands waited for that answer
  // (metric keygate_cluster_turnaround_seconds). Its start is the committer thread's; {}:
  // none running.
  std::chrono::steady_clock::time_point turnaround_from_{};
  std::atomic<uint64_t> turnaround_ns_{0}, turnarounds_{0};
  uint64_t loaded_records_ = 0;
  double load_seconds_ = 0;
};

}  // namespace keygate::cluster
