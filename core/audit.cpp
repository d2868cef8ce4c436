#include "core/audit.hpp"

#include <algorithm>
#include <array>
#include <unordered_set>
#include <utility>

namespace keygate::core {

namespace {

constexpr std::array<std::string_view, kAuditTypeCount> kTypeNames = {
    "organization.created",     "organization.updated", "api_key.created",
    "api_key.updated",          "api_key.deleted",      "certificate.created",
    "certificate.updated",      "certificate.deleted",  "certificates.activated",
    "certificates.deactivated", "project.created",      "project.updated",
    "project.archived",
};

// A page or a snapshot copies this many events under one shared lock (or reads them from
// the disk in one go), then lets the writer in.
constexpr size_t kCopyChunk = 256;

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

constexpr Id kNoId{~uint64_t{0}, ~uint64_t{0}};  // above every id: an open upper bound

// The id just after `id`: an exclusive bound made inclusive.
Id successor(Id id) {
  return id.lo == ~uint64_t{0} ? Id{id.hi + 1, 0} : Id{id.hi, id.lo + 1};
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

size_t memory_cost(const AuditEvent& e) noexcept {
  // The deque's element, the payload's heap block, the resources' array.
  return sizeof(AuditEvent) + (e.payload.size() > 15 ? e.payload.capacity() + 1 : 0) +
         e.resources.capacity() * sizeof(Id);
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

std::vector<std::pair<Id, const AuditLog::Org*>> AuditLog::all_orgs() const {
  std::vector<std::pair<Id, const Org*>> all;
  std::shared_lock lock(map_mutex_);
  all.reserve(orgs_.size());
  for (const auto& [id, o] : orgs_) all.emplace_back(id, o.get());
  return all;
}

void AuditLog::insert(AuditEvent e) {
  Org& o = get(e.organization_id);
  const size_t cost = memory_cost(e);
  std::unique_lock lock(o.mutex);
  auto& v = o.events;
  if (v.empty() || v.back().id < e.id) {  // the usual case: the newest event
    v.push_back(std::move(e));
  } else {
    const auto at = std::lower_bound(v.begin(), v.end(), e.id, by_id);
    if (at != v.end() && at->id == e.id) return;  // already there
    v.insert(at, std::move(e));
  }
  bytes_.fetch_add(cost, std::memory_order_relaxed);
}

void AuditLog::erase(Id org, Id id) {
  if (Org* o = find(org)) {
    std::unique_lock lock(o->mutex);
    const auto at = std::lower_bound(o->events.begin(), o->events.end(), id, by_id);
    if (at != o->events.end() && at->id == id) {
      bytes_.fetch_sub(memory_cost(*at), std::memory_order_relaxed);
      o->events.erase(at);
    }
  }
  std::lock_guard lock(disk_mutex_);
  if (!disk_) return;
  if (const std::optional<Id> oldest = disk_->oldest(org); oldest && !(id < *oldest)) {
    hidden_.emplace(org, id);
    any_hidden_.store(true, std::memory_order_release);
  }
}

bool AuditLog::hidden(Id org, Id id) const {
  if (!any_hidden_.load(std::memory_order_acquire)) return false;  // nearly always
  std::lock_guard lock(disk_mutex_);
  return hidden_.contains({org, id});
}

size_t AuditLog::drop_before(uint64_t cutoff_ms) {
  size_t dropped = 0;
  for (const auto& [id, co] : all_orgs()) {
    Org* o = const_cast<Org*>(co);
    std::unique_lock lock(o->mutex);
    while (!o->events.empty() && o->events.front().id.millis() < cutoff_ms) {
      bytes_.fetch_sub(memory_cost(o->events.front()), std::memory_order_relaxed);
      o->events.pop_front();
      ++dropped;
    }
  }
  return dropped;
}

void AuditLog::set_floor(uint64_t cutoff_ms) {
  uint64_t floor = floor_ms_.load(std::memory_order_relaxed);
  while (floor < cutoff_ms && !floor_ms_.compare_exchange_weak(floor, cutoff_ms)) {
  }
  drop_before(cutoff_ms);
}

void AuditLog::set_disk(std::shared_ptr<const AuditDisk> disk, uint64_t cutoff_ms) {
  std::lock_guard lock(disk_mutex_);
  disk_ = std::move(disk);
  // Those the new snapshot left out for their age; the others it may hold (an erase that
  // came while it was written): still hidden.
  std::erase_if(hidden_, [&](const auto& h) { return h.second.millis() < cutoff_ms; });
  any_hidden_.store(!hidden_.empty(), std::memory_order_release);
}

std::shared_ptr<const AuditDisk> AuditLog::disk() const {
  std::lock_guard lock(disk_mutex_);
  return disk_;
}

bool AuditLog::snapshot_due(size_t budget) const noexcept {
  const size_t bytes = memory_bytes(), base = bytes_after_drop_.load(std::memory_order_relaxed);
  return bytes > budget && bytes - std::min(bytes, base) >= budget / 2;
}

void AuditLog::drop_written(const std::vector<std::pair<Id, Id>>& written) {
  for (size_t i = 0; i < written.size();) {
    const Id org = written[i].first;
    size_t end = i;
    while (end < written.size() && written[end].first == org) ++end;
    if (Org* o = find(org)) {
      std::unique_lock lock(o->mutex);
      auto& v = o->events;
      size_t k = i;
      // Usually the oldest events, in order: off the front.
      for (; k < end && !v.empty() && v.front().id == written[k].second; ++k) {
        bytes_.fetch_sub(memory_cost(v.front()), std::memory_order_relaxed);
        v.pop_front();
      }
      for (; k < end; ++k) {  // an event that came in out of order meanwhile stays
        const auto at = std::lower_bound(v.begin(), v.end(), written[k].second, by_id);
        if (at == v.end() || at->id != written[k].second) continue;
        bytes_.fetch_sub(memory_cost(*at), std::memory_order_relaxed);
        v.erase(at);
      }
    }
    i = end;
  }
  bytes_after_drop_.store(memory_bytes(), std::memory_order_relaxed);
}

// One organization's events with ids in [lo, hi), from memory or from the disk, handed out
// one at a time in the walk's direction and fetched a chunk at a time: memory's under the
// organization's shared lock, the disk's with no lock held.
class AuditLog::Source {
 public:
  // `first`: how many events the first chunk holds (a page's limit and one); each chunk
  // after holds twice as many as the one before, up to kCopyChunk.
  Source(const Org* memory, Id org, Id lo, Id hi, bool newest_first, size_t first)
      : memory_(memory),
        org_(org),
        lo_(lo),
        hi_(hi),
        newest_first_(newest_first),
        want_(std::clamp<size_t>(first, 1, kCopyChunk)) {}
  Source(const AuditLog& log, const AuditDisk* disk, Id org, Id lo, Id hi, bool newest_first,
         size_t first)
      : log_(&log),
        disk_(disk),
        org_(org),
        lo_(lo),
        hi_(hi),
        newest_first_(newest_first),
        want_(std::clamp<size_t>(first, 1, kCopyChunk)) {
    if (const std::optional<Id> newest = disk ? disk->newest(org) : std::nullopt) {
      if (successor(*newest) < hi_) hi_ = successor(*newest);
    } else {
      done_ = true;  // nothing of this organization on disk
    }
  }

  AuditEvent* peek() {
    if (at_ == chunk_.size()) refill();
    return at_ < chunk_.size() ? &chunk_[at_] : nullptr;
  }
  void pop() noexcept { ++at_; }
  // Newest first: whether every event still to come is older than `id`, known without
  // fetching (the disk's newest event bounds what a read could return).
  bool all_older_than(Id id) const noexcept {
    return at_ == chunk_.size() ? !(id < hi_) : chunk_[at_].id < id;
  }

 private:
  void refill() {
    chunk_.clear();
    at_ = 0;
    if (done_ || !(lo_ < hi_)) return;
    const size_t want = want_;
    want_ = std::min(want_ * 2, kCopyChunk);
    if (disk_) {
      chunk_ = disk_->read(org_, lo_, hi_, newest_first_, want);
    } else if (memory_) {
      std::shared_lock lock(memory_->mutex);
      const auto& v = memory_->events;
      auto from = std::lower_bound(v.begin(), v.end(), lo_, by_id);
      auto to = std::lower_bound(from, v.end(), hi_, by_id);
      if (newest_first_)
        while (to != from && chunk_.size() < want) chunk_.push_back(*--to);
      else
        while (from != to && chunk_.size() < want) chunk_.push_back(*from++);
    }
    if (chunk_.size() < want) done_ = true;
    if (chunk_.empty()) return;
    // The next chunk starts past this one, whatever the writer did meanwhile.
    if (newest_first_)
      hi_ = chunk_.back().id;
    else
      lo_ = successor(chunk_.back().id);
    if (disk_)  // leave out what etcd dropped since the snapshot (erase())
      std::erase_if(chunk_, [&](const AuditEvent& e) { return log_->hidden(org_, e.id); });
    if (chunk_.empty()) refill();
  }

  const AuditLog* log_ = nullptr;
  const Org* memory_ = nullptr;
  const AuditDisk* disk_ = nullptr;
  Id org_, lo_, hi_;
  bool newest_first_;
  bool done_ = false;
  std::vector<AuditEvent> chunk_;
  size_t at_ = 0;
  size_t want_;
};

namespace {

// The next event of two sources in the walk's direction, moved into `out`; an event in
// both counts once (`in_memory` then). False when both are spent.
template <typename S>
bool next_of(S& memory, S& disk, bool newest_first, AuditEvent& out, bool& in_memory) {
  AuditEvent* m = memory.peek();
  // Newest first, memory's event is usually newer than all the disk holds: taken without
  // reading the disk.
  if (m && newest_first && disk.all_older_than(m->id)) {
    in_memory = true;
    out = std::move(*m);
    memory.pop();
    return true;
  }
  AuditEvent* d = disk.peek();
  if (!m && !d) return false;
  if (m && d && m->id == d->id) disk.pop(), d = nullptr;
  const bool take_memory = !d || (m && (newest_first ? d->id < m->id : m->id < d->id));
  in_memory = take_memory;
  out = std::move(take_memory ? *m : *d);
  (take_memory ? memory : disk).pop();
  return true;
}

}  // namespace

AuditPage AuditLog::page(Id org, const AuditQuery& q) const {
  AuditPage out;
  if (q.limit == 0) return out;
  // The time window, then the cursors, as one range of ids [lo, hi): ids sort by time.
  Id lo = first_id_at(q.from_s);
  Id hi = q.to_s == INT64_MAX ? kNoId : first_id_at(q.to_s + 1);
  if (q.after && *q.after < hi) hi = *q.after;
  if (q.before && lo < successor(*q.before)) lo = successor(*q.before);
  if (const uint64_t floor = floor_ms_.load(std::memory_order_relaxed); lo < Id{floor << 16, 0})
    lo = Id{floor << 16, 0};
  if (!(lo < hi)) return out;
  const bool newest_first = !q.before;  // else the page just newer than `before`, reversed
  const std::shared_ptr<const AuditDisk> disk = this->disk();
  Source memory(find(org), org, lo, hi, newest_first, q.limit + 1);
  Source on_disk(*this, disk.get(), org, lo, hi, newest_first, q.limit + 1);
  size_t examined = 0;
  std::optional<Id> last;
  AuditEvent e;
  bool in_memory;
  while (next_of(memory, on_disk, newest_first, e, in_memory)) {
    // The scan bound: stop before the event that would make kMaxScan + 1, and resume there.
    if (last && ++examined > kMaxScan) {
      out.has_more = true;
      out.resume = *last;
      break;
    }
    last = e.id;
    if (!matches(e, q)) continue;
    if (out.events.size() == q.limit) {
      out.has_more = true;
      break;
    }
    out.events.push_back(std::move(e));
  }
  if (!newest_first) std::reverse(out.events.begin(), out.events.end());
  return out;
}

void AuditLog::for_each(uint64_t cutoff_ms,
                        const std::function<void(const AuditEvent&, bool in_memory)>& f) const {
  const std::shared_ptr<const AuditDisk> disk = this->disk();
  std::vector<std::pair<Id, const Org*>> all = all_orgs();
  if (disk)
    for (const Id& id : disk->organizations())
      if (!find(id)) all.emplace_back(id, nullptr);
  const Id from{cutoff_ms << 16, 0};
  for (const auto& [id, o] : all) {
    Source memory(o, id, from, kNoId, false, kCopyChunk);
    Source on_disk(*this, disk.get(), id, from, kNoId, false, kCopyChunk);
    AuditEvent e;
    bool in_memory;
    while (next_of(memory, on_disk, false, e, in_memory)) f(e, in_memory);
  }
}

std::vector<Id> AuditLog::orgs_with_events_before(uint64_t cutoff_ms) const {
  std::unordered_set<Id, IdHash> out;
  for (const auto& [id, o] : all_orgs()) {
    std::shared_lock lock(o->mutex);
    if (!o->events.empty() && o->events.front().id.millis() < cutoff_ms) out.insert(id);
  }
  if (const std::shared_ptr<const AuditDisk> disk = this->disk())
    for (const Id& id : disk->organizations())
      if (const std::optional<Id> oldest = disk->oldest(id); oldest && oldest->millis() < cutoff_ms)
        out.insert(id);
  return {out.begin(), out.end()};
}

size_t AuditLog::size() const {
  size_t n = 0;
  for (const auto& [id, o] : all_orgs()) {
    std::shared_lock l(o->mutex);
    n += o->events.size();
  }
  if (const std::shared_ptr<const AuditDisk> disk = this->disk()) n += disk->size();
  return n;
}

}  // namespace keygate::core
