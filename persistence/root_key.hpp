// The operator's root key: read from a file, or generated into <data-dir>/root.key (0600)
// on first start. Only its SHA-256 stays in memory.
#pragma once

#include <string>

#include "core/key_format.hpp"

namespace keygate::persistence {

struct RootKey {
  core::KeyHash hash{};
  // The key itself: cluster mode presents it to a peer for its snapshot (nowhere else).
  std::string value;
  std::string path;  // where it was read from or written to
  bool generated = false;
};

// Throws StartupError with a message naming the file when it cannot be read or written.
RootKey load_root_key(const std::string& file, const std::string& data_dir);

}  // namespace keygate::persistence
