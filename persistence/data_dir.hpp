// DataDir: the data directory, created 0700 and locked with flock(LOCK) so that one server
// (or one offline `check`/`repair`) uses it at a time. Knows the names of its files.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace keygate::persistence {

// Thrown when keygate must refuse to start: the message says what to do.
struct StartupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string segment_name(uint64_t first_seq);
std::string snapshot_name(uint64_t seq);

class DataDir {
 public:
  explicit DataDir(std::string path);  // creates and locks; throws StartupError
  ~DataDir();
  DataDir(const DataDir&) = delete;
  DataDir& operator=(const DataDir&) = delete;

  const std::string& path() const noexcept { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }
  // fsync of the directory itself: makes creations, renames and deletions durable.
  bool sync() const noexcept;
  bool is_new() const noexcept { return is_new_; }

  struct Listing {
    std::vector<uint64_t> segments;   // ascending
    std::vector<uint64_t> snapshots;  // ascending
  };
  Listing list() const;

 private:
  std::string path_;
  int dir_fd_ = -1;
  int lock_fd_ = -1;
  bool is_new_ = false;
};

// Reads a whole file; false with errno set on failure.
bool read_file(const std::string& path, std::string& out);

}  // namespace keygate::persistence
