// Snapshots (FORMAT.md "Snapshots"): written from the live index without stopping the
// writer, published by temporary file + fsync + rename + directory fsync.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/index.hpp"
#include "persistence/data_dir.hpp"

namespace keygate::persistence {

struct SnapshotInfo {
  uint64_t seq = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  // Its audit events, read from the file from now on (null: it could not be opened again),
  // and those of them that were in memory when copied: publish_audit() takes both.
  std::shared_ptr<const core::AuditDisk> audit;
  std::vector<std::pair<core::Id, core::Id>> audit_from_memory;  // (organization, id), sorted
  uint64_t audit_cutoff_ms = 0;  // events older than this were left out
};

// Writes snapshot-<seq>.kgs. The calling thread must be registered with RCU (RcuThread).
// Audit events older than `audit_cutoff_ms` are left out.
bool write_snapshot(const DataDir& dir, const core::Index& index, uint64_t seq,
                    uint64_t audit_cutoff_ms, SnapshotInfo& info, std::string& error);

// After a snapshot is durable: its audit events are read from it, and leave memory.
void publish_audit(core::Index& index, SnapshotInfo& info);

// Deletes the segments and snapshots that the snapshot at `seq` makes unnecessary.
void remove_covered(const DataDir& dir, uint64_t seq);

}  // namespace keygate::persistence
