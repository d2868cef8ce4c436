// Fuzz target: recovery, the real entry point, over a data directory holding what the
// input makes: the first byte picks a log segment or a snapshot (plus an empty segment
// after it, as a server leaves them), the rest is the file's records after its header.
// Corrupt input must be refused with a StartupError naming the file and offset, or
// ignored as a torn tail or a damaged snapshot; never a crash, a read out of bounds, an
// exception of another kind, or a record applied that the index would not accept.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/index.hpp"
#include "core/state_machine.hpp"
#include "persistence/data_dir.hpp"
#include "persistence/recovery.hpp"
#include "persistence/segment.hpp"

using namespace keygate;

namespace {

// A scratch directory in /dev/shm for the whole run, removed at exit.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char tmpl[] = "/dev/shm/keygate-fuzz-XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    path = tmpl;
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
};

const std::string& directory() {
  static const ScratchDir dir;
  return dir.path;
}

void write_file(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || ::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
    std::abort();
  ::close(fd);
}

std::string header(const char* magic, uint64_t seq) {
  std::string h(magic, 8);
  h.append(reinterpret_cast<const char*>(&seq), 8);
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string& dir = directory();
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    std::filesystem::remove(entry.path());
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    write_file(dir + "/" + persistence::snapshot_name(0),
               header(persistence::kSnapshotMagic, 0) + body);
    write_file(dir + "/" + persistence::segment_name(0), header(persistence::kSegmentMagic, 0));
  } else {
    write_file(dir + "/" + persistence::segment_name(0),
               header(persistence::kSegmentMagic, 0) + body);
  }
  core::RcuThread rcu;
  core::Index index;
  core::StateMachine state(index);
  persistence::DataDir d(dir);
  try {
    persistence::recover(d, state, persistence::RecoverMode::check);
  } catch (const persistence::StartupError&) {
    // Refused, with the file and offset in the message.
  }
  return 0;
}
