// `keygate serve`'s settings: every flag with its default, its KEYGATE_* variable and its
// check, and the configuration file's reader (docs/operations.md, "Configuration"). Kept
// apart from main.cpp, which wires the parts together with them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace CLI {
class App;
class Config;
}  // namespace CLI

namespace keygate::cli {

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";
  // A listener of its own for the management API (empty: --listen serves everything).
  std::string admin_listen;
  std::string data_dir = "./data";
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::string root_key_file;
  std::string fsync = "always";
  bool open_signup = false;
  bool access_log = false;
  bool console = true;  // the browser console under /console/
  uint64_t snapshot_bytes = 64ull << 20;
  std::string audit_retention = "90d";           // see duration_seconds()
  std::string reclaim_keys_after = "30d";        // revoked and expired keys, then gone
  std::string tls_cert, tls_key, tls_client_ca;  // TLS on the listener (net/tls.hpp)
  std::string tls_client_auth = "none";          // none | request
  bool trust_forwarded_client_cert = false;
  uint32_t secret_rps = 10'000, secret_burst = 20'000;
  uint32_t publishable_rps = 1'000, publishable_burst = 2'000;
  // Bounds on what a tenant (or an anonymous caller) may make the server hold
  // (docs/security.md, "Bounds").
  uint32_t max_keys_per_org = 100'000;
  uint32_t signup_per_hour = 10;  // anonymous sign-ups per client address (--open-signup)
  size_t idempotency_bytes = size_t{64} << 20;
  size_t audit_memory_bytes = size_t{128} << 20;  // audit events in memory; the rest on disk
  unsigned max_connections = 10'000;
  size_t max_buffer_bytes = size_t{256} << 20;
  std::string etcd;  // cluster mode: comma-separated etcd endpoints
  std::string etcd_prefix = "/keygate";
  unsigned etcd_stale_after_ms = 5'000;
  unsigned max_staleness_ms = 1'000;  // cluster mode: vouch for keys only within this of etcd
  bool serve_when_stale = false;      // cluster mode: fail open instead (off: fail closed)
  unsigned write_timeout_ms = 5'000;  // cluster mode: every write answered within this
  uint64_t etcd_quota_bytes = uint64_t{2} << 30;  // etcd's --quota-backend-bytes (3.4 hides it)
  std::string advertise_url;
  std::string advertise_admin_url;  // cluster mode: where a joining node fetches a snapshot
  unsigned etcd_max_txn_ops = 128;  // cluster mode: etcd's --max-txn-ops
  bool join_from_peer = true;       // cluster mode: a fresh node starts from a peer's snapshot
  std::string peer_ca;              // cluster mode: the CA of https peers
  std::string etcd_cacert, etcd_cert, etcd_key;
  // Cluster mode: the fleet's hot counters (cluster/fleet_counters.hpp); empty: none.
  std::string redis;
  std::string redis_ca;             // rediss://: the CA of Redis's certificate
  std::string redis_password_file;  // the password, kept out of the command line
  unsigned redis_sync_ms = 25;
  unsigned redis_timeout_ms = 200;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  unsigned header_timeout_ms = 10'000;
  unsigned idle_timeout_ms = 60'000;
  unsigned drain_timeout_ms = 10'000;
};

// "90d", "12h", "30m", "45s" or a bare number of days, in seconds; nullopt if it is none
// of these (or more than 100 years). 0 turns auditing off (--audit-retention) and keeps
// revoked and expired keys for good (--reclaim-keys-after).
std::optional<uint64_t> duration_seconds(std::string_view text);

// Adds every `serve` flag to `cmd`, bound to `o`.
void add_serve_flags(CLI::App& cmd, ServeOptions& o);

// The reader of `--config FILE` (see serve_options.cpp for the order it keeps).
std::shared_ptr<CLI::Config> configuration_file_reader();

}  // namespace keygate::cli
