#include "cli/serve_options.hpp"

#include <CLI/CLI.hpp>
#include <cctype>
#include <charconv>
#include <cstdlib>

namespace keygate::cli {

std::optional<uint64_t> duration_seconds(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t unit = 86'400;
  switch (text.back()) {
    case 'd':
      unit = 86'400, text.remove_suffix(1);
      break;
    case 'h':
      unit = 3'600, text.remove_suffix(1);
      break;
    case 'm':
      unit = 60, text.remove_suffix(1);
      break;
    case 's':
      unit = 1, text.remove_suffix(1);
      break;
    default:
      break;
  }
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  constexpr uint64_t kMax = 100ull * 366 * 86'400;
  if (n > kMax / unit) return std::nullopt;
  return n * unit;
}

void add_serve_flags(CLI::App& cmd, ServeOptions& o) {
  auto env = [](const char* name) { return std::string("KEYGATE_") + name; };
  cmd.add_option("--listen", o.listen, "Address to listen on, HOST:PORT (port 0: any free port)")
      ->envname(env("LISTEN"))
      ->capture_default_str();
  cmd.add_option("--admin-listen", o.admin_listen,
                 "A listener of its own, with its own reactor thread, for the management API "
                 "(organizations, keys, certificates, projects, audit log), HOST:PORT; --listen "
                 "then serves verification and the operations endpoints only")
      ->envname(env("ADMIN_LISTEN"));
  cmd.add_option("--data-dir", o.data_dir, "Data directory (created 0700 if absent)")
      ->envname(env("DATA_DIR"))
      ->capture_default_str();
  cmd.add_option("--threads", o.threads, "Reactor threads (default: one per core)")
      ->envname(env("THREADS"))
      ->check(CLI::Range(1u, 1024u))
      ->capture_default_str();
  cmd.add_option(
         "--root-key-file", o.root_key_file,
         "File holding the root key (default: <data-dir>/root.key, generated on first start)")
      ->envname(env("ROOT_KEY_FILE"));
  cmd.add_option(
         "--fsync", o.fsync,
         "always: acknowledge a change after its fdatasync; everysec: fdatasync once a second")
      ->envname(env("FSYNC"))
      ->check(CLI::IsMember({"always", "everysec"}))
      ->capture_default_str();
  cmd.add_flag("--open-signup", o.open_signup, "Allow POST /v1/organizations without a key")
      ->envname(env("OPEN_SIGNUP"));
  cmd.add_option("--console", o.console,
                 "Serve the browser console under /console/ (on the admin listener when there is "
                 "one); false: no console")
      ->envname(env("CONSOLE"))
      ->capture_default_str();
  cmd.add_flag("--access-log", o.access_log,
               "Log one line per request (method, path, status, time; never a key)")
      ->envname(env("ACCESS_LOG"));
  cmd.add_option("--snapshot-bytes", o.snapshot_bytes,
                 "Write a snapshot when the log has grown by this many bytes")
      ->envname(env("SNAPSHOT_BYTES"))
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 40))
      ->capture_default_str();
  cmd.add_option("--tls-cert", o.tls_cert,
                 "Serve HTTPS: the certificate (PEM, then its chain); with --tls-key")
      ->envname(env("TLS_CERT"));
  cmd.add_option("--tls-key", o.tls_key, "Serve HTTPS: the private key of --tls-cert (PEM)")
      ->envname(env("TLS_KEY"));
  cmd.add_option("--tls-client-ca", o.tls_client_ca,
                 "With TLS: require client certificates signed by this CA (PEM)")
      ->envname(env("TLS_CLIENT_CA"));
  cmd.add_option("--tls-client-auth", o.tls_client_auth,
                 "With TLS: none, or request (ask every client for a certificate, take any; "
                 "the key's certificate binding decides)")
      ->envname(env("TLS_CLIENT_AUTH"))
      ->check(CLI::IsMember({"none", "request"}))
      ->capture_default_str();
  cmd.add_flag("--trust-forwarded-client-cert", o.trust_forwarded_client_cert,
               "Without TLS: take X-Client-Cert-Sha256 from the request (a TLS-terminating "
               "gateway in front, on loopback); otherwise it is ignored")
      ->envname(env("TRUST_FORWARDED_CLIENT_CERT"));
  cmd.add_option("--audit-retention", o.audit_retention,
                 "Keep audit events this long: 90d, 12h, 30m, 45s, or days; 0 records none")
      ->envname(env("AUDIT_RETENTION"))
      ->check([](const std::string& v) -> std::string {
        return duration_seconds(v) ? std::string()
                                   : "takes a duration such as 90d, 12h, 30m or 45s";
      })
      ->capture_default_str();
  cmd.add_option("--reclaim-keys-after", o.reclaim_keys_after,
                 "Remove a revoked or expired key this long after its end (then it is unknown "
                 "and frees its place in --max-keys-per-org): 30d, 12h, ...; 0 keeps them")
      ->envname(env("RECLAIM_KEYS_AFTER"))
      ->check([](const std::string& v) -> std::string {
        return duration_seconds(v) ? std::string() : "takes a duration such as 30d, 12h or 45s";
      })
      ->capture_default_str();
  cmd.add_option("--secret-rate", o.secret_rps, "Default requests/s of a secret key (0: unlimited)")
      ->envname(env("SECRET_RATE"))
      ->check(CLI::Range(0u, 10'000'000u))
      ->capture_default_str();
  cmd.add_option("--secret-burst", o.secret_burst, "Default burst of a secret key")
      ->envname(env("SECRET_BURST"))
      ->check(CLI::Range(0u, 10'000'000u))
      ->capture_default_str();
  cmd.add_option("--publishable-rate", o.publishable_rps,
                 "Default requests/s of a publishable key (0: unlimited)")
      ->envname(env("PUBLISHABLE_RATE"))
      ->check(CLI::Range(0u, 10'000'000u))
      ->capture_default_str();
  cmd.add_option("--publishable-burst", o.publishable_burst, "Default burst of a publishable key")
      ->envname(env("PUBLISHABLE_BURST"))
      ->check(CLI::Range(0u, 10'000'000u))
      ->capture_default_str();
  cmd.add_option("--max-keys-per-org", o.max_keys_per_org,
                 "API keys an organization may hold, revoked and expired ones included (400 "
                 "key_limit_reached beyond)")
      ->envname(env("MAX_KEYS_PER_ORG"))
      ->check(CLI::Range(1u, 100'000'000u))
      ->capture_default_str();
  cmd.add_option("--signup-per-hour", o.signup_per_hour,
                 "With --open-signup: anonymous sign-ups per client address and hour (0: no "
                 "limit)")
      ->envname(env("SIGNUP_PER_HOUR"))
      ->check(CLI::Range(0u, 1'000'000u))
      ->capture_default_str();
  cmd.add_option("--idempotency-bytes", o.idempotency_bytes,
                 "Memory for remembered Idempotency-Key answers, shared fairly between tenants")
      ->envname(env("IDEMPOTENCY_BYTES"))
      ->check(CLI::Range(size_t{1} << 20, size_t{64} << 30))
      ->capture_default_str();
  cmd.add_option("--audit-memory-bytes", o.audit_memory_bytes,
                 "Memory for audit events: past it a snapshot takes them, and older events are "
                 "read from it")
      ->envname(env("AUDIT_MEMORY_BYTES"))
      ->check(CLI::Range(size_t{1} << 20, size_t{1} << 40))
      ->capture_default_str();
  cmd.add_option("--max-connections", o.max_connections, "Open connections at most")
      ->envname(env("MAX_CONNECTIONS"))
      ->check(CLI::Range(1u, 1'000'000u))
      ->capture_default_str();
  cmd.add_option("--etcd", o.etcd,
                 "Cluster mode: etcd endpoints, comma-separated (http://127.0.0.1:2379,...); the "
                 "state lives in etcd, not the data directory")
      ->envname(env("ETCD"));
  cmd.add_option("--etcd-prefix", o.etcd_prefix,
                 "Cluster mode: the prefix of every key keygate writes")
      ->envname(env("ETCD_PREFIX"))
      ->capture_default_str();
  cmd.add_option("--etcd-cacert", o.etcd_cacert, "Cluster mode: CA certificate of etcd's TLS (PEM)")
      ->envname(env("ETCD_CACERT"))
      ->check(CLI::ExistingFile);
  cmd.add_option("--etcd-cert", o.etcd_cert,
                 "Cluster mode: this node's client certificate for etcd (PEM)")
      ->envname(env("ETCD_CERT"))
      ->check(CLI::ExistingFile);
  cmd.add_option("--etcd-key", o.etcd_key, "Cluster mode: the key of --etcd-cert (PEM)")
      ->envname(env("ETCD_KEY"))
      ->check(CLI::ExistingFile);
  cmd.add_option("--advertise-url", o.advertise_url,
                 "Cluster mode: where other hosts reach this node, http://HOST:PORT (default: the "
                 "listening address)")
      ->envname(env("ADVERTISE_URL"));
  cmd.add_option("--advertise-admin-url", o.advertise_admin_url,
                 "Cluster mode, with --admin-listen: where other nodes reach this node's admin "
                 "listener, http://HOST:PORT (default: its listening address)")
      ->envname(env("ADVERTISE_ADMIN_URL"));
  cmd.add_option("--etcd-max-txn-ops", o.etcd_max_txn_ops,
                 "Cluster mode: etcd's --max-txn-ops; a transaction carries as many writes as "
                 "fit in it")
      ->envname(env("ETCD_MAX_TXN_OPS"))
      ->check(CLI::Range(16u, 100'000u))
      ->capture_default_str();
  cmd.add_option("--join-from-peer", o.join_from_peer,
                 "Cluster mode: a node with no snapshot of its own starts from another node's "
                 "(GET /v1/cluster/snapshot with the root key) instead of reading everything "
                 "from etcd")
      ->envname(env("JOIN_FROM_PEER"))
      ->capture_default_str();
  cmd.add_option("--peer-ca", o.peer_ca,
                 "Cluster mode: the CA (PEM) that signed the other nodes' TLS certificates, for "
                 "fetching a snapshot from an https peer (default: the system's)")
      ->envname(env("PEER_CA"))
      ->check(CLI::ExistingFile);
  cmd.add_option("--etcd-stale-after-ms", o.etcd_stale_after_ms,
                 "Cluster mode: /readyz turns 503 when etcd has not answered for this long")
      ->envname(env("ETCD_STALE_AFTER_MS"))
      ->check(CLI::Range(100u, 3'600'000u))
      ->capture_default_str();
  cmd.add_option("--max-staleness-ms", o.max_staleness_ms,
                 "Cluster mode: vouch for keys only while this node can show it is within this "
                 "of etcd's present (verification answers 503 NODE_STALE beyond)")
      ->envname(env("MAX_STALENESS_MS"))
      ->check(CLI::Range(100u, 60'000u))
      ->capture_default_str();
  cmd.add_flag("--serve-when-stale", o.serve_when_stale,
               "Cluster mode: keep verifying from memory however far behind etcd this node is "
               "(fail open: a revoked key may pass for as long as it is behind)")
      ->envname(env("SERVE_WHEN_STALE"));
  cmd.add_option("--write-timeout-ms", o.write_timeout_ms,
                 "Cluster mode: every write is answered within this (503 when its outcome is not "
                 "known by then)")
      ->envname(env("WRITE_TIMEOUT_MS"))
      ->check(CLI::Range(1'000u, 600'000u))
      ->capture_default_str();
  cmd.add_option("--redis", o.redis,
                 "Cluster mode: Redis for the fleet's rate-limit counts and last uses, "
                 "redis://[user:password@]host[:port][/db] or rediss://... (TLS)")
      ->envname(env("REDIS"));
  cmd.add_option("--redis-ca", o.redis_ca, "With rediss://: the CA of Redis's certificate (PEM)")
      ->envname(env("REDIS_CA"))
      ->check(CLI::ExistingFile);
  cmd.add_option("--redis-password-file", o.redis_password_file,
                 "A file holding Redis's password (its first line), instead of one in the URL")
      ->envname(env("REDIS_PASSWORD_FILE"))
      ->check(CLI::ExistingFile);
  cmd.add_option("--redis-sync-ms", o.redis_sync_ms,
                 "How often each node exchanges its counts with Redis (the fleet may admit about "
                 "this much of a limit beyond it)")
      ->envname(env("REDIS_SYNC_MS"))
      ->check(CLI::Range(5u, 1'000u))
      ->capture_default_str();
  cmd.add_option("--redis-timeout-ms", o.redis_timeout_ms,
                 "A Redis slower than this is taken as away: each node enforces its fair share")
      ->envname(env("REDIS_TIMEOUT_MS"))
      ->check(CLI::Range(10u, 10'000u))
      ->capture_default_str();
  cmd.add_option("--etcd-quota-bytes", o.etcd_quota_bytes,
                 "Cluster mode: etcd's --quota-backend-bytes, when etcd does not report it (3.4); "
                 "keygate warns at 80 % of it")
      ->envname(env("ETCD_QUOTA_BYTES"))
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 40))
      ->capture_default_str();
  cmd.add_option(
         "--max-buffer-bytes", o.max_buffer_bytes,
         "Receive-buffer bytes that all connections together may hold beyond their resting 4 KiB "
         "(503 for a request that does not fit)")
      ->envname(env("MAX_BUFFER_BYTES"))
      ->check(CLI::Range(size_t{1} << 20, size_t{1} << 40))
      ->capture_default_str();
  cmd.add_option("--max-header-bytes", o.max_header_bytes,
                 "Request line and headers at most (431 beyond)")
      ->envname(env("MAX_HEADER_BYTES"))
      ->check(CLI::Range(size_t{1024}, size_t{1} << 20))
      ->capture_default_str();
  cmd.add_option("--max-body-bytes", o.max_body_bytes, "Request body at most (413 beyond)")
      ->envname(env("MAX_BODY_BYTES"))
      ->check(CLI::Range(size_t{1024}, size_t{64} << 20))
      ->capture_default_str();
  cmd.add_option("--header-timeout-ms", o.header_timeout_ms,
                 "Time to receive a request's headers (408 beyond)")
      ->envname(env("HEADER_TIMEOUT_MS"))
      ->check(CLI::Range(100u, 3'600'000u))
      ->capture_default_str();
  cmd.add_option("--idle-timeout-ms", o.idle_timeout_ms,
                 "Idle keep-alive connections are closed after this")
      ->envname(env("IDLE_TIMEOUT_MS"))
      ->check(CLI::Range(100u, 86'400'000u))
      ->capture_default_str();
  cmd.add_option("--drain-timeout-ms", o.drain_timeout_ms,
                 "On SIGTERM, time given to in-flight requests")
      ->envname(env("DRAIN_TIMEOUT_MS"))
      ->check(CLI::Range(0u, 3'600'000u))
      ->capture_default_str();
}

namespace {

// The configuration file of `keygate serve --config FILE` (or KEYGATE_CONFIG) is read by
// CLI11 (TOML/INI "name = value" lines named as the flags, '#' comments), so a setting
// there is checked exactly as its flag is and an error names it. The documented order is
// flag, then environment, then file; CLI11 2.1 applies a file's values before the
// environment's, so this formatter leaves out of the file every setting whose KEYGATE_*
// variable is set, and CLI11 then takes the environment's value. CLI11 2.1 reads a file
// only for the top-level command, so the file's settings are handed to `serve`.
class ConfigUnderEnvironment : public CLI::ConfigTOML {
 public:
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> items = CLI::ConfigTOML::from_config(input);
    std::erase_if(items, [](const CLI::ConfigItem& item) {
      std::string env = "KEYGATE_" + item.name;
      for (char& c : env)
        c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      const char* value = std::getenv(env.c_str());
      return item.parents.empty() && value && *value;  // CLI11 ignores an empty variable too
    });
    for (CLI::ConfigItem& item : items)
      if (item.parents.empty()) item.parents = {"serve"};
    return items;
  }
};

}  // namespace

std::shared_ptr<CLI::Config> configuration_file_reader() {
  return std::make_shared<ConfigUnderEnvironment>();
}

}  // namespace keygate::cli
