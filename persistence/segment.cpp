#include "persistence/segment.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "persistence/record.hpp"

namespace keygate::persistence {

Segment::~Segment() {
  close_fd();
}

Segment::Segment(Segment&& o) noexcept {
  *this = std::move(o);
}

Segment& Segment::operator=(Segment&& o) noexcept {
  if (this != &o) {
    close_fd();
    fd_ = std::exchange(o.fd_, -1);
    path_ = std::move(o.path_);
    dir_ = o.dir_;
    first_seq_ = o.first_seq_;
    records_ = o.records_;
    durable_records_ = o.durable_records_;
    size_ = o.size_;
    durable_size_ = o.durable_size_;
    sync_failed_ = o.sync_failed_;
  }
  return *this;
}

void Segment::close_fd() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool Segment::create(const DataDir& dir, uint64_t first_seq, Segment& out, std::string& error) {
  Segment s;
  s.dir_ = &dir;
  s.path_ = dir.file(segment_name(first_seq));
  s.first_seq_ = first_seq;
  // The header is written and made durable under a temporary name, then renamed: a crash
  // at any point leaves either no segment of this name or one with a whole header, never
  // an empty file the next start would take for a damaged log. (A leftover .tmp is removed
  // when the data directory is opened.)
  const std::string tmp = s.path_ + ".tmp";
  s.fd_ = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (s.fd_ < 0) {
    error = "cannot create " + tmp + ": " + std::strerror(errno);
    return false;
  }
  char header[kFileHeader];
  std::memcpy(header, kSegmentMagic, 8);
  std::memcpy(header + 8, &first_seq, 8);
  if (::pwrite(s.fd_, header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) ||
      ::fdatasync(s.fd_) != 0 || ::rename(tmp.c_str(), s.path_.c_str()) != 0) {
    error = "cannot write " + s.path_ + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  // The new name must survive a crash before anything is acknowledged from this file.
  if (!dir.sync()) {
    error = "cannot fsync the data directory: " + std::string(std::strerror(errno));
    return false;
  }
  s.size_ = s.durable_size_ = kFileHeader;
  out = std::move(s);
  return true;
}

bool Segment::open(const DataDir& dir, uint64_t first_seq, uint64_t size, uint64_t records,
                   Segment& out, std::string& error) {
  Segment s;
  s.dir_ = &dir;
  s.path_ = dir.file(segment_name(first_seq));
  s.first_seq_ = first_seq;
  s.fd_ = ::open(s.path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (s.fd_ < 0) {
    error = "cannot open " + s.path_ + ": " + std::strerror(errno);
    return false;
  }
  s.size_ = s.durable_size_ = size;
  s.records_ = s.durable_records_ = records;
  out = std::move(s);
  return true;
}

bool Segment::append(std::string_view bytes, uint64_t records, std::string& error) {
  if (!usable()) {
    error = "the log is not writable since an fsync failed";
    return false;
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n =
        ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(size_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = "cannot append to " + path_ + ": " + std::strerror(n < 0 ? errno : ENOSPC);
      // Cut the half-written batch off so that the log ends on a record boundary; if even
      // that fails, the torn tail is still recognised and cut at the next start.
      if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) sync_failed_ = true;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  size_ += bytes.size();
  records_ += records;
  return true;
}

bool Segment::sync(std::string& error) {
  if (!usable()) {
    error = "the log is not writable since an fsync failed";
    return false;
  }
  if (size_ == durable_size_) return true;
  if (::fdatasync(fd_) != 0) {
    error = "fdatasync of " + path_ + " failed: " + std::strerror(errno);
    // Do not retry: after a failed fsync the kernel may have dropped the dirty pages and
    // a second fsync would "succeed" over lost data. reopen() starts from what is known.
    sync_failed_ = true;
    return false;
  }
  durable_size_ = size_;
  durable_records_ = records_;
  return true;
}

bool Segment::reopen(std::string& error) {
  close_fd();
  fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
  if (fd_ < 0) {
    error = "cannot reopen " + path_ + ": " + std::strerror(errno);
    return false;
  }
  if (::ftruncate(fd_, static_cast<off_t>(durable_size_)) != 0 || ::fdatasync(fd_) != 0) {
    error = "cannot truncate " + path_ + " back to its durable size: " + std::strerror(errno);
    close_fd();
    return false;
  }
  std::string data;
  if (!read_file(path_, data) || data.size() != durable_size_) {
    error = "cannot re-read " + path_;
    close_fd();
    return false;
  }
  uint64_t count = 0;
  RecordView r;
  size_t off = kFileHeader;
  ReadStatus st;
  while ((st = read_record(data, off, r)) == ReadStatus::ok) {
    off += r.size;
    ++count;
  }
  if (st != ReadStatus::end || count != durable_records_) {
    error = "re-reading " + path_ + " after a failed fsync found damage at offset " +
            std::to_string(off);
    close_fd();
    return false;
  }
  size_ = durable_size_;
  records_ = durable_records_;
  sync_failed_ = false;
  return true;
}

}  // namespace keygate::persistence
