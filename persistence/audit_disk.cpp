#include "persistence/audit_disk.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "persistence/codec.hpp"
#include "persistence/record.hpp"

namespace keygate::persistence {

bool SnapshotAudit::Builder::add(core::Id org, core::Id id, uint64_t offset, uint64_t size) {
  auto [it, fresh] = runs_.try_emplace(org);
  Run& run = it->second;
  if (!fresh && (!any_ || open_ != org || !(run.last < id))) return false;
  if (fresh && any_ && open_ != org) runs_[open_].marks.shrink_to_fit();
  open_ = org;
  any_ = true;
  if (run.count % kEvery == 0) run.marks.push_back({id, offset});
  ++run.count;
  run.last = id;
  run.end = offset + size;
  ++events_;
  return true;
}

std::shared_ptr<const SnapshotAudit> SnapshotAudit::Builder::finish(const std::string& path,
                                                                    std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  std::shared_ptr<SnapshotAudit> out(new SnapshotAudit());
  out->fd_ = fd;
  out->path_ = path;
  out->runs_ = std::move(runs_);
  out->events_ = events_;
  runs_.clear();
  any_ = false;
  events_ = 0;
  return out;
}

SnapshotAudit::~SnapshotAudit() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<core::AuditEvent> SnapshotAudit::read_range(core::Id org, uint64_t from,
                                                        uint64_t to) const {
  std::string bytes(to - from, '\0');
  for (size_t got = 0; got < bytes.size();) {
    const ssize_t n =
        ::pread(fd_, bytes.data() + got, bytes.size() - got, static_cast<off_t>(from + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw std::runtime_error(
          "cannot read the audit events of " + path_ + ": " +
          (n == 0 ? std::string("it is shorter than it was") : std::string(std::strerror(errno))));
    got += static_cast<size_t>(n);
  }
  std::vector<core::AuditEvent> out;
  for (size_t off = 0; off < bytes.size();) {
    RecordView r;
    if (read_record(bytes, off, r) != ReadStatus::ok || r.type != RecordType::audit_event)
      throw std::runtime_error("the audit events of " + path_ + " are damaged at offset " +
                               std::to_string(from + off));
    std::optional<core::AuditEvent> e = decode_audit_event(r.payload);
    if (!e || e->organization_id != org)
      throw std::runtime_error("an audit event of " + path_ + " does not decode at offset " +
                               std::to_string(from + off));
    out.push_back(std::move(*e));
    off += r.size;
  }
  return out;
}

std::vector<core::AuditEvent> SnapshotAudit::read(core::Id org, core::Id lo, core::Id hi,
                                                  bool newest_first, size_t max) const {
  std::vector<core::AuditEvent> out;
  const auto it = runs_.find(org);
  if (it == runs_.end() || !(lo < hi) || max == 0) return out;
  const Run& run = it->second;
  const auto& marks = run.marks;
  auto offset_of = [&](size_t m) { return m < marks.size() ? marks[m].offset : run.end; };
  // The first mark whose event is at or after `id`.
  auto mark_at = [&](core::Id id) {
    return static_cast<size_t>(
        std::lower_bound(marks.begin(), marks.end(), id,
                         [](const Builder::Mark& m, core::Id v) { return m.id < v; }) -
        marks.begin());
  };
  const size_t span = (max + kEvery - 1) / kEvery + 1;  // marks that hold `max` events and more
  if (!newest_first) {
    const size_t first = std::max<size_t>(mark_at(lo), 1) - 1;  // the mark at or before lo
    for (size_t m = first; m < marks.size() && out.size() < max; m += span) {
      for (core::AuditEvent& e : read_range(org, offset_of(m), offset_of(m + span))) {
        if (e.id < lo) continue;
        if (!(e.id < hi) || out.size() == max) return out;
        out.push_back(std::move(e));
      }
    }
    return out;
  }
  // Newest first: from the marks before `hi`, back a span at a time.
  size_t end = mark_at(hi);  // events from marks[end] on are at or after hi
  while (end > 0 && out.size() < max) {
    const size_t begin = end > span ? end - span : 0;
    std::vector<core::AuditEvent> chunk = read_range(org, offset_of(begin), offset_of(end));
    for (auto e = chunk.rbegin(); e != chunk.rend() && out.size() < max; ++e) {
      if (!(e->id < hi)) continue;
      if (e->id < lo) return out;
      out.push_back(std::move(*e));
    }
    end = begin;
  }
  return out;
}

std::vector<core::Id> SnapshotAudit::organizations() const {
  std::vector<core::Id> out;
  out.reserve(runs_.size());
  for (const auto& [id, run] : runs_) out.push_back(id);
  return out;
}

std::optional<core::Id> SnapshotAudit::oldest(core::Id org) const {
  const auto it = runs_.find(org);
  if (it == runs_.end() || it->second.marks.empty()) return std::nullopt;
  return it->second.marks.front().id;
}

std::optional<core::Id> SnapshotAudit::newest(core::Id org) const {
  const auto it = runs_.find(org);
  if (it == runs_.end() || it->second.count == 0) return std::nullopt;
  return it->second.last;
}

size_t SnapshotAudit::memory_bytes() const {
  size_t n = sizeof(*this) + runs_.bucket_count() * sizeof(void*);
  for (const auto& [id, run] : runs_)
    n +=
        sizeof(id) + sizeof(run) + 2 * sizeof(void*) + run.marks.capacity() * sizeof(Builder::Mark);
  return n;
}

}  // namespace keygate::persistence
