// Exchange: one request being answered: the request, the response being built, who is
// asking (Principal), the path parameters, and the server-wide context handlers need.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <string_view>

#include "core/ids.hpp"
#include "core/index.hpp"
#include "core/shared_store.hpp"
#include "core/verify.hpp"
#include "net/buffer_budget.hpp"
#include "net/request.hpp"
#include "net/response.hpp"

namespace keygate::core {
class Committer;
}

namespace keygate::handlers {

class Idempotency;
class Metrics;
class SignupLimit;

struct AppConfig {
  bool open_signup = false;
  bool access_log = false;
  // --console: serve the browser console under /console/ (handlers/console.hpp).
  bool console = true;
  // X-Client-Cert-Sha256 is taken from plain-HTTP requests only with this (a gateway that
  // terminates TLS in front); over keygate's own TLS the presented certificate is used.
  bool trust_forwarded_client_cert = false;
  // Cluster mode, --serve-when-stale: verify from memory however far behind etcd the node
  // is (fail open; docs/operations.md says what that risks).
  bool serve_when_stale = false;
  core::RateDefaults rate_defaults;
  core::KeyHash root_hash{};
  // With --redis: how long a first attempt holds its Idempotency-Key in the fleet before
  // its answer replaces the claim (handlers/shared_idempotency.hpp): longer than any write
  // may take (twice --write-timeout-ms, a minute at least).
  uint64_t shared_claim_ms = 60'000;
};

// Everything the handlers share, owned by main.
struct AppContext {
  core::Index& index;
  Idempotency& idempotency;
  Metrics& metrics;
  AppConfig config;
  core::Committer* committer = nullptr;  // set, then `ready`, once recovery is done
  SignupLimit* signups = nullptr;        // anonymous sign-ups per address; null: unlimited
  // Cluster mode with --redis: where idempotent answers are shared with the other nodes
  // (handlers/shared_idempotency.hpp); null: this node's memory only.
  core::SharedStore* shared_store = nullptr;
  // Cluster mode: Unix ms until which this node may vouch for keys (the committer's
  // freshness); null on a single node, whose own log is the present.
  const std::atomic<uint64_t>* vouch_until = nullptr;

  // Whether this node may answer a verification now (hot path: one relaxed load).
  bool vouching(uint64_t now_ms) const noexcept {
    return !vouch_until || config.serve_when_stale ||
           now_ms <= vouch_until->load(std::memory_order_relaxed);
  }
  // Cluster mode: this node's newest snapshot, for a node that joins (GET
  // /v1/cluster/snapshot; cluster/EtcdCommitter::snapshot_for_peer). Empty on a single node.
  std::function<bool(int& fd, uint64_t& size, int64_t& revision, std::string& identity,
                     std::string& why)>
      peer_snapshot;
  std::atomic<bool> ready{false};
  std::function<unsigned()> connection_count;
  // More lines for /metrics from parts the handlers do not know (the fleet's counters).
  std::function<void(std::string&)> more_metrics;
  const net::BufferBudget* buffers = nullptr;  // the data plane's receive-buffer budget
};

struct Principal {
  bool authenticated = false;
  bool root = false;
  core::Id organization;  // tenants only
  core::Id key;
  core::KeyType type = core::KeyType::secret;
  core::ScopeSet scopes = 0;
};

struct Exchange {
  const net::Request& req;
  net::Response& res;
  AppContext& app;
  std::array<std::string_view, 2> params{};  // {id}, {keyId} in path order
  Principal principal;
  char request_id[32];
  uint8_t request_id_len = 0;
  uint16_t route = 0;  // index of the matched route, for metrics
  // CLOCK_MONOTONIC when the request was parsed: its latency starts here, and the rate
  // limiter takes it as "now" (a clock read costs ~25 ns in a VM; one is enough).
  uint64_t started_ns = 0;

  std::string_view request_id_view() const noexcept { return {request_id, request_id_len}; }
};

}  // namespace keygate::handlers
