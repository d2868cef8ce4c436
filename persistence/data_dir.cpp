#include "persistence/data_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace keygate::persistence {

namespace {

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

bool parse_numbered(std::string_view name, std::string_view prefix, std::string_view suffix,
                    uint64_t& seq) {
  if (!name.starts_with(prefix) || !name.ends_with(suffix)) return false;
  std::string_view digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() != 16) return false;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), seq, 16);
  return r.ec == std::errc{} && r.ptr == digits.data() + digits.size();
}

}  // namespace

std::string segment_name(uint64_t first_seq) {
  return "log-" + hex16(first_seq) + ".kgl";
}
std::string snapshot_name(uint64_t seq) {
  return "snapshot-" + hex16(seq) + ".kgs";
}

DataDir::DataDir(std::string path) : path_(std::move(path)) {
  while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  if (::mkdir(path_.c_str(), 0700) == 0) {
    is_new_ = true;
  } else if (errno != EEXIST) {
    throw StartupError("cannot create the data directory " + path_ + ": " + std::strerror(errno));
  }
  dir_fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0)
    throw StartupError("cannot open the data directory " + path_ + ": " + std::strerror(errno));
  lock_fd_ = ::open(file("LOCK").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0)
    throw StartupError("cannot create " + file("LOCK") + ": " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    [[maybe_unused]] ssize_t n = ::pread(lock_fd_, pid, sizeof pid - 1, 0);
    std::string holder = pid[0] ? " (pid " + std::string(pid, strcspn(pid, "\n")) + ")" : "";
    ::close(lock_fd_);
    ::close(dir_fd_);
    throw StartupError("another keygate process" + holder + " is using the data directory " +
                       path_ + ": stop it, or give this one another --data-dir");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) == 0) {
    [[maybe_unused]] ssize_t n = ::pwrite(lock_fd_, pid.data(), pid.size(), 0);
  }
  // Whatever a crash left of a snapshot being written is of no use.
  for (const std::string& name : [&] {
         std::vector<std::string> tmp;
         if (DIR* d = ::opendir(path_.c_str())) {
           while (dirent* e = ::readdir(d))
             if (std::string_view(e->d_name).ends_with(".tmp")) tmp.emplace_back(e->d_name);
           ::closedir(d);
         }
         return tmp;
       }())
    ::unlink(file(name).c_str());
}

DataDir::~DataDir() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

bool DataDir::sync() const noexcept {
  return ::fsync(dir_fd_) == 0;
}

DataDir::Listing DataDir::list() const {
  Listing l;
  if (DIR* d = ::opendir(path_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      uint64_t seq;
      if (parse_numbered(e->d_name, "log-", ".kgl", seq))
        l.segments.push_back(seq);
      else if (parse_numbered(e->d_name, "snapshot-", ".kgs", seq))
        l.snapshots.push_back(seq);
    }
    ::closedir(d);
  }
  std::sort(l.segments.begin(), l.segments.end());
  std::sort(l.snapshots.begin(), l.snapshots.end());
  return l;
}

bool read_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return false;
  }
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  ::close(fd);
  return true;
}

}  // namespace keygate::persistence
