// A joining node's shortcut: the newest snapshot of a node already in the cluster, fetched
// over HTTP (GET /v1/cluster/snapshot with the cluster's root key), checked, and installed
// in the data directory as if the node had written it itself. The node then resumes from it
// as from its own (cluster/README.md, "A node joins"): it reads the organizations' versions
// at the snapshot's revision and watches from the next one, or loads in full from etcd when
// etcd no longer holds the history after it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "persistence/data_dir.hpp"

namespace keygate::cluster {

struct PeerSnapshotRequest {
  std::string base_url;  // the peer's, as it registered: "http://host:port"
  std::string root_key;  // presented as Authorization: Bearer
  std::string ca_file;   // an https peer's CA (empty: the system's)
  // What the snapshot must be of: "<etcd cluster id> <prefix>", as the peer says in
  // X-Keygate-Cluster. A snapshot of another cluster or prefix is not installed.
  std::string identity;
  // A peer that sends nothing for this long is left (a hung peer must not hold a start up);
  // the whole transfer may take 30 times as long.
  std::chrono::milliseconds stall_timeout{5'000};
};

struct PeerSnapshot {
  int64_t revision = 0;  // etcd's revision the snapshot holds everything up to
  uint64_t bytes = 0;
  double seconds = 0;
};

// Downloads the peer's newest snapshot to <dir>/snapshot-peer.tmp, checks it (the peer's
// identity, then the header, every record's CRC and the footer: persistence::check_snapshot)
// and renames it to snapshot-<revision + 1>.kgs. On any failure nothing is left behind and
// `why` says what went wrong.
bool fetch_peer_snapshot(const PeerSnapshotRequest& request, const persistence::DataDir& dir,
                         PeerSnapshot& out, std::string& why);

}  // namespace keygate::cluster
