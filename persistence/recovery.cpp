#include "persistence/recovery.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include "core/clock.hpp"
#include "core/log.hpp"
#include "persistence/codec.hpp"
#include "persistence/record.hpp"
#include "persistence/segment.hpp"

namespace keygate::persistence {

namespace {

uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

bool apply(core::StateMachine& state, const RecordView& r) {
  if (r.version < 1 || r.version > payload_version(r.type)) return false;
  core::ReadSection rs;  // for the lookups below
  if (r.type == RecordType::organization) {
    auto o = decode_organization(r.payload);
    if (!o) return false;
    state.apply(std::move(o));
    return true;
  }
  if (r.type == RecordType::api_key) {
    uint64_t last_used = 0;
    core::KeyHash hash;
    auto k = decode_api_key(r.payload, hash, last_used, r.version);
    if (!k) return false;
    // Its project comes before it, in the log as in a snapshot.
    if (k->project) {
      const core::OrgSlot* org = state.index().find_org(k->organization_id);
      if (!org || !org->project(k->project)) return false;
    }
    // A record that changes a key's hash, reuses another key's or names no organization
    // is not one keygate wrote.
    return state.try_apply(hash, std::move(k), last_used);
  }
  if (r.type == RecordType::certificate) {
    auto c = decode_certificate(r.payload, r.version);
    const core::OrgSlot* org = c ? state.index().find_org(c->organization_id) : nullptr;
    if (!org) return false;
    for (uint16_t p : c->active_projects)  // projects come before what names them
      if (!org->project(p)) return false;
    state.apply(std::move(c));
    return true;
  }
  if (r.type == RecordType::project) {
    auto p = decode_project(r.payload);
    return p && state.apply(std::move(p));
  }
  if (r.type == RecordType::certificate_deleted) {
    core::Id org, cert;
    if (!decode_certificate_deletion(r.payload, org, cert)) return false;
    state.apply_certificate_deletion(org, cert);
    return true;
  }
  if (r.type == RecordType::audit_event) {
    auto e = decode_audit_event(r.payload);
    if (!e || !state.index().find_org(e->organization_id)) return false;
    state.apply(std::move(*e));
    return true;
  }
  if (r.type == RecordType::group) {
    // The group's CRC covered every byte of it: its records are read without their own
    // checks, and applied in order. A group never holds a group.
    RecordView inner;
    size_t off = 0;
    for (;;) {
      const ReadStatus st = read_record(r.payload, off, inner, /*check_crc=*/false);
      if (st == ReadStatus::end) return off > 0;
      if (st == ReadStatus::bad || inner.type == RecordType::group ||
          inner.type == RecordType::footer || !apply(state, inner))
        return false;
      off += inner.size;
    }
  }
  return false;
}

// A file mapped read-only from the page cache and read front to back: no copy into the
// heap (reading a 2 GB snapshot into a string cost more system time than decoding it, and
// held a second copy of the data set), pages mapped a window at a time in one call
// (MADV_POPULATE_READ) rather than a fault per page, and dropped from the mapping once
// read (they stay in the page cache), so the process holds one window of the file at most.
class MappedFile {
 public:
  static constexpr size_t kWindow = size_t{16} << 20;

  bool open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      return false;
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        size_ = 0;
        return false;
      }
      data_ = static_cast<char*>(p);
    }
    ::close(fd);
    return true;
  }
  ~MappedFile() {
    if (data_) ::munmap(data_, size_);
  }
  std::string_view view() const noexcept { return {data_, size_}; }

  // A pass over the file begins: the window starts at the front again.
  void rewind() noexcept { populated_ = released_ = 0; }
  // The reader is at `offset`: maps the next window when it gets there, and drops what
  // lies more than a window behind it.
  void at(size_t offset) noexcept {
    if (offset + 65536 >= populated_ && populated_ < size_) {
      const size_t len = std::min(kWindow, size_ - populated_);
      ::madvise(data_ + populated_, len, kPopulateRead);  // a failure only means faults
      populated_ += len;
    }
    if (offset > released_ + 2 * kWindow) {
      ::madvise(data_ + released_, kWindow, MADV_DONTNEED);
      released_ += kWindow;
    }
  }

 private:
#ifdef MADV_POPULATE_READ
  static constexpr int kPopulateRead = MADV_POPULATE_READ;
#else
  static constexpr int kPopulateRead = 22;  // Linux 5.14
#endif
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t populated_ = 0, released_ = 0;  // both multiples of kWindow (a page multiple)
};

// Recovery's lookahead: walks a few records in front of the one being applied and
// prefetches the table entries each API key will touch, so that by the time the key is
// inserted its two random lookups hit the cache. An unchecked read, a hint only: every
// record is checked before it is applied. Reads through `file`'s window when given.
class Lookahead {
 public:
  static constexpr int kDistance = 8;
  Lookahead(std::string_view data, core::Index& index, MappedFile* file)
      : data_(data), index_(index), file_(file) {}
  // Before applying each record: keeps the lookahead kDistance records in front.
  void step() noexcept {
    for (; lead_ < kDistance; ++lead_) advance();
    --lead_;
  }

 private:
  void advance() noexcept {
    if (file_) file_->at(ahead_);
    RecordView next;
    if (read_record(data_, ahead_, next, false) != ReadStatus::ok) return;
    ahead_ += next.size;
    core::Id id;
    core::KeyHash hash;
    if (next.type == RecordType::api_key && peek_api_key(next.payload, id, hash))
      index_.prefetch_key(hash, id);
  }
  std::string_view data_;
  core::Index& index_;
  MappedFile* file_;
  size_t ahead_ = kFileHeader;
  int lead_ = 0;
};

struct ScanResult {
  enum Status { clean, torn, corrupt } status = clean;
  size_t good_end = 0;  // offset just past the last good record
  uint64_t records = 0;
  std::string what;
};

// A segment whose creation a crash interrupted: shorter than its header, or a header's
// length of bytes that are not one (a header is made durable before any record is added).
bool creation_was_torn(std::string_view data) {
  return data.size() < kFileHeader ||
         (data.size() == kFileHeader && std::memcmp(data.data(), kSegmentMagic, 8) != 0);
}

// Validates every record of a segment and, when `state` is given, applies them. `file`,
// when the data is a MappedFile's: read through its window.
ScanResult scan_segment(std::string_view data, core::StateMachine* state,
                        MappedFile* file = nullptr) {
  ScanResult res;
  if (data.size() < kFileHeader || std::memcmp(data.data(), kSegmentMagic, 8) != 0) {
    res.status = ScanResult::corrupt;
    res.what = "not a keygate log segment (bad header)";
    return res;
  }
  size_t off = kFileHeader;
  RecordView r;
  std::optional<Lookahead> lookahead;
  if (state) lookahead.emplace(data, state->index(), file);
  for (;;) {
    if (lookahead) lookahead->step();
    ReadStatus st = read_record(data, off, r);
    if (st == ReadStatus::end) break;
    if (st == ReadStatus::bad || r.type == RecordType::footer) {
      res.good_end = off;
      res.status = valid_record_after(data, off) ? ScanResult::corrupt : ScanResult::torn;
      res.what = "a damaged record";
      return res;
    }
    if (state && !apply(*state, r)) {
      res.good_end = off;
      res.status = ScanResult::corrupt;
      res.what = "a record whose checksum holds but whose content is not valid";
      return res;
    }
    off += r.size;
    ++res.records;
  }
  res.good_end = off;
  return res;
}

// A snapshot is used only if every record and the footer check out.
bool load_snapshot(const std::string& path, uint64_t seq, core::StateMachine& state,
                   uint64_t& records, std::string& why) {
  MappedFile file;
  if (!file.open(path)) {
    why = std::strerror(errno);
    return false;
  }
  const std::string_view data = file.view();
  if (data.size() < kFileHeader || std::memcmp(data.data(), kSnapshotMagic, 8) != 0 ||
      load64(data.data() + 8) != seq) {
    why = "bad header";
    return false;
  }
  size_t off = kFileHeader;
  RecordView r;
  uint64_t count = 0, keys = 0;
  bool footer = false;
  file.rewind();
  while (read_record(data, off, r) == ReadStatus::ok) {
    file.at(off);
    off += r.size;
    if (r.type == RecordType::footer) {
      footer = r.payload.size() == 8 && load64(r.payload.data()) == count && off == data.size();
      break;
    }
    ++count;
    keys += r.type == RecordType::api_key;
  }
  if (!footer) {
    why = "incomplete or damaged (no valid footer)";
    return false;
  }
  // Every CRC checked: the second pass only decodes, into tables sized once.
  state.index().reserve_keys(state.index().key_count() + keys);
  off = kFileHeader;
  records = 0;
  file.rewind();
  Lookahead lookahead(data, state.index(), &file);
  while (read_record(data, off, r, /*check_crc=*/false) == ReadStatus::ok &&
         r.type != RecordType::footer) {
    lookahead.step();
    if (!apply(state, r)) {
      why = "a record at offset " + std::to_string(off) + " is not valid";
      records = std::max<uint64_t>(records, 1);  // something may have been applied already
      return false;
    }
    off += r.size;
    ++records;
  }
  return true;
}

[[noreturn]] void corrupt(const std::string& file, size_t offset, const std::string& what) {
  throw StartupError(
      "the log " + file + " is corrupt at offset " + std::to_string(offset) + " (" + what +
      ") and valid records follow, so this is not a torn write. " +
      "Run `keygate repair --data-dir <dir>` to cut it there (the original is kept as " + file +
      ".broken), or restore the directory from a backup.");
}

}  // namespace

RecoveryReport recover(const DataDir& dir, core::StateMachine& state, RecoverMode mode) {
  const auto started = std::chrono::steady_clock::now();
  RecoveryReport rep;
  auto listing = dir.list();

  for (auto it = listing.snapshots.rbegin(); it != listing.snapshots.rend(); ++it) {
    std::string why;
    uint64_t records = 0;
    if (load_snapshot(dir.file(snapshot_name(*it)), *it, state, records, why)) {
      rep.snapshot_loaded = true;
      rep.snapshot_seq = *it;
      rep.snapshot_records = records;
      break;
    }
    if (records) {
      // A snapshot that failed halfway may have applied some records; start over clean.
      throw StartupError(
          "the snapshot " + dir.file(snapshot_name(*it)) + " is damaged (" + why +
          "): move it out of the data directory and start again to use the older one");
    }
    rep.warnings.push_back("ignored the damaged snapshot " + snapshot_name(*it) + ": " + why);
  }

  uint64_t expected = rep.snapshot_seq;
  std::vector<uint64_t> segments;
  for (uint64_t s : listing.segments)
    if (s >= rep.snapshot_seq || (!rep.snapshot_loaded)) segments.push_back(s);
  for (size_t i = 0; i < segments.size(); ++i) {
    const uint64_t seq = segments[i];
    const std::string path = dir.file(segment_name(seq));
    if (seq != expected)
      throw StartupError("log records " + std::to_string(expected) + " to " +
                         std::to_string(seq - 1) + " are missing: " + path +
                         " does not follow on from what came before. " +
                         "Restore the data directory from a backup.");
    MappedFile file;
    if (!file.open(path)) throw StartupError("cannot read " + path + ": " + std::strerror(errno));
    const std::string_view data = file.view();
    const bool last = i + 1 == segments.size();
    if (last && creation_was_torn(data)) {
      // No more than a header's worth of bytes and no valid header: the newest segment was
      // being created when the process stopped (earlier versions created it in place).
      // Nothing was ever appended to it, so nothing acknowledged is lost.
      std::string w = "the newest log segment " + path + " holds " + std::to_string(data.size()) +
                      " bytes and no header: a crash while it was being created";
      if (mode == RecoverMode::start) {
        if (::unlink(path.c_str()) != 0 || !dir.sync())
          throw StartupError("cannot remove " + path + ": " + std::strerror(errno));
        w += ": removed";
      }
      rep.warnings.push_back(w);
      break;
    }
    ScanResult res = scan_segment(data, &state, &file);
    if (res.status == ScanResult::corrupt || (res.status == ScanResult::torn && !last))
      corrupt(path, res.good_end, res.what);
    if (res.status == ScanResult::torn) {
      std::string w = "the log " + path + " ends in a torn write at offset " +
                      std::to_string(res.good_end) + " (" +
                      std::to_string(data.size() - res.good_end) + " bytes)";
      if (mode == RecoverMode::start) {
        // A crash mid-append: nothing after this offset was ever acknowledged.
        int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(res.good_end)) != 0 ||
            ::fdatasync(fd) != 0) {
          if (fd >= 0) ::close(fd);
          throw StartupError("cannot cut the torn tail of " + path + ": " + std::strerror(errno));
        }
        ::close(fd);
        w += ": cut there";
      }
      rep.warnings.push_back(w);
    }
    rep.log_records += res.records;
    rep.log_bytes += res.good_end;
    expected = seq + res.records;
    if (last) {
      rep.has_segment = true;
      rep.segment_seq = seq;
      rep.segment_size = res.good_end;
      rep.segment_records = res.records;
    }
  }
  rep.next_seq = expected;
  state.index().reclaim();
  state.index().advance_clock(core::now_ms());  // keys that expired while the server was down
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return rep;
}

std::string repair(const DataDir& dir) {
  auto listing = dir.list();
  std::string data;
  for (size_t i = 0; i < listing.segments.size(); ++i) {
    const std::string path = dir.file(segment_name(listing.segments[i]));
    if (!read_file(path, data))
      throw StartupError("cannot read " + path + ": " + std::strerror(errno));
    ScanResult res = scan_segment(data, nullptr);
    if (res.status == ScanResult::clean) continue;
    const std::string broken = path + ".broken";
    int out = ::open(broken.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0 || ::write(out, data.data(), data.size()) != static_cast<ssize_t>(data.size()) ||
        ::fsync(out) != 0) {
      if (out >= 0) ::close(out);
      throw StartupError("cannot copy " + path + " to " + broken + ": " + std::strerror(errno));
    }
    ::close(out);
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(res.good_end)) != 0 || ::fsync(fd) != 0) {
      if (fd >= 0) ::close(fd);
      throw StartupError("cannot truncate " + path + ": " + std::strerror(errno));
    }
    ::close(fd);
    std::string did = "cut " + path + " at offset " + std::to_string(res.good_end) + " (" +
                      std::to_string(data.size() - res.good_end) +
                      " bytes dropped; original kept as " + broken + ")";
    // Later segments would no longer follow on: they go too (kept as .broken as well).
    for (size_t j = i + 1; j < listing.segments.size(); ++j) {
      const std::string later = dir.file(segment_name(listing.segments[j]));
      ::rename(later.c_str(), (later + ".broken").c_str());
      did += "; moved " + later + " aside as .broken";
    }
    dir.sync();
    return did;
  }
  return "nothing to repair: every log record is valid";
}

}  // namespace keygate::persistence
