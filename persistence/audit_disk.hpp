// The audit events of a snapshot, read from its file instead of held in memory
// (core/audit.hpp, "Memory holds the events written since the latest snapshot").
//
// A snapshot writes every organization's events last, each organization's together and in
// id order (FORMAT.md "Snapshots"). SnapshotAudit keeps, per organization, where its run of
// records starts and ends in the file and the id and offset of every 64th event: a read is a
// binary search over those marks and one pread() of the records between two of them, whose
// CRCs are checked and which are decoded then. Memory: ~130 bytes an organization with
// events on disk and ~0.4 bytes an event, against ~300 bytes an event held in memory.
//
// The file stays open as long as a reader holds the SnapshotAudit: the next snapshot
// replaces it (AuditLog::set_disk) and remove_covered() unlinks the file, whose blocks the
// kernel frees when the last reader lets go.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/audit.hpp"

namespace keygate::persistence {

class SnapshotAudit final : public core::AuditDisk {
 public:
  // Collects the index as the events are written (or read back, at recovery).
  class Builder {
   public:
    // The event `id` of `org`, whose record is at [offset, offset + size) of the file. False,
    // and nothing kept, when it cannot be indexed: its organization's run ended earlier or
    // its id is not after the last one's (the caller keeps such an event in memory).
    bool add(core::Id org, core::Id id, uint64_t offset, uint64_t size);
    bool empty() const noexcept { return runs_.empty(); }
    // The index over the file at `path` (opened here, read-only). Null, with `error`, when
    // it cannot be opened.
    std::shared_ptr<const SnapshotAudit> finish(const std::string& path, std::string& error);

   private:
    friend class SnapshotAudit;
    struct Mark {
      core::Id id;
      uint64_t offset;
    };
    struct Run {
      uint64_t end = 0;  // one past the last record's bytes
      uint64_t count = 0;
      core::Id last;
      std::vector<Mark> marks;  // the first event's, then every kEvery-th
    };
    std::unordered_map<core::Id, Run, core::IdHash> runs_;
    core::Id open_;  // the organization whose run is being added to
    bool any_ = false;
    size_t events_ = 0;
  };

  static constexpr size_t kEvery = 64;

  ~SnapshotAudit() override;
  std::vector<core::AuditEvent> read(core::Id org, core::Id lo, core::Id hi, bool newest_first,
                                     size_t max) const override;
  std::vector<core::Id> organizations() const override;
  std::optional<core::Id> oldest(core::Id org) const override;
  std::optional<core::Id> newest(core::Id org) const override;
  size_t size() const override { return events_; }
  size_t memory_bytes() const override;
  const std::string& path() const noexcept { return path_; }

 private:
  SnapshotAudit() = default;
  using Run = Builder::Run;
  // The events of `run` in the file's byte range [from, to), decoded in order.
  std::vector<core::AuditEvent> read_range(core::Id org, uint64_t from, uint64_t to) const;
  int fd_ = -1;
  std::string path_;
  std::unordered_map<core::Id, Run, core::IdHash> runs_;
  size_t events_ = 0;
};

}  // namespace keygate::persistence
