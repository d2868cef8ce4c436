// Recovery (FORMAT.md "Recovery"): rebuilds the state from the newest good snapshot and the
// log after it; cuts a torn tail; refuses corruption. Also the offline `check` and `repair`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/state_machine.hpp"
#include "persistence/data_dir.hpp"

namespace keygate::persistence {

struct RecoveryReport {
  bool snapshot_loaded = false;
  uint64_t snapshot_seq = 0;
  uint64_t snapshot_records = 0;
  uint64_t log_records = 0;
  uint64_t log_bytes = 0;    // in the segments replayed
  uint64_t next_seq = 0;     // number of the next record to write
  bool has_segment = false;  // the last segment, to append to
  uint64_t segment_seq = 0;
  uint64_t segment_size = 0;
  uint64_t segment_records = 0;
  std::vector<std::string> warnings;
  double seconds = 0;
};

enum class RecoverMode { start, check };

// Throws StartupError naming the file and offset when the data cannot be trusted. In
// `check` mode nothing on disk is changed (a torn tail is reported, not cut).
RecoveryReport recover(const DataDir& dir, core::StateMachine& state, RecoverMode mode);

// Whether snapshot-<seq>.kgs at `path` is whole: its header, every record's CRC and its
// footer (`why` says what is not). Nothing is applied.
bool check_snapshot(const std::string& path, uint64_t seq, std::string& why);

// Cuts the first damaged segment at its last good record, after copying it to
// <name>.broken, and removes the segments after it. Returns what it did.
std::string repair(const DataDir& dir);

}  // namespace keygate::persistence
