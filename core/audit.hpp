// The audit log: one event for every change keygate makes (docs/api.md §8), kept apart
// from the verification index (a key's slot and record do not grow by it) and read only by
// the admin API.
//
// An event is staged by the state machine with the change it describes and becomes durable
// in the same log record group (FORMAT.md "Groups") or etcd transaction: never one without
// the other. Events are ordered by id, a ULID whose time is the event's `effective_at`;
// each organization's events sit in one sorted sequence, so a page is two binary searches
// (the time window, the cursor) and a walk of the page: O(log n + page) at any size when
// no other filter is set. Readers take a shared lock per organization; the writer appends
// under the exclusive one, O(1); snapshots copy a chunk at a time so the writer never waits
// for more than one chunk's encoding.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
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

class AuditLog {
 public:
  AuditLog() = default;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Writer (and recovery, and a cluster node's watch): an event in its place by id; one
  // with an id already there is ignored (a snapshot may cover part of the log after it).
  void insert(AuditEvent e);
  // Cluster mode: an event etcd dropped (its lease expired).
  void erase(Id org, Id id);
  // Drops every event older than `cutoff_ms`; returns how many. Writer or snapshot thread.
  size_t drop_before(uint64_t cutoff_ms);
  // The organizations holding an event older than `cutoff_ms` (cluster mode: whose expired
  // events a node deletes from etcd). Any thread.
  std::vector<Id> orgs_with_events_before(uint64_t cutoff_ms) const;

  // A page walks at most kMaxScan events: it holds the organization's lock shared, which
  // the writer needs exclusive to add an event, so no filter may make it long.
  static constexpr size_t kMaxScan = 10'000;
  AuditPage page(Id org, const AuditQuery& q) const;
  // Every event at or after `cutoff_ms`, organization by organization in id order, copied
  // a chunk at a time under the organization's shared lock (snapshots).
  void for_each(uint64_t cutoff_ms, const std::function<void(const AuditEvent&)>& f) const;
  size_t size() const;

 private:
  struct Org {
    mutable std::shared_mutex mutex;
    std::deque<AuditEvent> events;  // by id
  };
  Org* find(Id org) const;
  Org& get(Id org);

  mutable std::shared_mutex map_mutex_;
  std::unordered_map<Id, std::unique_ptr<Org>, IdHash> orgs_;
};

}  // namespace keygate::core
