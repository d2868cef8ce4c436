// The audit log: one event for every change keygate makes (docs/api.md §8), kept apart
// from the verification index (a key's slot and record do not grow by it) and read only by
// the admin API.
//
// An event is staged by the state machine with the change it describes and becomes durable
// in the same log record group (FORMAT.md "Groups") or etcd transaction: never one without
// the other. Events are ordered by id, a ULID whose time is the event's `effective_at`.
//
// Memory holds the events written since the latest snapshot; the snapshot holds the rest,
// and they are read from it (AuditDisk, persistence/audit_disk.hpp) instead of kept twice.
// The snapshot is written when the log has grown by --snapshot-bytes or memory holds
// --audit-memory-bytes of events, whichever comes first, so the bytes held in memory are
// bounded whatever a tenant writes; a snapshot written, the events it holds leave memory
// (drop_written()). An organization's events are two sorted sequences, memory's and the
// disk's, merged by id (an event in both, for the moment between the snapshot and the drop,
// counts once), so a page is binary searches and a walk: O(log n + page) at any size when
// no other filter is set. Readers copy a chunk at a time under a shared lock per
// organization and read the disk with no lock held; the writer appends under the exclusive
// one, O(1), and never waits for a disk read or for more than one chunk's copy.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/ids.hpp"

namespace keygate::core {

// Numbered for the log: never renumber, only append.
enum class AuditType : uint8_t {
  organization_created = 1,
  organization_updated = 2,
  api_key_created = 3,
  api_key_updated = 4,
  api_key_deleted = 5,
  certificate_created = 6,
  certificate_updated = 7,
  certificate_deleted = 8,
  certificates_activated = 9,
  certificates_deactivated = 10,
  project_created = 11,
  project_updated = 12,
  project_archived = 13,
};
inline constexpr uint8_t kAuditTypeCount = 13;
// "api_key.created", ...; empty for a number no version knows.
std::string_view to_string(AuditType t) noexcept;
std::optional<AuditType> parse_audit_type(std::string_view name) noexcept;

// Who made the change: the root key, an organization's key, or nobody (open sign-up).
enum class ActorKind : uint8_t { root = 1, api_key = 2, signup = 3 };
struct Actor {
  ActorKind kind = ActorKind::root;
  Id key;  // api_key only
};
// "root", "signup" or the key's id: what `actor_ids[]` matches.
std::string actor_id(const Actor& a);

struct AuditEvent {
  Id id;  // "audit_log-<ULID>"; its time is effective_at
  Id organization_id;
  Id project_id;              // empty: not about a project's resource
  std::vector<Id> resources;  // the keys, certificates, projects or organization it is about
  AuditType type = AuditType::organization_updated;
  Actor actor;
  std::string payload;  // the type's object in OpenAI's shape, as JSON; never a secret

  int64_t effective_at() const noexcept { return static_cast<int64_t>(id.millis() / 1000); }
};

// What a list asks for. Times are Unix seconds, inclusive bounds (gt n is gte n+1).
struct AuditQuery {
  int64_t from_s = INT64_MIN, to_s = INT64_MAX;
  std::vector<AuditType> types;     // any of; empty: all
  std::vector<Id> projects;         // any of
  std::vector<std::string> actors;  // any of, as actor_id() spells them
  std::vector<Id> resources;        // any of
  size_t limit = 20;
  std::optional<Id> after;   // the page after this event, newest first (older events)
  std::optional<Id> before;  // the page before it (newer events)
};

struct AuditPage {
  std::vector<AuditEvent> events;  // newest first
  bool has_more = false;           // more may match beyond this page, in the direction asked
  // Set when the walk stopped at kMaxScan events before the page was full (a filter that
  // matches rarely): the last event it looked at, where the next page continues.
  std::optional<Id> resume;
};

// The events of the latest snapshot, read from its file (persistence/audit_disk.hpp):
// immutable, shared by the readers that hold it, replaced whole by the next snapshot.
class AuditDisk {
 public:
  virtual ~AuditDisk() = default;
  // Up to `max` events of `org` with ids in [lo, hi), the newest first when `newest_first`,
  // else the oldest first. Throws std::runtime_error when the file cannot be read or its
  // records do not hold (a damaged disk).
  virtual std::vector<AuditEvent> read(Id org, Id lo, Id hi, bool newest_first,
                                       size_t max) const = 0;
  // The organizations with events in it, and the id of the oldest event of one (if any).
  virtual std::vector<Id> organizations() const = 0;
  virtual std::optional<Id> oldest(Id org) const = 0;
  virtual std::optional<Id> newest(Id org) const = 0;  // without reading the file
  virtual size_t size() const = 0;                     // events
  virtual size_t memory_bytes() const = 0;             // what its index holds in memory
};

class AuditLog {
 public:
  AuditLog() = default;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Writer (and recovery, and a cluster node's watch): an event in its place by id; one
  // with an id already there is ignored (a snapshot may cover part of the log after it).
  void insert(AuditEvent e);
  // Cluster mode: an event etcd dropped (past the retention). One the disk holds is hidden
  // from then on, and left out of the next snapshot.
  void erase(Id org, Id id);
  // Drops every event older than `cutoff_ms` from memory; returns how many. Writer or
  // snapshot thread. The disk's leave with the next snapshot, which does not copy them.
  size_t drop_before(uint64_t cutoff_ms);
  // Cluster mode, after the node's sweep deleted from etcd every event older than
  // `cutoff_ms`: they are dropped from memory and left out of every page from now on, the
  // disk's too (the watch's deletion of a value names only the first of the events it
  // held: cluster/README.md). The floor never moves back. Any thread.
  void set_floor(uint64_t cutoff_ms);
  // The snapshot thread, once a snapshot is durable: its events are read from `disk` from
  // now on, and those that were in memory when it copied them, (organization, id) pairs in
  // ascending order, leave memory. The disk first: a reader always finds every event.
  // `cutoff_ms`: the snapshot left out events older than this (hidden ones go with them).
  void set_disk(std::shared_ptr<const AuditDisk> disk, uint64_t cutoff_ms = 0);
  void drop_written(const std::vector<std::pair<Id, Id>>& written);
  std::shared_ptr<const AuditDisk> disk() const;
  // Bytes of events held in memory (their records, strings and vectors; not the disk's
  // index, which AuditDisk::memory_bytes() counts).
  size_t memory_bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  // Whether a snapshot should take the events in memory: they hold more than `budget`
  // bytes (--audit-memory-bytes), half of it come since the last drop_written() left what
  // it could not take (so events that cannot leave memory never start one snapshot after
  // another). Any thread.
  bool snapshot_due(size_t budget) const noexcept;
  // The organizations holding an event older than `cutoff_ms` (cluster mode: whose expired
  // events a node deletes from etcd). Any thread.
  std::vector<Id> orgs_with_events_before(uint64_t cutoff_ms) const;

  // A page walks at most kMaxScan events: it holds the organization's lock shared, which
  // the writer needs exclusive to add an event, so no filter may make it long.
  static constexpr size_t kMaxScan = 10'000;
  AuditPage page(Id org, const AuditQuery& q) const;
  // Every event at or after `cutoff_ms`, memory's and the disk's, organization by
  // organization in id order, copied a chunk at a time (snapshots); `in_memory` says the
  // event is held in memory (drop_written() takes those).
  void for_each(uint64_t cutoff_ms,
                const std::function<void(const AuditEvent&, bool in_memory)>& f) const;
  size_t size() const;  // events in memory and on disk (one in both counts twice)

 private:
  struct Org {
    mutable std::shared_mutex mutex;
    std::deque<AuditEvent> events;  // by id
  };
  Org* find(Id org) const;
  Org& get(Id org);
  std::vector<std::pair<Id, const Org*>> all_orgs() const;
  class Source;  // audit.cpp: one organization's events from memory or disk, merged

  mutable std::shared_mutex map_mutex_;
  std::unordered_map<Id, std::unique_ptr<Org>, IdHash> orgs_;
  std::atomic<size_t> bytes_{0};
  std::atomic<size_t> bytes_after_drop_{0};  // memory_bytes() when drop_written() ended
  std::atomic<bool> any_hidden_{false};      // hidden_ holds something: readers check it
  std::atomic<uint64_t> floor_ms_{0};        // set_floor(): pages start at it
  mutable std::mutex disk_mutex_;
  std::shared_ptr<const AuditDisk> disk_;
  std::set<std::pair<Id, Id>> hidden_;  // erased, but on disk: (organization, id)
  bool hidden(Id org, Id id) const;
};

// What an event costs in memory, as memory_bytes() counts it.
size_t memory_cost(const AuditEvent& e) noexcept;

}  // namespace keygate::core
