#include "persistence/root_key.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "persistence/data_dir.hpp"

namespace keygate::persistence {

RootKey load_root_key(const std::string& file, const std::string& data_dir) {
  RootKey root;
  root.path = file.empty() ? data_dir + "/root.key" : file;
  std::string value;
  if (read_file(root.path, value)) {
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r' || value.back() == ' '))
      value.pop_back();
    if (value.size() < 32)
      throw StartupError("the root key in " + root.path +
                         " is shorter than 32 characters: put a long random "
                         "secret there (or delete the file to have one generated)");
    root.hash = core::hash_key(value);
    root.value = std::move(value);
    return root;
  }
  if (!file.empty())
    throw StartupError("cannot read the root key file " + file + ": " + std::strerror(errno));
  value = core::generate_key(core::KeyType::secret, core::Environment::live);
  int fd = ::open(root.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw StartupError("cannot create " + root.path + ": " + std::strerror(errno));
  value.push_back('\n');
  const bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw StartupError("cannot write " + root.path + ": " + std::strerror(errno));
  value.pop_back();
  root.hash = core::hash_key(value);
  root.value = std::move(value);
  root.generated = true;
  return root;
}

}  // namespace keygate::persistence
