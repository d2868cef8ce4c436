#include "persistence/recovery.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "core/log.hpp"
#include "core/thread_name.hpp"
#include "persistence/audit_disk.hpp"
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

// One record as the reader thread hands it to the applier: its view (a group's records
// come one by one, each with the group's offset), and, for the two types whose decoding is
// most of the work (API keys and audit events: allocations, strings), the decoded object.
struct Decoded {
  RecordView record{};
  size_t offset = 0;  // of the record in the file; a group's for its records
  // The header of the record whose CRC the applier checks before it applies this: the
  // record's own, or its group's on the group's first record; null on a group's others.
  const char* check = nullptr;
  bool framed = true;  // false: a group whose records are not framed as FORMAT.md says
  core::KeyHash hash{};
  uint64_t last_used_ms = 0;
  std::unique_ptr<core::ApiKey> key;  // an API key record's; null if it did not decode
  // An audit event's; null if it did not decode. On the heap: most records are keys, and a
  // batch of Decoded is written and read by three threads.
  std::unique_ptr<core::AuditEvent> event;
};

bool known_version(const RecordView& r) {
  return r.version >= 1 && r.version <= payload_version(r.type);
}

// The reader's and the decoder's part: decodes what is expensive to decode. Never touches
// the index.
void decode(Decoded& d) {
  if (!d.framed || !known_version(d.record)) return;
  if (d.record.type == RecordType::api_key)
    d.key = decode_api_key(d.record.payload, d.hash, d.last_used_ms, d.record.version);
  else if (d.record.type == RecordType::audit_event)
    if (std::optional<core::AuditEvent> e = decode_audit_event(d.record.payload))
      d.event = std::make_unique<core::AuditEvent>(std::move(*e));
}

// The applier's half, on the one writer thread: false when the record is not one keygate
// wrote (it does not decode, or names what does not exist).
// A snapshot's audit events go to `audit_disk` (read from the file from then on) when it
// can index them, else into memory like the log's.
bool apply(core::StateMachine& state, Decoded& d, SnapshotAudit::Builder* audit_disk) {
  const RecordView& r = d.record;
  if (!d.framed || !known_version(r)) return false;
  core::ReadSection rs;  // for the lookups below
  switch (r.type) {
    case RecordType::organization: {
      auto o = decode_organization(r.payload);
      if (!o) return false;
      state.apply(std::move(o));
      return true;
    }
    case RecordType::api_key: {
      if (!d.key) return false;
      // Its project comes before it, in the log as in a snapshot.
      if (d.key->project) {
        const core::OrgSlot* org = state.index().find_org(d.key->organization_id);
        if (!org || !org->project(d.key->project)) return false;
      }
      // A record that changes a key's hash, reuses another key's or names no organization
      // is not one keygate wrote.
      return state.try_apply(d.hash, std::move(d.key), d.last_used_ms);
    }
    case RecordType::certificate: {
      auto c = decode_certificate(r.payload, r.version);
      const core::OrgSlot* org = c ? state.index().find_org(c->organization_id) : nullptr;
      if (!org) return false;
      for (uint16_t p : c->active_projects)  // projects come before what names them
        if (!org->project(p)) return false;
      state.apply(std::move(c));
      return true;
    }
    case RecordType::project: {
      auto p = decode_project(r.payload);
      return p && state.apply(std::move(p));
    }
    case RecordType::certificate_deleted: {
      core::Id org, cert;
      if (!decode_certificate_deletion(r.payload, org, cert)) return false;
      state.apply_certificate_deletion(org, cert);
      return true;
    }
    case RecordType::audit_event:
      if (!d.event || !state.index().find_org(d.event->organization_id)) return false;
      if (audit_disk &&
          audit_disk->add(d.event->organization_id, d.event->id, d.offset, d.record.size))
        return true;
      state.apply(std::move(*d.event));
      return true;
    case RecordType::group:  // the reader hands over a group's records, never the group
    case RecordType::footer:
      return false;
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
  // Small enough that the file's pages mapped at a time (up to three windows) add little
  // to a load's peak resident memory; large enough that a 2 GB file takes a few hundred
  // madvise calls. (The threads reading behind the reader lag it by about a megabyte.)
  static constexpr size_t kWindow = size_t{4} << 20;

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

// Recovery's threads. A reader thread walks the file front to back, record by record, and
// cuts it into batches; the records whose decoding is the work (API keys and audit events:
// allocations, strings, and the kernel zeroing the fresh pages they land on) are decoded
// by the reader for every other batch and by a decoder thread for the others; the calling
// thread, the index's one writer, takes the batches back in order, checks each record's
// CRC and applies it. Three threads on two cores: whichever runs short of work gives its
// core to the others (perf/RESULTS.md "Recovery"). Each queue holds a few batches, so the
// reader runs at most that far ahead and the records the others read are still in the
// window it mapped (MappedFile).
// Records are decoded before their CRC is checked: decoding is bounds-checked (and
// fuzzed) and touches nothing shared, and nothing decoded is applied before its CRC holds.
class BatchQueue {
 public:
  using Batch = std::vector<Decoded>;
  // Records per hand-over: each one may wake a thread, which costs a few microseconds
  // (more in a VM: 14 % of a 10 M-key load's time at 256 records a batch).
  static constexpr size_t kBatch = 1024;
  static constexpr size_t kDepth = 4;  // batches in flight

  // The reader: waits while the queue is full; false once the writer has stopped.
  bool push(Batch&& batch) {
    std::unique_lock lock(mutex_);
    room_.wait(lock, [&] { return queue_.size() < kDepth || cancelled_; });
    if (cancelled_) return false;
    queue_.push_back(std::move(batch));
    ready_.notify_one();
    return true;
  }
  // The reader: nothing more is coming.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    ready_.notify_one();
  }
  // The writer: the next batch, or false once the reader has closed and all is taken.
  bool pop(Batch& out) {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return false;
    out = std::move(queue_.front());
    queue_.pop_front();
    room_.notify_one();
    return true;
  }
  // The writer: it stopped at a record it could not apply; the reader stops too.
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    queue_.clear();
    room_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_, room_;
  std::deque<Batch> queue_;
  bool closed_ = false, cancelled_ = false;
};

// The queues between the threads: the reader's own batches (0, 2, 4, ...), the others
// (1, 3, 5, ...) on their way to the decoder and back from it.
struct Pipeline {
  BatchQueue decoded[2];  // [0] from the reader, [1] from the decoder
  BatchQueue raw;         // from the reader to the decoder
  void cancel() {
    for (BatchQueue& q : decoded) q.cancel();
    raw.cancel();
  }
};

// Where the records of a file end, and why.
struct End {
  enum class Why {
    clean,    // at the end of the data
    damaged,  // a record that is short, runs past the end or fails its CRC
    footer,   // a footer record (the end of a snapshot; in a segment, damage)
    invalid,  // a record whose CRC holds but whose content keygate would not have written
    stopped,  // the reader only: the writer stopped first
  } why = Why::clean;
  size_t offset = 0;     // of that record; the data's size when clean
  uint64_t records = 0;  // whole records before it (a group is one)
};

// The reader: walks `data` from its header on until its end, a damaged record or a footer.
// With `out`, hands every record (a group's one by one) over, decoded, for the writer to
// check and apply; without, checks every CRC itself (repair). `file`, when the data is a
// MappedFile's: reads through its window.
End walk(std::string_view data, MappedFile* file, Pipeline* out) {
  End end;
  size_t off = kFileHeader;
  BatchQueue::Batch batch;
  uint64_t batches = 0;
  auto hand_over = [&](const RecordView& r, size_t at, const char* check, bool framed) {
    batch.emplace_back();
    Decoded& d = batch.back();
    d.record = r;
    d.offset = at;
    d.check = check;
    d.framed = framed;
  };
  auto flush = [&] {
    if (!out || batch.empty()) return true;
    bool taken;
    if (batches++ % 2 == 0) {
      for (Decoded& d : batch) decode(d);
      taken = out->decoded[0].push(std::exchange(batch, BatchQueue::Batch()));
    } else {
      taken = out->raw.push(std::exchange(batch, BatchQueue::Batch()));
    }
    batch.reserve(BatchQueue::kBatch);
    return taken;
  };
  if (out) batch.reserve(BatchQueue::kBatch);
  for (;;) {
    if (file) file->at(off);
    RecordView r;
    const ReadStatus st = read_record(data, off, r, /*check_crc=*/out == nullptr);
    if (st == ReadStatus::end) break;
    if (st == ReadStatus::bad || r.type == RecordType::footer) {
      end.why = st == ReadStatus::bad ? End::Why::damaged : End::Why::footer;
      break;
    }
    const char* header = data.data() + off;
    if (out && r.type == RecordType::group) {
      // A group holds at least one record and never a group or a footer; its CRC covers
      // every byte of it, so its records have no checks of their own.
      RecordView inner;
      size_t in = 0;
      bool framed = true;
      for (const char* check = header;; check = nullptr) {
        const ReadStatus s = read_record(r.payload, in, inner, /*check_crc=*/false);
        if (s == ReadStatus::end) {
          framed = in > 0;
          break;
        }
        if (s == ReadStatus::bad || inner.type == RecordType::group ||
            inner.type == RecordType::footer) {
          framed = false;
          break;
        }
        hand_over(inner, off, check, true);
        in += inner.size;
      }
      if (!framed) hand_over(r, off, header, false);
    } else if (out) {
      hand_over(r, off, header, true);
    }
    off += r.size;
    ++end.records;
    if (batch.size() >= BatchQueue::kBatch && !flush()) {
      end.why = End::Why::stopped;
      break;
    }
  }
  end.offset = off;
  if (end.why != End::Why::stopped) flush();
  return end;
}

// Both threads over one file: the reader walks it, this thread checks and applies what it
// hands over. The end is the writer's when it stopped first (a CRC that fails, a record
// that does not apply), else the reader's. `applied` counts what changed the state (a
// group's records one by one): a snapshot that ends badly after some did cannot be used.
End replay(std::string_view data, MappedFile* file, core::StateMachine& state, uint64_t& applied,
           SnapshotAudit::Builder* audit_disk = nullptr) {
  End reader_end, end;
  Pipeline pipeline;
  std::exception_ptr failed[2];  // std::bad_alloc: rethrown below, on the caller's thread
  std::thread reader([&] {
    core::name_thread("kg-recovery");
    try {
      reader_end = walk(data, file, &pipeline);
    } catch (...) {
      failed[0] = std::current_exception();
    }
    pipeline.decoded[0].close();
    pipeline.raw.close();
  });
  std::thread decoder([&] {
    core::name_thread("kg-decoder");
    try {
      for (BatchQueue::Batch b; pipeline.raw.pop(b);) {
        for (Decoded& d : b) decode(d);
        if (!pipeline.decoded[1].push(std::move(b))) break;
      }
    } catch (...) {
      failed[1] = std::current_exception();
    }
    pipeline.decoded[1].close();
  });
  // Prefetches the table entries of the key a few records ahead, so that by the time it is
  // applied its two random lookups into tables of millions hit the cache (the index passes
  // over a key that a bulk load puts without a lookup: a snapshot's, a log's new keys).
  constexpr size_t kAhead = 8;
  core::Index& index = state.index();
  auto prefetch_key = [&](const Decoded& d) {
    if (d.key) index.prefetch_key(d.hash, d.key->id);
  };
  applied = 0;
  BatchQueue::Batch batch;
  for (uint64_t n = 0; end.why == End::Why::clean && pipeline.decoded[n % 2].pop(batch); ++n) {
    for (size_t i = 0; i < std::min(kAhead, batch.size()); ++i) prefetch_key(batch[i]);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (i + kAhead < batch.size()) prefetch_key(batch[i + kAhead]);
      Decoded& d = batch[i];
      if (d.check && !crc_holds(d.check)) {
        end.why = End::Why::damaged;
      } else if (!apply(state, d, audit_disk)) {
        end.why = End::Why::invalid;
      } else {
        ++applied;
        end.records += d.check != nullptr;
        continue;
      }
      end.offset = d.offset;
      pipeline.cancel();
      break;
    }
  }
  reader.join();
  decoder.join();
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
  return end.why == End::Why::clean ? reader_end : end;
}

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

// Validates every record of a segment and, when `state` is given, applies them (on two
// threads: replay()). `file`, when the data is a MappedFile's: read through its window.
ScanResult scan_segment(std::string_view data, core::StateMachine* state,
                        MappedFile* file = nullptr) {
  ScanResult res;
  if (data.size() < kFileHeader || std::memcmp(data.data(), kSegmentMagic, 8) != 0) {
    res.status = ScanResult::corrupt;
    res.what = "not a keygate log segment (bad header)";
    return res;
  }
  uint64_t applied = 0;
  const End end = state ? replay(data, file, *state, applied) : walk(data, file, nullptr);
  res.good_end = end.offset;
  res.records = end.records;
  if (end.why == End::Why::invalid) {
    res.status = ScanResult::corrupt;
    res.what = "a record whose checksum holds but whose content is not valid";
  } else if (end.why != End::Why::clean) {  // damaged, or a footer, which has no place here
    res.status = valid_record_after(data, end.offset) ? ScanResult::corrupt : ScanResult::torn;
    res.what = "a damaged record";
  }
  return res;
}

// A snapshot's footer (FORMAT.md "Snapshots"): its last record. Version 2 also counts the
// API keys, which size the key tables before the first is read; version 1 (snapshots
// written before 2026-12-02) only the records.
struct Footer {
  size_t offset = 0;
  uint64_t records = 0;
  std::optional<uint64_t> keys;
};

std::optional<Footer> read_footer(std::string_view data) {
  for (const size_t payload : {size_t{16}, size_t{8}}) {
    const size_t size = (kRecordHeader + payload + 7) & ~size_t{7};
    if (data.size() < kFileHeader + size) continue;
    RecordView r;
    const size_t off = data.size() - size;
    if (read_record(data, off, r) != ReadStatus::ok || r.type != RecordType::footer ||
        r.payload.size() != payload || r.version != (payload == 16 ? 2 : 1))
      continue;
    Footer f;
    f.offset = off;
    f.records = load64(r.payload.data());
    if (payload == 16) f.keys = load64(r.payload.data() + 8);
    return f;
  }
  return std::nullopt;
}

// The API keys of a snapshot whose footer does not count them: a walk of the record
// headers alone (the replay checks the CRCs).
uint64_t count_keys(std::string_view data, size_t end) {
  uint64_t keys = 0;
  RecordView r;
  for (size_t off = kFileHeader;
       off < end && read_record(data, off, r, /*check_crc=*/false) == ReadStatus::ok; off += r.size)
    keys += r.type == RecordType::api_key;
  return keys;
}

// Opens snapshot-<seq>.kgs at `path` and reads its header and footer: the file's bytes and
// its footer, or nullopt with `why`.
std::optional<Footer> open_snapshot(MappedFile& file, const std::string& path, uint64_t seq,
                                    std::string_view& data, std::string& why) {
  if (!file.open(path)) {
    why = std::strerror(errno);
    return std::nullopt;
  }
  data = file.view();
  if (data.size() < kFileHeader || std::memcmp(data.data(), kSnapshotMagic, 8) != 0 ||
      load64(data.data() + 8) != seq) {
    why = "bad header";
    return std::nullopt;
  }
  std::optional<Footer> footer = read_footer(data);
  if (!footer) why = "incomplete or damaged (no valid footer)";
  return footer;
}

// A snapshot is used only if every record and the footer check out. Its footer is read
// first, so a snapshot that was never finished is passed over before anything is applied;
// a damaged record found later (`records` > 0 then) has applied what came before it.
bool load_snapshot(const std::string& path, uint64_t seq, core::StateMachine& state,
                   uint64_t& records, std::string& why) {
  MappedFile file;
  std::string_view data;
  const std::optional<Footer> footer = open_snapshot(file, path, seq, data, why);
  if (!footer) return false;
  // The key tables sized once, before the first key, and filled in one pass each at the
  // end (Index::begin_bulk_load): no rehash as they fill, no random access per key.
  // The footer's counts size what is reserved, so they are bounded by the file first: a
  // record takes at least 16 bytes and an API key's far more than 96 (FORMAT.md).
  const uint64_t room = footer->offset - kFileHeader;
  if (footer->records > room / 16 || (footer->keys && *footer->keys > room / 96)) {
    why = "its footer counts more records than the file holds";
    return false;
  }
  const uint64_t keys = footer->keys ? *footer->keys : count_keys(data, footer->offset);
  core::Index& index = state.index();
  index.begin_bulk_load(core::Index::BulkLoad::snapshot, keys);
  file.rewind();
  SnapshotAudit::Builder audit;
  const End end = replay(data, &file, state, records, &audit);
  const bool distinct = index.end_bulk_load();
  switch (end.why) {
    case End::Why::footer:
      if (end.offset != footer->offset || end.records != footer->records) {
        why = "its footer does not match its records";
        return false;
      }
      if (!distinct) {
        why = "two of its keys have the same id or the same value";
        return false;
      }
      records = end.records;
      // Its audit events are read from it from now on (core/audit.hpp).
      if (!audit.empty()) {
        std::shared_ptr<const SnapshotAudit> disk = audit.finish(path, why);
        if (!disk) return false;
        state.index().audit().set_disk(std::move(disk));
      }
      return true;
    case End::Why::invalid:
      why = "a record at offset " + std::to_string(end.offset) + " is not valid";
      return false;
    default:
      why = "a damaged record at offset " + std::to_string(end.offset);
      return false;
  }
}

}  // namespace

// Every record's CRC and the footer, before anything is applied (a snapshot another node
// sent: load_snapshot() alone would apply the records before a damaged one).
bool check_snapshot(const std::string& path, uint64_t seq, std::string& why) {
  MappedFile file;
  std::string_view data;
  const std::optional<Footer> footer = open_snapshot(file, path, seq, data, why);
  if (!footer) return false;
  file.rewind();
  const End end = walk(data, &file, nullptr);
  if (end.why != End::Why::footer || end.offset != footer->offset ||
      end.records != footer->records) {
    why = "a damaged record at offset " + std::to_string(end.offset);
    return false;
  }
  // Whole, and readable by this keygate: a type and payload version it knows. A snapshot
  // from a newer keygate (a rolling upgrade) is refused here, before anything is applied,
  // rather than fail its load halfway and stop this node from starting at all.
  RecordView r;
  for (size_t off = kFileHeader; off < footer->offset; off += r.size) {
    if (read_record(data, off, r, /*check_crc=*/false) != ReadStatus::ok) break;
    const bool known = r.type >= RecordType::organization && r.type <= RecordType::audit_event &&
                       r.type != RecordType::certificate_deleted;  // what a snapshot holds
    if (!known || !known_version(r)) {
      why = "the record at offset " + std::to_string(off) + " (type " +
            std::to_string(static_cast<int>(r.type)) + ", version " +
            std::to_string(static_cast<int>(r.version)) +
            ") is not one this keygate reads: written by a newer keygate?";
      return false;
    }
  }
  return true;
}

namespace {

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

  // The log's new keys go into the key tables many at a time, as a snapshot's do
  // (Index::BulkLoad::log): a tail of new keys is read at a snapshot's rate.
  core::Index& index = state.index();
  index.begin_bulk_load(core::Index::BulkLoad::log);
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
  if (!index.end_bulk_load())
    throw StartupError("the log in " + dir.path() +
                       " holds two API keys with the same id or the same value: records keygate "
                       "did not write. Restore the data directory from a backup.");
  rep.next_seq = expected;
  index.reclaim();
  index.advance_clock(core::now_ms());  // keys that expired while the server was down
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
