#include "persistence/snapshot.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "core/log.hpp"
#include "persistence/audit_disk.hpp"
#include "persistence/codec.hpp"
#include "persistence/record.hpp"
#include "persistence/segment.hpp"

namespace keygate::persistence {

namespace {

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

bool write_snapshot(const DataDir& dir, const core::Index& index, uint64_t seq,
                    uint64_t audit_cutoff_ms, SnapshotInfo& info, std::string& error) {
  const auto started = std::chrono::steady_clock::now();
  const std::string final_path = dir.file(snapshot_name(seq));
  const std::string tmp_path = final_path + ".tmp";
  int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create " + tmp_path + ": " + std::strerror(errno);
    return false;
  }
  auto fail = [&](const std::string& what) {
    error = what + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmp_path.c_str());
    return false;
  };
  std::string buf, payload;
  buf.append(kSnapshotMagic, 8).append(reinterpret_cast<const char*>(&seq), 8);
  uint64_t records = 0, keys = 0, bytes = 0;
  // Organization slots are never freed, so the walk can leave the read section between
  // organizations; each organization's keys (whose slots are reused after a grace period
  // once reclaimed) and records are walked and encoded inside one.
  core::OrgSlot* org;
  {
    core::ReadSection rs;
    org = index.first_org();
  }
  while (org) {
    {
      core::ReadSection rs;
      payload.clear();
      encode(*org->load(), payload);
      append_record(buf, RecordType::organization, payload);
      ++records;
      if (const core::ProjectSet* projects = org->project_set()) {  // before the keys in them
        for (const auto& p : projects->items) {
          payload.clear();
          encode(*p, payload);
          append_record(buf, RecordType::project, payload);
          ++records;
        }
      }
      for (core::KeySlot* k = org->keys(); k; k = k->next()) {
        payload.clear();
        encode(k->hash, *k->load(), k->last_used_ms(), payload);
        append_record(buf, RecordType::api_key, payload);
        ++records;
        ++keys;
        if (buf.size() >= (1 << 20)) {
          if (!write_all(fd, buf)) return fail("cannot write " + tmp_path);
          bytes += buf.size();
          buf.clear();
        }
      }
      if (const core::CertificateSet* certs = org->certs()) {
        for (const auto& c : certs->items) {
          payload.clear();
          encode(*c, payload);
          append_record(buf, RecordType::certificate, payload);
          ++records;
        }
      }
      org = org->next();
    }
  }
  // The audit log last: every organization is in the file before the events that name it.
  // Each organization's together, in id order, as SnapshotAudit reads them back.
  bool written = true;
  SnapshotAudit::Builder audit;
  std::vector<std::pair<core::Id, core::Id>> from_memory;
  try {
    index.audit().for_each(audit_cutoff_ms, [&](const core::AuditEvent& e, bool in_memory) {
      payload.clear();
      encode(e, payload);
      const uint64_t at = bytes + buf.size();
      append_record(buf, RecordType::audit_event, payload);
      if (audit.add(e.organization_id, e.id, at, bytes + buf.size() - at) && in_memory)
        from_memory.emplace_back(e.organization_id, e.id);
      ++records;
      if (written && buf.size() >= (1 << 20)) {
        written = write_all(fd, buf);
        bytes += buf.size();
        buf.clear();
      }
    });
  } catch (const std::runtime_error& e) {
    // The previous snapshot's events cannot be read: this one would lose them. The log
    // segments stay (remove_covered() runs only after a good snapshot).
    errno = EIO;
    return fail(std::string("cannot copy the audit events: ") + e.what());
  }
  if (!written) return fail("cannot write " + tmp_path);
  // The footer (version 2): how many records came before it, and how many of them were API
  // keys, so that a reader sizes its tables before the first one (FORMAT.md "Snapshots").
  payload.assign(reinterpret_cast<const char*>(&records), 8);
  payload.append(reinterpret_cast<const char*>(&keys), 8);
  append_record(buf, RecordType::footer, payload);
  if (!write_all(fd, buf)) return fail("cannot write " + tmp_path);
  bytes += buf.size();
  // If we crash before the rename, the next start removes the .tmp and uses the previous
  // snapshot and the log, which are untouched. After the rename and the directory fsync,
  // the new snapshot is the one recovery finds.
  if (::fdatasync(fd) != 0) return fail("cannot fsync " + tmp_path);
  ::close(fd);
  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    error = "cannot rename " + tmp_path + ": " + std::strerror(errno);
    ::unlink(tmp_path.c_str());
    return false;
  }
  if (!dir.sync()) {
    error = "cannot fsync the data directory: " + std::string(std::strerror(errno));
    return false;
  }
  std::string audit_error;
  info.audit = audit.finish(final_path, audit_error);
  if (info.audit) {
    std::sort(from_memory.begin(), from_memory.end());
    info.audit_from_memory = std::move(from_memory);
  } else {
    core::log(core::Level::warn, "snapshot.audit_unreadable", {{"error", audit_error}});
  }
  info.audit_cutoff_ms = audit_cutoff_ms;
  info.seq = seq;
  info.records = records;
  info.bytes = bytes;
  info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return true;
}

void publish_audit(core::Index& index, SnapshotInfo& info) {
  if (!info.audit) return;
  // First: no reader misses an event.
  index.audit().set_disk(std::move(info.audit), info.audit_cutoff_ms);
  index.audit().drop_written(info.audit_from_memory);
  info.audit_from_memory = {};
}

void remove_covered(const DataDir& dir, uint64_t seq) {
  // Only after the snapshot is durable: until then these files are what recovery needs.
  auto listing = dir.list();
  for (uint64_t s : listing.segments)
    if (s < seq) ::unlink(dir.file(segment_name(s)).c_str());
  for (uint64_t s : listing.snapshots)
    if (s < seq) ::unlink(dir.file(snapshot_name(s)).c_str());
  dir.sync();
}

}  // namespace keygate::persistence
