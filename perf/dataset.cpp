// keygate_dataset: writes N API keys (in organizations of 1,000) and their values, one per
// line, for load generators. Into a data directory, as one log segment:
//
//   keygate_dataset --data-dir /tmp/kg --keys 1000000 --values /tmp/kg-keys.txt [--scopes a,b]
//
// or, with --snapshot-seq S, as a snapshot at S instead of a log (snapshot-S.kgs: what a
// cluster node keeps after applying etcd's revision S - 1, for perf/bench_cluster_join.sh's
// IN_ETCD=0, a join from a peer at a size etcd cannot hold here);
// or into etcd, in cluster mode's layout (cluster/README.md), for the cluster's figures:
//
//   keygate_dataset --etcd http://127.0.0.1:2379 [--etcd-prefix /keygate] --keys N --values F
//
// Every key is a live secret key with the default scope set (all of them, as when a key is
// created without `scopes`), or with the scopes given: fewer scopes, a shorter
// X-Keygate-Scopes header in each /v1/auth answer.
// The server then recovers it at start (that is also the "recovery from the log" figure).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>

#include "cluster/etcd_client.hpp"
#include "cluster/layout.hpp"
#include "core/ids.hpp"
#include "core/index.hpp"
#include "core/key_format.hpp"
#include "core/model.hpp"
#include "core/scopes.hpp"
#include "core/state_machine.hpp"
#include "persistence/codec.hpp"
#include "persistence/data_dir.hpp"
#include "persistence/record.hpp"
#include "persistence/recovery.hpp"
#include "persistence/segment.hpp"
#include "persistence/snapshot.hpp"

using namespace keygate;

namespace {

// Where the records go: the log segment or etcd.
struct Sink {
  // One record (framed as the log frames it) of an organization or a key; the slug and
  // hash are what etcd's index keys need (the log has no use for them).
  std::function<bool(const std::string& framed, persistence::RecordType type, core::Id id,
                     const std::string& slug, const core::KeyHash* hash, std::string& error)>
      put;
  std::function<bool(std::string& error)> finish;
};

}  // namespace

int main(int argc, char** argv) {
  std::string dir, values_path, etcd, prefix = "/keygate";
  uint64_t n = 1'000'000, snapshot_seq = 0;
  core::ScopeSet scopes = core::kAllScopes;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--data-dir"))
      dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--etcd"))
      etcd = argv[i + 1];
    else if (!std::strcmp(argv[i], "--etcd-prefix"))
      prefix = argv[i + 1];
    else if (!std::strcmp(argv[i], "--keys"))
      n = std::stoull(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--values"))
      values_path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--snapshot-seq"))
      snapshot_seq = std::stoull(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--scopes")) {
      scopes = 0;
      bool unknown = false;
      core::parse_scope_list(argv[i + 1], scopes, unknown);
      if (unknown || scopes == 0) {
        std::fprintf(stderr, "--scopes %s: not a list of known scopes\n", argv[i + 1]);
        return 2;
      }
    } else {
      std::fprintf(stderr, "unknown option: %s\n", argv[i]);
      return 2;
    }
  }
  if (dir.empty() == etcd.empty() || values_path.empty() || argc % 2 == 0 ||
      (snapshot_seq && dir.empty())) {
    std::fprintf(stderr,
                 "usage: keygate_dataset (--data-dir DIR [--snapshot-seq S] | --etcd URL "
                 "[--etcd-prefix P]) --keys N --values FILE [--scopes a,b]\n");
    return 2;
  }

  std::string err;
  Sink sink;
  std::unique_ptr<persistence::DataDir> dd;
  persistence::Segment seg;
  std::string buf;
  uint64_t records = 0;
  std::unique_ptr<cluster::EtcdClient> client;
  const cluster::Layout layout(prefix);
  std::vector<cluster::Op> ops;
  if (!dir.empty()) {
    dd = std::make_unique<persistence::DataDir>(dir);
    if (!dd->list().segments.empty()) {
      std::fprintf(stderr, "%s already holds a log: use an empty directory\n", dir.c_str());
      return 1;
    }
    if (!persistence::Segment::create(*dd, 0, seg, err))
      return std::fprintf(stderr, "%s\n", err.c_str()), 1;
    sink.put = [&](const std::string& framed, persistence::RecordType, core::Id, const std::string&,
                   const core::KeyHash*, std::string& error) {
      buf += framed;
      ++records;
      if (buf.size() < (8 << 20)) return true;
      const bool ok = seg.append(buf, records, error);
      buf.clear();
      records = 0;
      return ok;
    };
    sink.finish = [&](std::string& error) {
      return seg.append(buf, records, error) && seg.sync(error);
    };
  } else {
    client = std::make_unique<cluster::EtcdClient>(std::vector<std::string>{etcd});
    // etcd takes at most 128 operations in a transaction.
    auto flush = [&](std::string& error) {
      if (ops.empty()) return true;
      cluster::TxnResult r;
      const bool ok = client->txn({}, ops, r, error) && r.succeeded;
      ops.clear();
      return ok;
    };
    sink.put = [&, flush](const std::string& framed, persistence::RecordType type, core::Id id,
                          const std::string& slug, const core::KeyHash* hash, std::string& error) {
      using K = cluster::Op::Kind;
      if (type == persistence::RecordType::organization) {
        ops.push_back({K::put, layout.organization(id), framed});
        ops.push_back({K::put, layout.slug(slug), core::to_string(core::IdKind::organization, id)});
        ops.push_back({K::put, layout.version(id), {}});
      } else {
        ops.push_back({K::put, layout.api_key(*hash), framed});
      }
      return ops.size() < 120 || flush(error);
    };
    sink.finish = flush;
  }

  std::ofstream values(values_path);
  core::IdGenerator ids;
  const uint64_t now = 1'790'000'000'000;
  std::string payload, framed;
  core::Id org;
  for (uint64_t i = 0; i < n; ++i) {
    if (i % 1000 == 0) {
      core::Organization o;
      o.id = org = ids.next(now);
      o.name = "Load test " + std::to_string(i / 1000);
      o.slug = "load-test-" + std::to_string(i / 1000);
      o.created_ms = o.updated_ms = now;
      payload.clear();
      framed.clear();
      persistence::encode(o, payload);
      persistence::append_record(framed, persistence::RecordType::organization, payload);
      if (!sink.put(framed, persistence::RecordType::organization, o.id, o.slug, nullptr, err))
        return std::fprintf(stderr, "%s\n", err.c_str()), 1;
    }
    const std::string value = core::generate_key(core::KeyType::secret, core::Environment::live);
    core::ApiKey k;
    k.id = ids.next(now);
    k.organization_id = org;
    std::copy_n(value.end() - 4, 4, k.preview);
    k.name = "load " + std::to_string(i);
    k.scopes = scopes;
    k.created_ms = now;
    const core::KeyHash hash = core::hash_key(value);
    payload.clear();
    framed.clear();
    persistence::encode(hash, k, 0, payload);
    persistence::append_record(framed, persistence::RecordType::api_key, payload);
    if (!sink.put(framed, persistence::RecordType::api_key, k.id, {}, &hash, err))
      return std::fprintf(stderr, "%s\n", err.c_str()), 1;
    values << value << '\n';
  }
  if (!sink.finish(err)) return std::fprintf(stderr, "%s\n", err.c_str()), 1;
  if (dd && snapshot_seq) {
    // The log read back into an index, written as one snapshot at the seq asked for; the
    // log goes.
    core::RcuThread rcu;
    core::Index index;
    core::StateMachine state(index);
    const persistence::RecoveryReport rep =
        persistence::recover(*dd, state, persistence::RecoverMode::check);
    persistence::SnapshotInfo info;
    if (!rep.warnings.empty() || rep.log_records == 0 ||
        !persistence::write_snapshot(*dd, index, snapshot_seq, 0, info, err))
      return std::fprintf(stderr, "snapshot: %s\n", err.c_str()), 1;
    for (uint64_t first : dd->list().segments)
      std::remove(dd->file(persistence::segment_name(first)).c_str());
    dd->sync();
    std::printf("wrote %llu keys to %s as %s, values in %s\n", static_cast<unsigned long long>(n),
                dir.c_str(), persistence::snapshot_name(snapshot_seq).c_str(), values_path.c_str());
  } else if (dd)
    std::printf("wrote %llu keys to %s (log %llu bytes), values in %s\n",
                static_cast<unsigned long long>(n), dir.c_str(),
                static_cast<unsigned long long>(seg.size()), values_path.c_str());
  else
    std::printf("wrote %llu keys to etcd %s under %s, values in %s\n",
                static_cast<unsigned long long>(n), etcd.c_str(), layout.prefix().c_str(),
                values_path.c_str());
  return 0;
}
