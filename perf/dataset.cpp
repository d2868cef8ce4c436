// keygate_dataset: writes a data directory holding N API keys (in organizations of 1,000)
// as one log segment, and the key values, one per line, for load generators:
//
//   keygate_dataset --data-dir /tmp/kg --keys 1000000 --values /tmp/kg-keys.txt [--scopes a,b]
//
// Every key is a live secret key with the default scope set (all of them, as when a key is
// created without `scopes`), or with the scopes given: fewer scopes, a shorter
// X-Keygate-Scopes header in each /v1/auth answer.
// The server then recovers it at start (that is also the "recovery from the log" figure).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "core/ids.hpp"
#include "core/key_format.hpp"
#include "core/model.hpp"
#include "core/scopes.hpp"
#include "persistence/codec.hpp"
#include "persistence/data_dir.hpp"
#include "persistence/record.hpp"
#include "persistence/segment.hpp"

using namespace keygate;

int main(int argc, char** argv) {
  std::string dir, values_path;
  uint64_t n = 1'000'000;
  core::ScopeSet scopes = core::kAllScopes;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--data-dir"))
      dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--keys"))
      n = std::stoull(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--values"))
      values_path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--scopes")) {
      scopes = 0;
      bool unknown = false;
      core::parse_scope_list(argv[i + 1], scopes, unknown);
      if (unknown || scopes == 0) {
        std::fprintf(stderr, "--scopes %s: not a list of known scopes\n", argv[i + 1]);
        return 2;
      }
    } else {
      std::fprintf(stderr, "unknown option: %s\n", argv[i]);
      return 2;
    }
  }
  if (dir.empty() || values_path.empty() || argc % 2 == 0) {
    std::fprintf(stderr,
                 "usage: keygate_dataset --data-dir DIR --keys N --values FILE [--scopes a,b]\n");
    return 2;
  }
  persistence::DataDir dd(dir);
  if (!dd.list().segments.empty()) {
    std::fprintf(stderr, "%s already holds a log: use an empty directory\n", dir.c_str());
    return 1;
  }
  persistence::Segment seg;
  std::string err;
  if (!persistence::Segment::create(dd, 0, seg, err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 1;
  }
  std::ofstream values(values_path);
  core::IdGenerator ids;
  const uint64_t now = 1'790'000'000'000;
  std::string buf, payload;
  uint64_t records = 0;
  core::Id org;
  for (uint64_t i = 0; i < n; ++i) {
    if (i % 1000 == 0) {
      core::Organization o;
      o.id = org = ids.next(now);
      o.name = "Load test " + std::to_string(i / 1000);
      o.slug = "load-test-" + std::to_string(i / 1000);
      o.created_ms = o.updated_ms = now;
      payload.clear();
      persistence::encode(o, payload);
      persistence::append_record(buf, persistence::RecordType::organization, payload);
      ++records;
    }
    const std::string value = core::generate_key(core::KeyType::secret, core::Environment::live);
    core::ApiKey k;
    k.id = ids.next(now);
    k.organization_id = org;
    std::copy_n(value.end() - 4, 4, k.preview);
    k.name = "load " + std::to_string(i);
    k.scopes = scopes;
    k.created_ms = now;
    payload.clear();
    persistence::encode(core::hash_key(value), k, 0, payload);
    persistence::append_record(buf, persistence::RecordType::api_key, payload);
    ++records;
    values << value << '\n';
    if (buf.size() > (8 << 20)) {
      if (!seg.append(buf, records, err)) return std::fprintf(stderr, "%s\n", err.c_str()), 1;
      buf.clear();
      records = 0;
    }
  }
  if (!seg.append(buf, records, err) || !seg.sync(err))
    return std::fprintf(stderr, "%s\n", err.c_str()), 1;
  std::printf("wrote %llu keys to %s (log %llu bytes), values in %s\n",
              static_cast<unsigned long long>(n), dir.c_str(),
              static_cast<unsigned long long>(seg.size()), values_path.c_str());
  return 0;
}
