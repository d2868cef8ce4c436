#include "core/audit.hpp"

#include <algorithm>
#include <array>

namespace keygate::core {

namespace {

constexpr std::array<std::string_view, kAuditTypeCount> kTypeNames = {
    "organization.created",     "organization.updated", "api_key.created",
    "api_key.updated",          "api_key.deleted",      "certificate.created",
    "certificate.updated",      "certificate.deleted",  "certificates.activated",
    "certificates.deactivated", "project.created",      "project.updated",
    "project.archived",
};

// A snapshot copies this many events under one shared lock, then lets the writer in.
constexpr size_t kCopyChunk = 4096;

bool by_id(const AuditEvent& e, Id id) {
  return e.id < id;
}

// The smallest id of second `s` (ids hold 48 bits of milliseconds).
Id first_id_at(int64_t s) {
  constexpr int64_t kLast = (int64_t{1} << 48) / 1000;
  if (s <= 0) return Id{};
  if (s >= kLast) return Id{~uint64_t{0}, ~uint64_t{0}};
  return Id{static_cast<uint64_t>(s) * 1000 << 16, 0};
}

template <typename T>
bool any_of_or_empty(const std::vector<T>& wanted, const T& v) {
  return wanted.empty() || std::find(wanted.begin(), wanted.end(), v) != wanted.end();
}

bool matches(const AuditEvent& e, const AuditQuery& q) {
  if (!any_of_or_empty(q.types, e.type)) return false;
  if (!q.projects.empty() && (e.project_id.empty() || !any_of_or_empty(q.projects, e.project_id)))
    return false;
  if (!q.actors.empty() && !any_of_or_empty(q.actors, actor_id(e.actor))) return false;
  if (!q.resources.empty()) {
    bool hit = false;
    for (const Id& r : e.resources) hit = hit || any_of_or_empty(q.resources, r);
    if (!hit) return false;
  }
  return true;
}

}  // namespace

std::string_view to_string(AuditType t) noexcept {
  const auto i = static_cast<size_t>(t);
  return i >= 1 && i <= kTypeNames.size() ? kTypeNames[i - 1] : std::string_view();
}

std::optional<AuditType> parse_audit_type(std::string_view name) noexcept {
  for (size_t i = 0; i < kTypeNames.size(); ++i)
    if (kTypeNames[i] == name) return static_cast<AuditType>(i + 1);
  return std::nullopt;
}

std::string actor_id(const Actor& a) {
  switch (a.kind) {
    case ActorKind::api_key:
      return to_string(IdKind::api_key, a.key);
    case ActorKind::signup:
      return "signup";
    case ActorKind::root:
      break;
  }
  return "root";
}

AuditLog::Org* AuditLog::find(Id org) const {
  std::shared_lock lock(map_mutex_);
  const auto it = orgs_.find(org);
  return it == orgs_.end() ? nullptr : it->second.get();
}

AuditLog::Org& AuditLog::get(Id org) {
  if (Org* o = find(org)) return *o;
  std::unique_lock lock(map_mutex_);
  auto& slot = orgs_[org];
  if (!slot) slot = std::make_unique<Org>();
  return *slot;
}

void AuditLog::insert(AuditEvent e) {
  Org& o = get(e.organization_id);
  std::unique_lock lock(o.mutex);
  auto& v = o.events;
  if (v.empty() || v.back().id < e.id) {  // the usual case: the newest event
    v.push_back(std::move(e));
    return;
  }
  const auto at = std::lower_bound(v.begin(), v.end(), e.id, by_id);
  if (at != v.end() && at->id == e.id) return;  // already there
  v.insert(at, std::move(e));
}

void AuditLog::erase(Id org, Id id) {
  Org* o = find(org);
  if (!o) return;
  std::unique_lock lock(o->mutex);
  const auto at = std::lower_bound(o->events.begin(), o->events.end(), id, by_id);
  if (at != o->events.end() && at->id == id) o->events.erase(at);
}

size_t AuditLog::drop_before(uint64_t cutoff_ms) {
  std::vector<Org*> all;
  {
    std::shared_lock lock(map_mutex_);
    for (const auto& [id, o] : orgs_) all.push_back(o.get());
  }
  size_t dropped = 0;
  for (Org* o : all) {
    std::unique_lock lock(o->mutex);
    while (!o->events.empty() && o->events.front().id.millis() < cutoff_ms) {
      o->events.pop_front();
      ++dropped;
    }
  }
  return dropped;
}

AuditPage AuditLog::page(Id org, const AuditQuery& q) const {
  AuditPage out;
  const Org* o = find(org);
  if (!o || q.limit == 0) return out;
  std::shared_lock lock(o->mutex);
  const auto& v = o->events;
  // The time window, then the cursor, narrow [lo, hi) by binary search: ids sort by time.
  auto lo = std::lower_bound(v.begin(), v.end(), first_id_at(q.from_s), by_id);
  auto hi = q.to_s == INT64_MAX
                ? v.end()
                : std::lower_bound(v.begin(), v.end(), first_id_at(q.to_s + 1), by_id);
  if (q.after) hi = std::min(hi, std::lower_bound(v.begin(), v.end(), *q.after, by_id));
  if (q.before) {
    auto b = std::lower_bound(v.begin(), v.end(), *q.before, by_id);
    if (b != v.end() && b->id == *q.before) ++b;
    lo = std::max(lo, b);
  }
  if (lo >= hi) return out;
  size_t examined = 0;
  // The scan bound: stop before the event that would make kMaxScan + 1, and resume there.
  auto over_budget = [&](const AuditEvent& last) {
    if (++examined <= kMaxScan) return false;
    out.has_more = true;
    out.resume = last.id;
    return true;
  };
  const AuditEvent* last = nullptr;
  if (!q.before) {  // newest first from hi down
    for (auto it = hi; it != lo;) {
      --it;
      if (last && over_budget(*last)) break;
      last = &*it;
      if (!matches(*it, q)) continue;
      if (out.events.size() == q.limit) {
        out.has_more = true;
        break;
      }
      out.events.push_back(*it);
    }
  } else {  // the page just newer than `before`: oldest first from lo up, then reversed
    for (auto it = lo; it != hi; ++it) {
      if (last && over_budget(*last)) break;
      last = &*it;
      if (!matches(*it, q)) continue;
      if (out.events.size() == q.limit) {
        out.has_more = true;
        break;
      }
      out.events.push_back(*it);
    }
    std::reverse(out.events.begin(), out.events.end());
  }
  return out;
}

void AuditLog::for_each(uint64_t cutoff_ms, const std::function<void(const AuditEvent&)>& f) const {
  std::vector<Org*> all;
  {
    std::shared_lock lock(map_mutex_);
    for (const auto& [id, o] : orgs_) all.push_back(o.get());
  }
  std::vector<AuditEvent> chunk;
  for (const Org* o : all) {
    std::optional<Id> last;  // resume after it: the writer may drop or insert in between
    for (;;) {
      chunk.clear();
      {
        std::shared_lock lock(o->mutex);
        const auto& v = o->events;
        auto it = last ? std::upper_bound(v.begin(), v.end(), *last,
                                          [](Id id, const AuditEvent& e) { return id < e.id; })
                       : std::lower_bound(v.begin(), v.end(), Id{cutoff_ms << 16, 0}, by_id);
        for (; it != v.end() && chunk.size() < kCopyChunk; ++it) chunk.push_back(*it);
      }
      if (chunk.empty()) break;
      for (const AuditEvent& e : chunk) f(e);
      last = chunk.back().id;
    }
  }
}

std::vector<Id> AuditLog::orgs_with_events_before(uint64_t cutoff_ms) const {
  std::vector<std::pair<Id, const Org*>> all;
  {
    std::shared_lock lock(map_mutex_);
    for (const auto& [id, o] : orgs_) all.emplace_back(id, o.get());
  }
  std::vector<Id> out;
  for (const auto& [id, o] : all) {
    std::shared_lock lock(o->mutex);
    if (!o->events.empty() && o->events.front().id.millis() < cutoff_ms) out.push_back(id);
  }
  return out;
}

size_t AuditLog::size() const {
  std::shared_lock lock(map_mutex_);
  size_t n = 0;
  for (const auto& [id, o] : orgs_) {
    std::shared_lock l(o->mutex);
    n += o->events.size();
  }
  return n;
}

}  // namespace keygate::core
