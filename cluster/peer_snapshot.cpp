#include "cluster/peer_snapshot.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include "persistence/recovery.hpp"

namespace keygate::cluster {

namespace {

struct Transfer {
  int fd = -1;
  uint64_t bytes = 0;
  bool write_failed = false;
  std::string identity, revision;  // from the response's headers
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  for (size_t done = 0; done < len;) {
    const ssize_t w = ::write(t->fd, data + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      t->write_failed = true;
      return 0;  // curl stops with CURLE_WRITE_ERROR
    }
    done += static_cast<size_t>(w);
  }
  t->bytes += len;
  return len;
}

std::string_view trimmed(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' '))
    v.remove_suffix(1);
  return v;
}

bool header_is(std::string_view line, std::string_view name, std::string_view& value) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) !=
        std::tolower(static_cast<unsigned char>(name[i])))
      return false;
  value = trimmed(line.substr(name.size() + 1));
  return true;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view line(data, size * n);
  std::string_view v;
  if (header_is(line, "X-Keygate-Cluster", v)) t->identity.assign(v);
  if (header_is(line, "X-Keygate-Snapshot-Revision", v)) t->revision.assign(v);
  return size * n;
}

}  // namespace

bool fetch_peer_snapshot(const PeerSnapshotRequest& request, const persistence::DataDir& dir,
                         PeerSnapshot& out, std::string& why) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string tmp = dir.file("snapshot-peer.tmp");
  Transfer t;
  t.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (t.fd < 0) {
    why = "cannot create " + tmp + ": " + std::strerror(errno);
    return false;
  }
  struct Cleanup {  // the temporary file never outlives a failure
    const std::string& path;
    int& fd;
    bool keep = false;
    ~Cleanup() {
      if (fd >= 0) ::close(fd);
      if (!keep) ::unlink(path.c_str());
    }
  } cleanup{tmp, t.fd};

  CURL* curl = curl_easy_init();
  if (!curl) {
    why = "libcurl could not start";
    return false;
  }
  const std::string url = request.base_url + "/v1/cluster/snapshot";
  const std::string auth = "Authorization: Bearer " + request.root_key;
  curl_slist* headers = curl_slist_append(nullptr, auth.c_str());
  char message[CURL_ERROR_SIZE] = {};
  const long stall_s = std::max<long>(1, static_cast<long>(request.stall_timeout.count() / 1000));
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, message);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1'000L);
  // A peer that hangs: under 1 KiB/s for the stall timeout ends the transfer.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, stall_s);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30L * request.stall_timeout.count());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!request.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, request.ca_file.c_str());
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    why = t.write_failed ? "cannot write " + tmp + ": " + std::strerror(errno)
                         : url + ": " + (message[0] ? message : curl_easy_strerror(rc));
    return false;
  }
  if (status != 200) {
    why = url + " answered " + std::to_string(status);
    return false;
  }
  if (t.identity != request.identity) {
    why = "the peer's snapshot is of another etcd cluster or prefix (" + t.identity + ")";
    return false;
  }
  int64_t revision = 0;
  const char* end = t.revision.data() + t.revision.size();
  if (std::from_chars(t.revision.data(), end, revision).ptr != end || revision <= 0) {
    why = "the peer named no revision for its snapshot";
    return false;
  }
  if (::fsync(t.fd) != 0) {
    why = "cannot sync " + tmp + ": " + std::strerror(errno);
    return false;
  }
  ::close(t.fd);
  t.fd = -1;
  const uint64_t seq = static_cast<uint64_t>(revision) + 1;
  if (!persistence::check_snapshot(tmp, seq, why)) {
    why = "the peer's snapshot is damaged: " + why;
    return false;
  }
  const std::string final_name = dir.file(persistence::snapshot_name(seq));
  if (::rename(tmp.c_str(), final_name.c_str()) != 0 || !dir.sync()) {
    why = "cannot install " + final_name + ": " + std::strerror(errno);
    return false;
  }
  cleanup.keep = true;
  out.revision = revision;
  out.bytes = t.bytes;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return true;
}

}  // namespace keygate::cluster
