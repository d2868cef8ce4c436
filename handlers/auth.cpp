#include "handlers/auth.hpp"

#include <openssl/crypto.h>

#include <charconv>

#include "core/clock.hpp"
#include "core/rate_limit.hpp"
#include "handlers/errors.hpp"

namespace keygate::handlers {

using core::ErrorCode;

CredentialRead read_credential(std::string_view auth, std::string_view header,
                               std::string_view& key) noexcept {
  std::string_view bearer;
  if (!auth.empty()) {
    if (auth.size() < 7 || !net::iequals(auth.substr(0, 7), "bearer "))
      return CredentialRead::bad_scheme;
    bearer = auth.substr(7);
    while (!bearer.empty() && bearer.front() == ' ') bearer.remove_prefix(1);
  }
  if (!bearer.empty() && !header.empty() && bearer != header) return CredentialRead::conflict;
  key = bearer.empty() ? header : bearer;
  return key.empty() ? CredentialRead::none : CredentialRead::ok;
}

CredentialRead read_credential(const net::Request& req, std::string_view& key) noexcept {
  return read_credential(req.header("authorization"), req.header("x-api-key"), key);
}

void write_rate_headers(net::Response& res, const core::RateDecision& d) {
  if (!d.limited) return;
  char buf[16];
  auto r = std::to_chars(buf, buf + sizeof buf, d.limit);
  res.add_header("X-RateLimit-Limit", std::string_view(buf, r.ptr));
  r = std::to_chars(buf, buf + sizeof buf, d.remaining);
  res.add_header("X-RateLimit-Remaining", std::string_view(buf, r.ptr));
  if (!d.allowed) {
    r = std::to_chars(buf, buf + sizeof buf, d.retry_after_s);
    res.add_header("Retry-After", std::string_view(buf, r.ptr));
  }
}

bool authenticate(Exchange& ex) {
  std::string_view key;
  switch (read_credential(ex.req, key)) {
    case CredentialRead::none:
      write_error(
          ex, ErrorCode::missing_api_key,
          "No API key was sent: pass one as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.");
      return false;
    case CredentialRead::conflict:
      write_error(ex, ErrorCode::invalid_request,
                  "The Authorization and X-API-Key headers carry different keys: send one of them.",
                  "X-API-Key");
      return false;
    case CredentialRead::bad_scheme:
      write_error(
          ex, ErrorCode::invalid_api_key,
          "The Authorization header must use the Bearer scheme: 'Authorization: Bearer <key>'.");
      return false;
    case CredentialRead::ok:
      break;
  }
  const core::KeyHash hash = core::hash_key(key);
  if (CRYPTO_memcmp(hash.data(), ex.app.config.root_hash.data(), hash.size()) == 0) {
    ex.principal.authenticated = ex.principal.root = true;
    ex.principal.scopes = core::kAllScopes;
    return true;
  }
  const auto shape = core::parse_key(key);
  core::ReadSection rs;
  core::KeySlot* slot = shape ? ex.app.index.find_key(hash) : nullptr;
  if (!slot) {
    write_error(
        ex, ErrorCode::invalid_api_key,
        "The API key is not valid: check that it was copied whole and has not been deleted.");
    return false;
  }
  const core::ApiKey& k = *slot->load();
  switch (k.status_at(core::coarse_now_ms())) {
    case core::KeyStatus::revoked:
      write_error(ex, ErrorCode::revoked_api_key, "This API key was revoked: use another key.");
      return false;
    case core::KeyStatus::expired:
      write_error(
          ex, ErrorCode::expired_api_key,
          "This API key has expired (or its rotation grace period is over): use its replacement.");
      return false;
    default:
      break;
  }
  if (ex.app.index.org_of(*slot)->load()->status == core::OrgStatus::suspended) {
    write_error(ex, ErrorCode::organization_suspended,
                "This organization is suspended: contact the operator of this server.");
    return false;
  }
  const core::RateDecision rate =
      ex.app.config.rate_defaults.take(slot->rate_tat_ns, k, ex.started_ns);
  write_rate_headers(ex.res, rate);
  if (!rate.allowed) {
    write_error(ex, ErrorCode::rate_limited,
                "Too many requests with this API key: retry after the time in Retry-After.");
    return false;
  }
  slot->touch(core::coarse_now_ms());
  ex.principal.authenticated = true;
  ex.principal.organization = k.organization_id;
  ex.principal.key = k.id;
  ex.principal.type = k.type;
  ex.principal.scopes = k.scopes;
  return true;
}

bool authorize(Exchange& ex, core::Scope scope, bool organization_endpoint) {
  const Principal& p = ex.principal;
  if (p.root) return true;
  if (p.type == core::KeyType::publishable) {
    write_error(ex, ErrorCode::publishable_key_not_allowed,
                "Publishable keys cannot call this endpoint: use a secret key (sk_...).");
    return false;
  }
  if (organization_endpoint && (p.scopes & core::kLegacyScope)) {
    write_error(
        ex, ErrorCode::legacy_scope_requires_rotation,
        "This key carries the removed scope organizations:manage: rotate it (its replacement gets "
        "organizations:create, organizations:read and organizations:update) or create a new key.");
    return false;
  }
  if (!(p.scopes & core::bit(scope))) {
    write_error(ex, ErrorCode::missing_scope,
                "This API key lacks the scope '" + std::string(core::scope_name(scope)) +
                    "': create or update a key that has it.");
    return false;
  }
  return true;
}

bool can_access(Exchange& ex, core::Id org) {
  bool ok = ex.principal.root ? [&] {
    core::ReadSection rs;
    return ex.app.index.find_org(org) != nullptr;
  }() : ex.principal.organization == org;
  if (!ok) write_error(ex, ErrorCode::not_found, "No organization with that id exists.", "id");
  return ok;
}

std::optional<core::Id> openai_organization(Exchange& ex, core::Scope scope) {
  if (!authorize(ex, scope)) return std::nullopt;
  if (!ex.principal.root) return ex.principal.organization;
  const std::string_view header = ex.req.header("openai-organization");
  if (header.empty()) {
    write_error(
        ex, ErrorCode::invalid_request,
        "The root key acts on every organization: name one in the OpenAI-Organization header.",
        "OpenAI-Organization");
    return std::nullopt;
  }
  auto id = core::parse_id(core::IdKind::organization, header);
  if (!id) {
    write_error(ex, ErrorCode::invalid_field,
                "OpenAI-Organization must be an organization id (org_...).", "OpenAI-Organization");
    return std::nullopt;
  }
  if (!can_access(ex, *id)) return std::nullopt;
  return id;
}

}  // namespace keygate::handlers
