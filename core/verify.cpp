#include "core/verify.hpp"

#include "core/validation.hpp"

namespace keygate::core {

std::string_view to_string(VerifyCode c) noexcept {
  switch (c) {
    case VerifyCode::valid:
      return "VALID";
    case VerifyCode::malformed:
      return "MALFORMED";
    case VerifyCode::not_found:
      return "NOT_FOUND";
    case VerifyCode::revoked:
      return "REVOKED";
    case VerifyCode::expired:
      return "EXPIRED";
    case VerifyCode::insufficient_scope:
      return "INSUFFICIENT_SCOPE";
    case VerifyCode::origin_not_allowed:
      return "ORIGIN_NOT_ALLOWED";
    case VerifyCode::organization_suspended:
      return "ORGANIZATION_SUSPENDED";
    case VerifyCode::project_archived:
      return "PROJECT_ARCHIVED";
    case VerifyCode::certificate_required:
      return "CERTIFICATE_REQUIRED";
    case VerifyCode::rate_limited:
      return "RATE_LIMITED";
    case VerifyCode::certificate_expired:
      return "CERTIFICATE_EXPIRED";
    case VerifyCode::node_stale:
      return "NODE_STALE";
  }
  return "MALFORMED";
}

// Hot path.
VerifyResult verify(const Index& index, const VerifyRequest& req, const RateDefaults& limits,
                    uint64_t now_ms, uint64_t now_mono_ns) noexcept {
  VerifyResult r;
  if (!parse_key(req.key)) return r;  // MALFORMED: the index is never touched
  KeySlot* slot = index.find_key(hash_key(req.key));
  const OrgSlot* org = slot ? index.org_of(*slot) : nullptr;
  if (!slot || (req.organization && org->id != *req.organization)) {
    r.code = VerifyCode::not_found;
    return r;
  }
  const ApiKey& k = *slot->load();
  r.found = true;
  r.key_id = k.id;
  r.organization_id = k.organization_id;
  r.type = k.type;
  r.environment = k.environment;
  r.scopes = k.scopes;
  r.expires_ms = k.expires_ms;
  switch (k.status_at(now_ms)) {
    case KeyStatus::revoked:
      r.code = VerifyCode::revoked;
      return r;
    case KeyStatus::expired:
      r.code = VerifyCode::expired;
      return r;
    default:
      break;
  }
  if (org->load()->status == OrgStatus::suspended) {
    r.code = VerifyCode::organization_suspended;
    return r;
  }
  if (k.project) {  // keys outside projects never read the project set
    if (const Project* p = org->project(k.project)) {
      r.project_id = p->id;
      if (p->archived_ms) {
        r.code = VerifyCode::project_archived;
        return r;
      }
    }
  }
  if (k.type == KeyType::publishable && !k.allowed_origins().empty()) {
    bool ok = false;
    // No pattern is longer than kMaxOriginBytes, so a longer Origin matches none.
    if (!req.origin.empty() && req.origin.size() <= kMaxOriginBytes)
      for (const auto& pattern : k.allowed_origins())
        ok = ok || origin_matches(pattern, req.origin);
    if (!ok) {
      r.code = VerifyCode::origin_not_allowed;
      return r;
    }
  }
  if (req.unknown_scope || (req.required_scopes & ~k.scopes) != 0) {
    r.code = VerifyCode::insufficient_scope;
    return r;
  }
  // The binding (docs/api.md §6, §7): the certificates active for the organization, and
  // for a key in a project those active for its project too; when there is any, the caller
  // must present one of them.
  if (const CertificateSet* certs = org->certs()) {
    bool required = !certs->active_fingerprints.empty();
    const CertificateSet::Bound* bound = nullptr;
    if (req.client_certificate)
      for (const auto& b : certs->active_fingerprints)
        if (b.fingerprint == *req.client_certificate) bound = &b;
    if (k.project)
      for (const auto& b : certs->project_fingerprints)
        if (b.project == k.project) {
          required = true;
          if (req.client_certificate && b.fingerprint == *req.client_certificate) bound = &b;
        }
    if (required && !bound) {
      r.code = VerifyCode::certificate_required;
      return r;
    }
    // The certificate presented is the one uploaded (the same DER), so its validity is
    // known here: checked now, not when the connection's handshake was made.
    const int64_t now_s = static_cast<int64_t>(now_ms / 1000);
    if (bound && (now_s < bound->valid_at || now_s > bound->expires_at)) {
      r.code = VerifyCode::certificate_expired;
      return r;
    }
  }
  r.rate = limits.take(slot->rate_tat_ns, k, now_mono_ns);
  if (!r.rate.allowed) {
    r.code = VerifyCode::rate_limited;
    return r;
  }
  // Last use is coarse (a second) so that a busy key does not bounce its cache line.
  slot->touch(now_ms);
  r.code = VerifyCode::valid;
  return r;
}

}  // namespace keygate::core
