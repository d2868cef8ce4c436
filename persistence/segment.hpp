// Segment: the log segment being appended to. append() either writes every byte or, after
// a failed or short write, truncates the file back to its last good size so the log never
// ends in half a record. sync() is fdatasync; after it fails the segment is unusable until
// reopen() has truncated it back to the last durable size and verified it (FORMAT.md).
// Writer thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "persistence/data_dir.hpp"

namespace keygate::persistence {

inline constexpr char kSegmentMagic[8] = {'K', 'G', 'L', 'O', 'G', 0, 0, 1};
inline constexpr char kSnapshotMagic[8] = {'K', 'G', 'S', 'N', 'A', 'P', 0, 1};

class Segment {
 public:
  Segment() = default;
  ~Segment();
  Segment(Segment&& o) noexcept;
  Segment& operator=(Segment&& o) noexcept;

  // A new, empty segment; the file and the directory entry are durable on return.
  static bool create(const DataDir& dir, uint64_t first_seq, Segment& out, std::string& error);
  // An existing segment whose first `size` bytes hold `records` verified records.
  static bool open(const DataDir& dir, uint64_t first_seq, uint64_t size, uint64_t records,
                   Segment& out, std::string& error);

  bool append(std::string_view bytes, uint64_t records, std::string& error);
  bool sync(std::string& error);
  // After a failed sync: reopen, cut back to the durable size, fsync, re-verify.
  bool reopen(std::string& error);

  bool usable() const noexcept { return fd_ >= 0 && !sync_failed_; }
  uint64_t first_seq() const noexcept { return first_seq_; }
  uint64_t next_seq() const noexcept { return first_seq_ + records_; }
  uint64_t size() const noexcept { return size_; }
  bool dirty() const noexcept { return size_ != durable_size_; }
  const std::string& path() const noexcept { return path_; }

 private:
  void close_fd() noexcept;
  int fd_ = -1;
  std::string path_;
  const DataDir* dir_ = nullptr;
  uint64_t first_seq_ = 0;
  uint64_t records_ = 0;
  uint64_t durable_records_ = 0;
  uint64_t size_ = 0;
  uint64_t durable_size_ = 0;
  bool sync_failed_ = false;
};

}  // namespace keygate::persistence
