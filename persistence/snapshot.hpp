// Snapshots (FORMAT.md "Snapshots"): written from the live index without stopping the
// writer, published by temporary file + fsync + rename + directory fsync.
#pragma once

#include <cstdint>
#include <string>

#include "core/index.hpp"
#include "persistence/data_dir.hpp"

namespace keygate::persistence {

struct SnapshotInfo {
  uint64_t seq = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  double seconds = 0;
};

// Writes snapshot-<seq>.kgs. The calling thread must be registered with RCU (RcuThread).
// Audit events older than `audit_cutoff_ms` are left out.
bool write_snapshot(const DataDir& dir, const core::Index& index, uint64_t seq,
                    uint64_t audit_cutoff_ms, SnapshotInfo& info, std::string& error);

// Deletes the segments and snapshots that the snapshot at `seq` makes unnecessary.
void remove_covered(const DataDir& dir, uint64_t seq);

}  // namespace keygate::persistence
