// keygate: the composition root. Flags -> configuration -> modules wired together -> run.
//
//   keygate serve   the server (the data plane on io_uring reactors, the control plane on Asio)
//   keygate check   verifies a data directory offline and prints what it holds
//   keygate repair  cuts a damaged log at its last good record (keeping a copy)
//   keygate orgs    create | list, on a running server with the root key
//   keygate keys    create | list | revoke | rotate, likewise
//   keygate version
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <thread>

#include "cli/cluster_status.hpp"
#include "cli/operator.hpp"
#include "cluster/etcd_committer.hpp"
#include "core/heap.hpp"
#include "core/index.hpp"
#include "core/log.hpp"
#include "core/state_machine.hpp"
#include "handlers/app.hpp"
#include "handlers/idempotency.hpp"
#include "handlers/metrics.hpp"
#include "net/server.hpp"
#include "persistence/data_dir.hpp"
#include "persistence/journal.hpp"
#include "persistence/recovery.hpp"
#include "persistence/root_key.hpp"

#ifndef KEYGATE_VERSION
#define KEYGATE_VERSION "0.1.0"
#endif

namespace {

using namespace keygate;
using core::Level;
using core::log;

// core/heap.hpp, decided before the first allocation: a constructor of priority 101 runs
// ahead of this program's static initializers, so even the heap's first segment (where an
// idle server's few MiB live) is asked for huge pages.
bool heap_huge_pages = false;
__attribute__((constructor(101))) void choose_heap_pages() {
  heap_huge_pages = core::use_huge_pages_for_heap();
}

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./data";
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::string root_key_file;
  std::string fsync = "always";
  bool open_signup = false;
  bool access_log = false;
  uint64_t snapshot_bytes = 64ull << 20;
  uint32_t secret_rps = 10'000, secret_burst = 20'000;
  uint32_t publishable_rps = 1'000, publishable_burst = 2'000;
  unsigned max_connections = 10'000;
  size_t max_buffer_bytes = size_t{256} << 20;
  std::string etcd;  // cluster mode: comma-separated etcd endpoints
  std::string etcd_prefix = "/keygate";
  unsigned etcd_stale_after_ms = 5'000;
  std::string advertise_url;
  std::string etcd_cacert, etcd_cert, etcd_key;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  unsigned header_timeout_ms = 10'000;
  unsigned idle_timeout_ms = 60'000;
  unsigned drain_timeout_ms = 10'000;
};

thread_local std::optional<core::RcuThread> t_rcu;

// The exit status when published changes could not be made durable (sysexits' EX_IOERR).
constexpr int kExitDurabilityLost = 74;
// The exit status when a cluster node must reload its whole state (sysexits' EX_TEMPFAIL).
constexpr int kExitReload = 75;

void add_serve_flags(CLI::App& cmd, ServeOptions& o) {
  auto env = [](const char* name) { return std::string("KEYGATE_") + name; };
  cmd.add_option("--listen", o.listen, "Address to listen on, HOST:PORT (port 0: any free port)")
      ->envname(env("LISTEN"))
      ->capture_default_str();
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
  cmd.add_flag("--access-log", o.access_log,
               "Log one line per request (method, path, status, time; never a key)")
      ->envname(env("ACCESS_LOG"));
  cmd.add_option("--snapshot-bytes", o.snapshot_bytes,
                 "Write a snapshot when the log has grown by this many bytes")
      ->envname(env("SNAPSHOT_BYTES"))
      ->check(CLI::Range(uint64_t{4096}, uint64_t{1} << 40))
      ->capture_default_str();
  cmd.add_option("--secret-rate", o.secret_rps, "Default requests/s of a secret key (0: unlimited)")
      ->envname(env("SECRET_RATE"))
      ->capture_default_str();
  cmd.add_option("--secret-burst", o.secret_burst, "Default burst of a secret key")
      ->envname(env("SECRET_BURST"))
      ->capture_default_str();
  cmd.add_option("--publishable-rate", o.publishable_rps,
                 "Default requests/s of a publishable key (0: unlimited)")
      ->envname(env("PUBLISHABLE_RATE"))
      ->capture_default_str();
  cmd.add_option("--publishable-burst", o.publishable_burst, "Default burst of a publishable key")
      ->envname(env("PUBLISHABLE_BURST"))
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
  cmd.add_option("--etcd-stale-after-ms", o.etcd_stale_after_ms,
                 "Cluster mode: /readyz turns 503 when etcd has not answered for this long")
      ->envname(env("ETCD_STALE_AFTER_MS"))
      ->check(CLI::Range(100u, 3'600'000u))
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

// Single-node mode: the state from the data directory's snapshot and log, and the journal
// that appends to the log from then on.
std::unique_ptr<persistence::Journal> open_journal(const ServeOptions& o,
                                                   const persistence::DataDir& dir,
                                                   core::StateMachine& state) {
  const persistence::RecoveryReport rep =
      persistence::recover(dir, state, persistence::RecoverMode::start);
  for (const auto& w : rep.warnings) log(Level::warn, "recovery.warning", {{"detail", w}});
  log(Level::info, "recovered",
      {{"snapshot", rep.snapshot_loaded},
       {"snapshot_records", static_cast<unsigned long long>(rep.snapshot_records)},
       {"log_records", static_cast<unsigned long long>(rep.log_records)},
       {"organizations", static_cast<unsigned long long>(state.index().org_count())},
       {"api_keys", static_cast<unsigned long long>(state.index().key_count())},
       {"seconds", rep.seconds}});

  persistence::JournalOptions jopts;
  jopts.fsync =
      o.fsync == "everysec" ? persistence::FsyncMode::everysec : persistence::FsyncMode::always;
  jopts.snapshot_bytes = o.snapshot_bytes;
  // --fsync=everysec, and the log cannot take again what memory already serves: end here,
  // at once, so that systemd (Restart=on-failure) starts a server from what is durable
  // rather than let this one disagree with its own log (Journal::resync).
  jopts.on_durability_lost = [](const std::string& why) {
    log(Level::error, "exiting",
        {{"reason", why}, {"exit_status", static_cast<long long>(kExitDurabilityLost)}});
    sd_notifyf(0, "STATUS=the log lost durability; exiting to restart from disk\nERRNO=%d", EIO);
    std::_Exit(kExitDurabilityLost);
  };
  auto journal = std::make_unique<persistence::Journal>(dir, state, rep, jopts);
  journal->start();
  return journal;
}

// Cluster mode: the state from etcd, and the committer that writes to it and follows it.
std::unique_ptr<cluster::EtcdCommitter> open_cluster(const ServeOptions& o,
                                                     core::StateMachine& state,
                                                     const core::KeyHash& root_hash,
                                                     const std::string& advertise_url,
                                                     const persistence::DataDir& dir) {
  cluster::EtcdOptions eo;
  eo.data_dir = &dir;
  for (size_t at = 0; at <= o.etcd.size();) {
    const size_t comma = std::min(o.etcd.find(',', at), o.etcd.size());
    if (comma > at) eo.endpoints.push_back(o.etcd.substr(at, comma - at));
    at = comma + 1;
  }
  for (const auto& e : eo.endpoints)
    if (!e.starts_with("http://") && !e.starts_with("https://"))
      throw persistence::StartupError("--etcd takes URLs such as http://127.0.0.1:2379, not " + e);
  eo.prefix = o.etcd_prefix;
  eo.tls = {o.etcd_cacert, o.etcd_cert, o.etcd_key};
  eo.stale_after = std::chrono::milliseconds(o.etcd_stale_after_ms);
  eo.advertise_url = advertise_url;
  // etcd compacted the history this node's watch needs: only a restart, which loads the
  // whole state again, brings it back in step.
  eo.on_fatal = [](const std::string& why) {
    log(Level::error, "exiting",
        {{"reason", why}, {"exit_status", static_cast<long long>(kExitReload)}});
    sd_notifyf(0, "STATUS=cannot follow etcd; exiting to reload\nERRNO=%d", EIO);
    std::_Exit(kExitReload);
  };
  auto etcd = std::make_unique<cluster::EtcdCommitter>(state, eo);
  try {
    etcd->start(root_hash);
  } catch (const std::runtime_error& e) {
    throw persistence::StartupError(e.what());
  }
  log(Level::info, "cluster.loaded",
      {{"endpoints", o.etcd},
       {"prefix", eo.prefix},
       {"revision", static_cast<long long>(etcd->applied_revision())},
       {"records", static_cast<unsigned long long>(etcd->loaded_records())},
       {"organizations", static_cast<unsigned long long>(state.index().org_count())},
       {"api_keys", static_cast<unsigned long long>(state.index().key_count())},
       {"seconds", etcd->load_seconds()}});
  return etcd;
}

int serve(const ServeOptions& o) {
  net::Endpoint endpoint;
  std::string error;
  if (!net::parse_endpoint(o.listen, endpoint, error)) {
    std::fprintf(stderr, "keygate: --listen %s: %s\n", o.listen.c_str(), error.c_str());
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);  // a file-size limit becomes EFBIG, handled as a write failure

  persistence::DataDir dir(o.data_dir);
  const persistence::RootKey root = persistence::load_root_key(o.root_key_file, dir.path());
  if (root.generated)
    log(Level::warn, "root_key.generated",
        {{"file", root.path},
         {"note", "the operator's root key: keep it secret; it can act on every organization"}});
  log(Level::info, "starting",
      {{"version", KEYGATE_VERSION},
       {"data_dir", dir.path()},
       {"fsync", o.fsync},
       {"threads", static_cast<unsigned long long>(o.threads)},
       {"heap_huge_pages", heap_huge_pages}});

  core::RcuThread rcu;
  core::Index index;
  core::StateMachine state(index);
  handlers::Idempotency idempotency;
  handlers::Metrics metrics;
  handlers::AppConfig config;
  config.open_signup = o.open_signup;
  config.access_log = o.access_log;
  config.root_hash = root.hash;
  config.rate_defaults.secret = {o.secret_rps, o.secret_burst};
  config.rate_defaults.publishable = {o.publishable_rps, o.publishable_burst};
  handlers::AppContext ctx{index, idempotency, metrics, config};
  handlers::App app(ctx);

  net::ReactorOptions ropts;
  ropts.limits.max_header_bytes = o.max_header_bytes;
  ropts.limits.max_body_bytes = o.max_body_bytes;
  ropts.header_timeout = std::chrono::milliseconds(o.header_timeout_ms);
  ropts.idle_timeout = std::chrono::milliseconds(o.idle_timeout_ms);
  ropts.drain_timeout = std::chrono::milliseconds(o.drain_timeout_ms);
  ropts.max_connections = o.max_connections;
  ropts.max_buffer_bytes = o.max_buffer_bytes;
  ropts.thread_start = [] { t_rcu.emplace(); };
  ropts.thread_stop = [] { t_rcu.reset(); };
  net::Server server(app, ropts);
  ctx.connection_count = [&server] { return server.connections(); };
  ctx.buffers = &server.buffers();

  // systemd socket activation: serve the socket it passes, if any. systemd holds that
  // socket across a restart, so connections made meanwhile wait in its backlog: this
  // process accepts them once the data is back, and a restart refuses and fails nothing.
  // Bound by keygate itself, the listeners come up first and answer /healthz (and
  // /readyz, and every other request, 503) while the data is read back.
  const bool activated = sd_listen_fds(1) >= 1;
  auto listen = [&] {
    server.start(endpoint, o.threads, activated ? SD_LISTEN_FDS_START : -1);
    log(Level::info, "listening",
        {{"address", server.bound().to_string()}, {"socket_activated", activated}});
  };
  if (!activated) listen();
  sd_notify(0, "STATUS=recovering");

  std::unique_ptr<persistence::Journal> journal;
  std::unique_ptr<cluster::EtcdCommitter> etcd;
  if (o.etcd.empty()) {
    journal = open_journal(o, dir, state);
    ctx.committer = journal.get();
  } else {
    // Where `keygate cluster status` and operators reach this node: --advertise-url, else
    // the bound address (a wildcard address is no place to reach).
    std::string url = o.advertise_url;
    if (url.empty()) {
      net::Endpoint at = endpoint;
      at.port = activated ? net::local_port(SD_LISTEN_FDS_START) : server.bound().port;
      if (at.host == "0.0.0.0") at.host = "127.0.0.1";
      if (at.host == "::") at.host = "::1";
      url = "http://" + at.to_string();
    }
    etcd = open_cluster(o, state, root.hash, url, dir);
    ctx.committer = etcd.get();
  }

  // The control plane: signals (and the systemd watchdog) on Asio. The signals are taken
  // over before READY: from then on a SIGTERM is a graceful stop and a SIGUSR1 a snapshot,
  // never their default action (the end of the process), however soon they come. One that
  // arrives before its handler is waiting is held by the signal_set until it is.
  asio::io_context io;
  asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  asio::signal_set snapshot_signal(io, SIGUSR1);
  ctx.ready.store(true, std::memory_order_release);
  if (activated) listen();
  sd_notify(0, "READY=1\nSTATUS=serving");
  log(Level::info, "ready", {{"address", server.bound().to_string()}});

  stop_signals.async_wait([&](const asio::error_code& ec, int sig) {
    if (ec) return;
    log(Level::info, "stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    sd_notify(0, "STOPPING=1");
    io.stop();
  });
  std::function<void()> wait_snapshot = [&] {
    snapshot_signal.async_wait([&](const asio::error_code& ec, int) {
      if (ec) return;
      if (journal) {
        log(Level::info, "snapshot.requested", {{"by", "SIGUSR1"}});
        journal->request_snapshot();
      } else {
        log(Level::info, "snapshot.not_taken",
            {{"by", "SIGUSR1"}, {"reason", "cluster mode: etcd holds the state"}});
      }
      wait_snapshot();
    });
  };
  wait_snapshot();
  uint64_t watchdog_us = 0;
  asio::steady_timer watchdog(io);
  std::function<void()> pet = [&] {
    watchdog.expires_after(std::chrono::microseconds(watchdog_us / 2));
    watchdog.async_wait([&](const asio::error_code& ec) {
      if (ec) return;
      sd_notify(0, "WATCHDOG=1");
      pet();
    });
  };
  if (sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us > 0) pet();
  io.run();

  // Graceful: stop accepting, let in-flight requests finish, then flush the log.
  server.stop();
  server.join();
  if (journal) journal->stop();
  if (etcd) etcd->stop();
  log(Level::info, "stopped", {});
  return 0;
}

int check(const std::string& data_dir) {
  persistence::DataDir dir(data_dir);
  core::RcuThread rcu;
  core::Index index;
  core::StateMachine state(index);
  const persistence::RecoveryReport rep =
      persistence::recover(dir, state, persistence::RecoverMode::check);
  const core::KeyStatusCounts keys = index.counts().keys();  // as of recovery's end
  const core::OrgStatusCounts orgs = index.counts().organizations();
  std::printf("data directory: %s\n", dir.path().c_str());
  if (rep.snapshot_loaded)
    std::printf("snapshot: %s (%llu records)\n",
                persistence::snapshot_name(rep.snapshot_seq).c_str(),
                static_cast<unsigned long long>(rep.snapshot_records));
  else
    std::printf("snapshot: none\n");
  std::printf("log records after it: %llu\n", static_cast<unsigned long long>(rep.log_records));
  std::printf("organizations: %llu (active %llu, suspended %llu)\n",
              static_cast<unsigned long long>(orgs.active + orgs.suspended),
              static_cast<unsigned long long>(orgs.active),
              static_cast<unsigned long long>(orgs.suspended));
  std::printf(
      "api keys: %llu (active %llu, rotating %llu, expired %llu, revoked %llu)\n",
      static_cast<unsigned long long>(keys.total()), static_cast<unsigned long long>(keys.active),
      static_cast<unsigned long long>(keys.rotating), static_cast<unsigned long long>(keys.expired),
      static_cast<unsigned long long>(keys.revoked));
  for (const auto& w : rep.warnings)
    std::printf("warning: %s (keygate serve will cut it)\n", w.c_str());
  std::printf("ok\n");
  return 0;
}

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

int main(int argc, char** argv) {
  CLI::App cli{"keygate: a server for multi-tenant API credentials"};
  cli.require_subcommand(1);
  ServeOptions serve_opts;
  auto* serve_cmd = cli.add_subcommand("serve", "Run the server");
  add_serve_flags(*serve_cmd, serve_opts);
  // `keygate serve --config FILE`: the option is the top-level command's (where CLI11 2.1
  // reads files), given after `serve` thanks to fallthrough. CLI11 reads the file before
  // the environment, so KEYGATE_CONFIG is its default here; a file named either way must
  // exist.
  const char* config_env = std::getenv("KEYGATE_CONFIG");
  auto* config_opt = cli.set_config(
      "--config", config_env ? config_env : "",
      "Configuration file of `serve`, e.g. /etc/keygate/keygate.conf (or KEYGATE_CONFIG)");
  if (config_env && *config_env) config_opt->required();
  cli.config_formatter(std::make_shared<ConfigUnderEnvironment>());
  cli.allow_config_extras(CLI::config_extras_mode::error);  // a misspelt setting is an error
  serve_cmd->fallthrough();
  std::string data_dir = "./data";
  auto* check_cmd =
      cli.add_subcommand("check", "Verify a data directory offline and print what it holds");
  check_cmd->add_option("--data-dir", data_dir, "Data directory")
      ->envname("KEYGATE_DATA_DIR")
      ->capture_default_str();
  auto* repair_cmd = cli.add_subcommand(
      "repair", "Cut a damaged log at its last good record (a copy is kept as .broken)");
  repair_cmd->add_option("--data-dir", data_dir, "Data directory")
      ->envname("KEYGATE_DATA_DIR")
      ->capture_default_str();
  auto* version_cmd = cli.add_subcommand("version", "Print the version");

  cli::Target target;
  auto add_target = [&](CLI::App* c) {
    c->add_option("--server", target.server,
                  "The running server: http://HOST:PORT, https://..., http://[::1]:PORT")
        ->envname("KEYGATE_SERVER")
        ->capture_default_str();
    c->add_option("--root-key-file", target.root_key_file, "The root key")
        ->envname("KEYGATE_ROOT_KEY_FILE")
        ->capture_default_str();
    c->add_option("--cacert", target.cacert,
                  "CA certificate(s) to trust for an https:// server (PEM)")
        ->envname("KEYGATE_CACERT");
  };
  std::string action, org_name, org_slug, org_id, key_id, key_name, key_type, key_env;
  std::vector<std::string> key_scopes;
  long grace = -1;
  auto* orgs_cmd =
      cli.add_subcommand("orgs", "Manage organizations on a running server with the root key");
  orgs_cmd->add_option("action", action, "create | list")->required();
  orgs_cmd->add_option("--name", org_name, "Name of a new organization");
  orgs_cmd->add_option("--slug", org_slug,
                       "Slug of a new organization (default: derived from the name)");
  add_target(orgs_cmd);
  auto* keys_cmd =
      cli.add_subcommand("keys", "Manage API keys on a running server with the root key");
  keys_cmd->add_option("action", action, "create | list | revoke | rotate")->required();
  keys_cmd->add_option("--org", org_id, "Organization id (org_...)")->required();
  keys_cmd->add_option("--key", key_id, "API key id (key_...), for revoke and rotate");
  keys_cmd->add_option("--name", key_name, "Name of a new key");
  keys_cmd->add_option("--type", key_type, "secret or publishable");
  keys_cmd->add_option("--environment", key_env, "live or test");
  keys_cmd->add_option("--scopes", key_scopes, "Scopes of a new secret key")->delimiter(',');
  keys_cmd->add_option("--grace-period-seconds", grace,
                       "For rotate: how long the old key keeps working");
  add_target(keys_cmd);
  std::string cluster_etcd, cluster_prefix = "/keygate";
  cluster::EtcdTls cluster_tls;
  auto* cluster_cmd = cli.add_subcommand(
      "cluster", "Cluster mode: the nodes registered in etcd and how far each is");
  cluster_cmd->add_option("action", action, "status")->required()->check(CLI::IsMember({"status"}));
  cluster_cmd->add_option("--etcd", cluster_etcd, "etcd endpoints, comma-separated")
      ->envname("KEYGATE_ETCD")
      ->required();
  cluster_cmd->add_option("--etcd-prefix", cluster_prefix, "The cluster's key prefix")
      ->envname("KEYGATE_ETCD_PREFIX")
      ->capture_default_str();
  cluster_cmd->add_option("--etcd-cacert", cluster_tls.ca_file, "CA certificate of etcd's TLS")
      ->envname("KEYGATE_ETCD_CACERT");
  cluster_cmd->add_option("--etcd-cert", cluster_tls.cert_file, "Client certificate for etcd")
      ->envname("KEYGATE_ETCD_CERT");
  cluster_cmd->add_option("--etcd-key", cluster_tls.key_file, "Key of --etcd-cert")
      ->envname("KEYGATE_ETCD_KEY");
  CLI11_PARSE(cli, argc, argv);

  try {
    if (*version_cmd) {
      std::printf("keygate %s\n", KEYGATE_VERSION);
      return 0;
    }
    if (*serve_cmd) return serve(serve_opts);
    if (*orgs_cmd) return cli::orgs(target, action, org_name, org_slug);
    if (*cluster_cmd) return cli::cluster_status(cluster_etcd, cluster_prefix, cluster_tls);
    if (*keys_cmd)
      return cli::keys(target, action, org_id, key_id, key_name, key_type, key_env, key_scopes,
                       grace);
    if (*check_cmd) return check(data_dir);
    if (*repair_cmd) {
      persistence::DataDir dir(data_dir);
      std::printf("%s\n", persistence::repair(dir).c_str());
      return 0;
    }
  } catch (const persistence::StartupError& e) {
    log(Level::error, "refusing_to_start", {{"error", e.what()}});
    std::fprintf(stderr, "keygate: %s\n", e.what());
    return 1;
  } catch (const std::system_error& e) {
    log(Level::error, "refusing_to_start", {{"error", e.what()}});
    std::fprintf(stderr, "keygate: %s\n", e.what());
    return 1;
  } catch (const std::runtime_error& e) {  // the operator commands: server unreachable, no key
    std::fprintf(stderr, "keygate: %s\n", e.what());
    return 1;
  }
  return 0;
}
