// verify(): the hot path. Decides whether a presented key may be used, in the order of
// docs/api.md §5: shape and checksum, lookup, revoked, expired (or past its grace period),
// organization suspended, project archived, origin, scopes, rate limit. No allocation, no lock, no
// system call; the caller holds a ReadSection for the duration. After the scopes, a key of an
// organization with active certificates needs a matching client certificate
// (CERTIFICATE_REQUIRED), then comes the rate limit.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/hit_log.hpp"
#include "core/index.hpp"
#include "core/rate_limit.hpp"

namespace keygate::core {

enum class VerifyCode : uint8_t {
  valid,
  malformed,
  not_found,
  revoked,
  expired,
  insufficient_scope,
  origin_not_allowed,
  organization_suspended,
  project_archived,
  certificate_required,
  rate_limited,
  certificate_expired,  // checked with certificate_required: a bound certificate out of date
  // Cluster mode: this node cannot show it is within --max-staleness of etcd's present, so
  // it vouches for no key (answered before verify() runs; cluster/freshness.hpp).
  node_stale,
};
inline constexpr size_t kVerifyCodeCount = 13;
std::string_view to_string(VerifyCode c) noexcept;

struct RateDefaults {
  RateLimit secret{10'000, 20'000};
  RateLimit publishable{1'000, 2'000};
  // Cluster mode: how many nodes are alive (their registrations in etcd), each enforcing
  // its fair share of every limit (core/rate_limit.hpp); null: one, a single node.
  const std::atomic<uint32_t>* nodes = nullptr;
  // Cluster mode with --redis (cluster/fleet_counters.hpp): while `shared` holds, a key's
  // bucket on this node has its whole limit, and the exchange with Redis moves it on by the
  // other nodes' hits; every hit this node admits goes into `hits` for the exchange to
  // send. While Redis is away (`shared` false), the fair share again. Null: no Redis.
  const std::atomic<bool>* shared = nullptr;
  HitLog* hits = nullptr;
  RateLimit for_key(const ApiKey& k) const noexcept {
    return k.rate_limit ? *k.rate_limit : (k.type == KeyType::secret ? secret : publishable);
  }
  // How many nodes a key's limit is split over on this node: one (its whole limit) on a
  // single node or while Redis shares the counts, else every live node.
  uint32_t share() const noexcept {
    if (!nodes || (shared && shared->load(std::memory_order_relaxed))) return 1;
    return nodes->load(std::memory_order_relaxed);
  }
  // Takes a token from key `k`'s bucket: its limit, or this node's share of it. With Redis
  // (`hits`, set with `shared`), an admitted hit goes to the exchange.
  RateDecision take(std::atomic<uint64_t>& tat_ns, const ApiKey& k,
                    uint64_t now_ns) const noexcept {
    const RateDecision d = take_token(tat_ns, for_key(k), share(), now_ns);
    if (d.allowed && hits) hits->record(k.id);
    return d;
  }
};

struct VerifyRequest {
  std::string_view key;
  ScopeSet required_scopes = 0;
  bool unknown_scope = false;  // a scope was asked that no key can hold
  std::string_view origin;
  std::optional<Id> organization;  // a tenant verifier: keys of other organizations are NOT_FOUND
  // SHA-256 of the client's certificate (of its DER), as keygate's own TLS or a trusted
  // gateway saw it; checked when the key's organization has active certificates, with the
  // matching certificate's validity period at `now_ms`.
  const std::array<uint8_t, 32>* client_certificate = nullptr;
};

struct VerifyResult {
  VerifyCode code = VerifyCode::malformed;
  bool found = false;  // key_id and organization_id are meaningful
  Id key_id;
  Id organization_id;
  Id project_id;  // empty: the key is in no project
  KeyType type = KeyType::secret;
  Environment environment = Environment::live;
  ScopeSet scopes = 0;
  uint64_t expires_ms = 0;
  RateDecision rate;
};

VerifyResult verify(const Index& index, const VerifyRequest& request, const RateDefaults& limits,
                    uint64_t now_ms, uint64_t now_mono_ns) noexcept;

}  // namespace keygate::core
