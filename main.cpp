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
#include "cli/serve_options.hpp"
#include "cluster/etcd_committer.hpp"
#include "cluster/fleet_counters.hpp"
#include "cluster/fleet_store.hpp"
#include "core/heap.hpp"
#include "core/index.hpp"
#include "core/log.hpp"
#include "core/state_machine.hpp"
#include "handlers/app.hpp"
#include "handlers/idempotency.hpp"
#include "handlers/metrics.hpp"
#include "handlers/signup_limit.hpp"
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
using cli::ServeOptions;
using core::Level;
using core::log;

// core/heap.hpp, decided before the first allocation: a constructor of priority 101 runs
// ahead of this program's static initializers, so even the heap's first segment (where an
// idle server's few MiB live) is asked for huge pages.
bool heap_huge_pages = false;
__attribute__((constructor(101))) void choose_heap_pages() {
  heap_huge_pages = core::use_huge_pages_for_heap();
}

thread_local std::optional<core::RcuThread> t_rcu;

// The exit status when published changes could not be made durable (sysexits' EX_IOERR).
constexpr int kExitDurabilityLost = 74;
// The exit status when a cluster node must reload its whole state (sysexits' EX_TEMPFAIL).
constexpr int kExitReload = 75;

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
  jopts.audit_retention_ms = *cli::duration_seconds(o.audit_retention) * 1000;
  jopts.audit_memory_bytes = o.audit_memory_bytes;
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
std::unique_ptr<cluster::EtcdCommitter> open_cluster(
    const ServeOptions& o, core::StateMachine& state, const core::KeyHash& root_hash,
    const std::string& advertise_url, const std::string& admin_url, const std::string& root_key,
    const persistence::DataDir& dir) {
  cluster::EtcdOptions eo;
  eo.data_dir = &dir;
  eo.endpoints = cluster::split_endpoints(o.etcd);
  for (const auto& e : eo.endpoints)
    if (!e.starts_with("http://") && !e.starts_with("https://"))
      throw persistence::StartupError("--etcd takes URLs such as http://127.0.0.1:2379, not " + e);
  eo.prefix = o.etcd_prefix;
  eo.tls = {o.etcd_cacert, o.etcd_cert, o.etcd_key};
  eo.stale_after = std::chrono::milliseconds(o.etcd_stale_after_ms);
  eo.max_staleness = std::chrono::milliseconds(o.max_staleness_ms);
  eo.write_timeout = std::chrono::milliseconds(o.write_timeout_ms);
  eo.etcd_quota_bytes = static_cast<int64_t>(o.etcd_quota_bytes);
  eo.audit_retention = std::chrono::seconds(*cli::duration_seconds(o.audit_retention));
  eo.audit_memory_bytes = o.audit_memory_bytes;
  eo.advertise_url = advertise_url;
  eo.admin_url = admin_url;
  eo.join_from_peer = o.join_from_peer;
  eo.max_txn_ops = o.etcd_max_txn_ops;
  eo.root_key = root_key;
  eo.peer_ca = o.peer_ca;
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
  // A node that resumed from its own snapshot vouches for keys once its watch has caught
  // up with etcd: wait for that (briefly) before saying it is ready.
  if (!etcd->wait_until_vouching(std::chrono::seconds(10)))
    log(Level::warn, "cluster.stale_at_start",
        {{"note",
          "not in step with etcd after 10 s: verification answers 503 NODE_STALE until "
          "it is"}});
  log(Level::info, "cluster.loaded",
      {{"endpoints", o.etcd},
       {"prefix", eo.prefix},
       {"started", etcd->start_mode()},
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
  net::Endpoint admin_endpoint;
  if (!o.admin_listen.empty() && !net::parse_endpoint(o.admin_listen, admin_endpoint, error)) {
    std::fprintf(stderr, "keygate: --admin-listen %s: %s\n", o.admin_listen.c_str(), error.c_str());
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);  // a file-size limit becomes EFBIG, handled as a write failure

  // TLS: every file is read and checked before anything else starts.
  std::unique_ptr<net::TlsConfig> tls;
  if (o.tls_cert.empty() != o.tls_key.empty())
    throw persistence::StartupError("--tls-cert and --tls-key go together: give both or neither");
  if (o.tls_cert.empty() && (!o.tls_client_ca.empty() || o.tls_client_auth != "none"))
    throw persistence::StartupError(
        "--tls-client-ca and --tls-client-auth need TLS: give --tls-cert and --tls-key too");
  if (!o.tls_cert.empty()) {
    net::TlsOptions to{
        o.tls_cert, o.tls_key, o.tls_client_ca,
        o.tls_client_auth == "request" ? net::ClientAuth::request : net::ClientAuth::none};
    try {
      tls = std::make_unique<net::TlsConfig>(to);
    } catch (const std::runtime_error& e) {
      throw persistence::StartupError(std::string("TLS: ") + e.what());
    }
    log(Level::info, "tls.loaded", {{"certificate", tls->current()->description()}});
  }

  // Redis: the URL and the password file are read and checked before anything starts; Redis
  // itself need not answer yet (a node starts under the fair share and shares once it does).
  std::optional<cluster::FleetCounters::Options> redis;
  if (!o.redis.empty()) {
    if (o.etcd.empty())
      throw persistence::StartupError(
          "--redis holds a fleet's counters: it needs cluster mode (--etcd) too");
    auto url = cluster::parse_redis_url(o.redis);
    if (!url) throw persistence::StartupError("--redis: " + url.error());
    if (!o.redis_ca.empty() && !url->tls)
      throw persistence::StartupError("--redis-ca is for TLS: give a rediss:// URL");
    cluster::FleetCounters::Options fo;
    fo.redis.url = *url;
    if (!o.redis_password_file.empty()) {
      std::string line;
      if (FILE* f = std::fopen(o.redis_password_file.c_str(), "re")) {
        char buf[4096];
        if (std::fgets(buf, sizeof buf, f)) line = buf;
        std::fclose(f);
      }
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      if (line.empty())
        throw persistence::StartupError("--redis-password-file " + o.redis_password_file +
                                        ": no password on its first line");
      fo.redis.url.password = line;
    }
    fo.redis.ca_file = o.redis_ca;
    fo.redis.timeout = std::chrono::milliseconds(o.redis_timeout_ms);
    fo.prefix = o.etcd_prefix;
    fo.interval = std::chrono::milliseconds(o.redis_sync_ms);
    redis = std::move(fo);
  }

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
  state.set_auditing(*cli::duration_seconds(o.audit_retention) > 0);
  state.set_max_keys_per_org(o.max_keys_per_org);
  index.set_reclaim_after(*cli::duration_seconds(o.reclaim_keys_after) * 1000);
  handlers::Idempotency idempotency(o.idempotency_bytes);
  handlers::SignupLimit signups(o.signup_per_hour);
  handlers::Metrics metrics;
  core::HitLog hit_log;  // before the servers: their reactors record into it until they stop
  handlers::AppConfig config;
  config.open_signup = o.open_signup;
  config.access_log = o.access_log;
  config.console = o.console;
  config.trust_forwarded_client_cert = o.trust_forwarded_client_cert;
  config.serve_when_stale = o.serve_when_stale;
  config.root_hash = root.hash;
  config.rate_defaults.secret = {o.secret_rps, o.secret_burst};
  config.rate_defaults.publishable = {o.publishable_rps, o.publishable_burst};
  handlers::AppContext ctx{index, idempotency, metrics, config};
  ctx.signups = &signups;
  // With --admin-listen, the management API has a listener and a reactor thread of its
  // own, and --listen's reactors serve verification and the operations endpoints only:
  // writes (parsing, authenticating, answering them) never queue a verification behind
  // them on a reactor (perf/RESULTS.md, "Verification under writes").
  const bool admin = !o.admin_listen.empty();
  handlers::App app(
      ctx, admin ? handlers::App::Listener::data_plane : handlers::App::Listener::everything);
  handlers::App admin_app(ctx);

  net::ReactorOptions ropts;
  ropts.limits.max_header_bytes = o.max_header_bytes;
  ropts.limits.max_body_bytes = o.max_body_bytes;
  ropts.header_timeout = std::chrono::milliseconds(o.header_timeout_ms);
  ropts.idle_timeout = std::chrono::milliseconds(o.idle_timeout_ms);
  ropts.drain_timeout = std::chrono::milliseconds(o.drain_timeout_ms);
  ropts.max_connections = o.max_connections;
  ropts.max_buffer_bytes = o.max_buffer_bytes;
  ropts.tls = tls.get();
  ropts.thread_start = [] { t_rcu.emplace(); };
  ropts.thread_stop = [] { t_rcu.reset(); };
  net::Server server(app, ropts);
  // One connection limit and one buffer budget for both listeners: the flags say "for all
  // connections together".
  net::Server admin_server(admin_app, ropts, "kg-admin", &server);
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
        {{"address", server.bound().to_string()},
         {"socket_activated", activated},
         {"tls", tls != nullptr}});
    if (admin) {
      // Bound by keygate itself in either case (systemd passes one socket): during a
      // restart it refuses connections until the new process has read its data back.
      admin_server.start(admin_endpoint, 1);
      log(Level::info, "listening.admin",
          {{"address", admin_server.bound().to_string()}, {"tls", tls != nullptr}});
    }
    auto warn_if_plain = [&](const net::Endpoint& at, const net::Endpoint& bound) {
      const std::string& h = at.host;
      if (!tls && h != "localhost" && h != "::1" && !h.starts_with("127."))
        log(Level::warn, "listening.without_tls",
            {{"address", bound.to_string()},
             {"note",
              "keys and their values cross the network in the clear: give --tls-cert "
              "and --tls-key, or listen on loopback behind a TLS-terminating gateway"}});
    };
    if (!activated) warn_if_plain(endpoint, server.bound());
    if (admin) warn_if_plain(admin_endpoint, admin_server.bound());
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
      url = (tls ? "https://" : "http://") + at.to_string();
    }
    std::string admin_url = o.advertise_admin_url;
    if (admin_url.empty() && admin) {
      net::Endpoint at = activated ? admin_endpoint : admin_server.bound();  // bound later
      if (at.host == "0.0.0.0") at.host = "127.0.0.1";
      if (at.host == "::") at.host = "::1";
      admin_url = (tls ? "https://" : "http://") + at.to_string();
    }
    etcd = open_cluster(o, state, root.hash, url, admin_url, root.value, dir);
    ctx.committer = etcd.get();
    ctx.peer_snapshot = [e = etcd.get()](int& fd, uint64_t& size, int64_t& revision,
                                         std::string& identity, std::string& why) {
      return e->snapshot_for_peer(fd, size, revision, identity, why);
    };
    ctx.vouch_until = &etcd->vouch_until();  // published to the reactors by `ready` below
    ctx.config.rate_defaults.nodes = &etcd->live_nodes();  // each node its share of every limit
  }
  std::unique_ptr<cluster::FleetCounters> fleet;
  std::unique_ptr<cluster::FleetStore> fleet_store;
  if (redis) {
    fleet_store = std::make_unique<cluster::FleetStore>(redis->redis, redis->prefix);
    fleet_store->start();
    ctx.shared_store = fleet_store.get();  // idempotent answers, sealed, on every node
    ctx.config.shared_claim_ms = std::max<uint64_t>(60'000, uint64_t{2} * o.write_timeout_ms);
    fleet =
        std::make_unique<cluster::FleetCounters>(*redis, index, ctx.config.rate_defaults, hit_log);
    ctx.config.rate_defaults.hits = &hit_log;
    ctx.config.rate_defaults.shared = &fleet->shared();
    ctx.more_metrics = [&fleet](std::string& out) { fleet->write_metrics(out); };
    fleet->start();
    log(Level::info, "redis.configured",
        {{"redis", redis->redis.url.redacted()},
         {"interval_ms", static_cast<long long>(o.redis_sync_ms)},
         {"timeout_ms", static_cast<long long>(o.redis_timeout_ms)}});
  }

  // The control plane: signals (and the systemd watchdog) on Asio. The signals are taken
  // over before READY: from then on a SIGTERM is a graceful stop and a SIGUSR1 a snapshot,
  // never their default action (the end of the process), however soon they come. One that
  // arrives before its handler is waiting is held by the signal_set until it is.
  asio::io_context io;
  asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  asio::signal_set snapshot_signal(io, SIGUSR1);
  asio::signal_set reload_signal(io, SIGHUP);
  ctx.ready.store(true, std::memory_order_release);
  if (activated) listen();
  sd_notify(0, "READY=1\nSTATUS=serving");
  if (admin)
    log(Level::info, "ready",
        {{"address", server.bound().to_string()},
         {"admin_address", admin_server.bound().to_string()}});
  else
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
  // SIGHUP: the TLS certificate and key read again; new connections use them, open ones
  // keep theirs. A bad file keeps the old ones and says why.
  std::function<void()> wait_reload = [&] {
    reload_signal.async_wait([&](const asio::error_code& ec, int) {
      if (ec) return;
      std::string why;
      if (!tls)
        log(Level::info, "tls.not_reloaded", {{"by", "SIGHUP"}, {"reason", "TLS is off"}});
      else if (tls->reload(why))
        log(Level::info, "tls.reloaded",
            {{"by", "SIGHUP"}, {"certificate", tls->current()->description()}});
      else
        log(Level::error, "tls.reload_failed",
            {{"by", "SIGHUP"}, {"error", why}, {"note", "the previous certificate stays in use"}});
      wait_reload();
    });
  };
  wait_reload();
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
  admin_server.stop();
  server.join();
  admin_server.join();
  if (fleet) fleet->stop();
  if (fleet_store) fleet_store->stop();
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"keygate: a server for multi-tenant API credentials"};
  cli.require_subcommand(1);
  keygate::cli::ServeOptions serve_opts;
  auto* serve_cmd = cli.add_subcommand("serve", "Run the server");
  keygate::cli::add_serve_flags(*serve_cmd, serve_opts);
  // `keygate serve --config FILE`: the option is the top-level command's (where CLI11 2.1
  // reads files), given after `serve` thanks to fallthrough. CLI11 reads the file before
  // the environment, so KEYGATE_CONFIG is its default here; a file named either way must
  // exist.
  const char* config_env = std::getenv("KEYGATE_CONFIG");
  auto* config_opt = cli.set_config(
      "--config", config_env ? config_env : "",
      "Configuration file of `serve`, e.g. /etc/keygate/keygate.conf (or KEYGATE_CONFIG)");
  if (config_env && *config_env) config_opt->required();
  cli.config_formatter(keygate::cli::configuration_file_reader());
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
  std::string action, org_name, org_slug, org_id, key_id, key_name, key_type, key_env, project_id;
  bool include_archived = false;
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
  keys_cmd->add_option("--project", project_id, "For create: the project (proj_...) it lives in");
  add_target(keys_cmd);
  auto* projects_cmd =
      cli.add_subcommand("projects", "Manage an organization's projects on a running server");
  projects_cmd->add_option("action", action, "create | list | rename | archive")->required();
  projects_cmd->add_option("--org", org_id, "Organization id (org_...)")->required();
  projects_cmd->add_option("--project", project_id, "Project id (proj_...), for rename, archive");
  projects_cmd->add_option("--name", key_name, "Name, for create and rename");
  projects_cmd->add_flag("--include-archived", include_archived, "For list: archived ones too");
  add_target(projects_cmd);
  std::vector<std::string> audit_types;
  long audit_since = -1;
  auto* audit_cmd =
      cli.add_subcommand("audit", "List an organization's audit events on a running server");
  audit_cmd->add_option("--org", org_id, "Organization id (org_...)")->required();
  audit_cmd->add_option("--type", audit_types, "Only events of this type (repeatable)");
  audit_cmd->add_option("--since", audit_since, "Only events at or after this Unix time (seconds)");
  add_target(audit_cmd);

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
                       grace, project_id);
    if (*projects_cmd)
      return cli::projects(target, action, org_id, project_id, key_name, include_archived);
    if (*audit_cmd) return cli::audit(target, org_id, audit_types, audit_since);
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
