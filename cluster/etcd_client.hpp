// EtcdClient: the few calls of etcd's v3 API that cluster mode needs, with libcurl, on
// etcd's client port. Ranges and transactions (the load and write paths) are unary gRPC
// calls over HTTP/2 and the watch a gRPC stream, their messages encoded by
// cluster/etcd_grpc.hpp; leases and status go through etcd's HTTP/JSON gateway (plain
// HTTP/1.1, int64 as JSON strings). Keys and values are bytes.
//
// Calls are blocking and belong to the control plane (cluster/etcd_committer.hpp's thread),
// never a reactor. A call tries each endpoint in turn, starting with the one that answered
// last, and fails with a message only when none answers. Not thread-safe: one per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace keygate::cluster {

struct KeyValue {
  std::string key, value;
  int64_t create_revision = 0, mod_revision = 0;
};

struct RangeResult {
  int64_t revision = 0;  // the store's revision the result is as of
  std::vector<KeyValue> kvs;
  bool more = false;
};

// One condition of a transaction: the key's mod_revision (or create_revision) equals a
// value; 0 stands for "the key does not exist".
struct Compare {
  enum class Target { mod, create } target = Target::mod;
  std::string key;
  int64_t revision = 0;
};

struct Op {
  enum class Kind { put, del } kind = Kind::put;
  std::string key, value;
  int64_t lease = 0;      // put: the key goes when the lease expires
  std::string range_end;  // del: every key in [key, range_end), when not empty
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // of the transaction when it succeeded; the store's when not
  // When it did not: which compares failed, one flag per compare in order (the transaction's
  // failure branch reads each compared key, keys only, so the answer says which).
  std::vector<bool> failed;
};

struct WatchEvent {
  bool deleted = false;
  KeyValue kv;
};

// One response of a watch stream: the events of one or more revisions, in order.
struct WatchBatch {
  int64_t revision = 0;  // header revision
  std::vector<WatchEvent> events;
  int64_t compact_revision = 0;  // nonzero: the start revision was compacted away
  bool canceled = false;
};

// How full the member that answered is, and the cluster's alarms (/v3/maintenance/status
// and /v3/maintenance/alarm): a NOSPACE alarm stops every write of every node.
struct StoreStatus {
  int64_t db_size = 0;              // bytes the database file holds
  int64_t db_size_in_use = 0;       // bytes in use (the rest comes back with a defragmentation)
  int64_t quota = 0;                // --quota-backend-bytes when etcd says (3.5+), else 0
  std::vector<std::string> alarms;  // "NOSPACE", "CORRUPT", ...
};

// TLS to etcd (https:// endpoints): the CA that signed etcd's certificate, and this
// client's certificate and key when etcd asks for one (--client-cert-auth). Empty: the
// system's CAs, no client certificate.
struct EtcdTls {
  std::string ca_file, cert_file, key_file;
};

class EtcdClient {
 public:
  // `endpoints`: "http://host:port" or "https://host:port" URLs.
  explicit EtcdClient(std::vector<std::string> endpoints, EtcdTls tls = {});
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // All return false with `error` set when no endpoint gave a valid answer.
  // Keys in [key, range_end) (range_end empty: just `key`), as of `revision` (0: now).
  bool range(std::string_view key, std::string_view range_end, int64_t revision, int64_t limit,
             RangeResult& out, std::string& error);
  // How many keys are in [key, range_end) as of `revision` (0: now); `store_revision` gets
  // the store's revision.
  bool count(std::string_view key, std::string_view range_end, int64_t revision, int64_t& out,
             int64_t& store_revision, std::string& error);
  bool txn(const std::vector<Compare>& compares, const std::vector<Op>& success, TxnResult& out,
           std::string& error);
  bool status(StoreStatus& out, std::string& error);
  // The id of the member that answered and of the leader it follows
  // (/v3/maintenance/status), as etcd prints them: equal when it is the leader itself;
  // `leader` is "0" or empty while the member knows no leader.
  bool leadership(std::string& member, std::string& leader, std::string& error);
  // A lease of `ttl_seconds`; its id, or 0 with `error` set.
  int64_t lease_grant(int64_t ttl_seconds, std::string& error);
  // Renews a lease; its remaining TTL (0: it expired), or -1 with `error` when etcd did not answer.
  int64_t lease_keepalive(int64_t id, std::string& error);

  // Streams changes to [key, range_end) from `start_revision` on, calling `on_batch` for
  // every response, until the stream ends, `keep_going` returns false (checked at least
  // once a second), or `on_batch` returns false. Returns false with `error` when the stream
  // could not be opened or broke; true when stopped.
  bool watch(std::string_view key, std::string_view range_end, int64_t start_revision,
             const std::function<bool(const WatchBatch&)>& on_batch,
             const std::function<bool()>& keep_going, std::string& error);

  const std::string& endpoint() const noexcept;
  // The last call failed because etcd refused it (HTTP 400: too large, too many operations,
  // a compacted revision), which every member would repeat, rather than because no member
  // answered.
  bool last_call_refused() const noexcept;
  // The next call (or watch) goes to the next endpoint: the one in use hangs.
  void skip_endpoint() noexcept;
  // The next call starts at endpoints[i] (the leader, which another thread found).
  void prefer_endpoint(size_t i) noexcept;
  // How long a unary call may take: each endpoint `per_endpoint_ms` at most (the last one
  // tried: what is left of the budget), and no further endpoint is tried once `budget_ms`
  // has passed since the call began. A member that hangs
  // (a stopped process keeps its connections open) is left after per_endpoint_ms, rather
  // than when TCP gives up. Defaults: 5 s and no budget.
  void set_limits(long per_endpoint_ms, long budget_ms) noexcept;
  // The etcd cluster's id, from the last answer's header ("" before any).
  const std::string& cluster_id() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The endpoints of a comma-separated --etcd list, empty items left out.
std::vector<std::string> split_endpoints(std::string_view list);
// The end of the range of every key that starts with `prefix`.
std::string prefix_end(std::string_view prefix);
// A key between `low` and `high` (low < result < high in byte order), to split a range in
// two; empty when there is none (high is low's immediate successor).
std::string midpoint(std::string_view low, std::string_view high);

}  // namespace keygate::cluster
