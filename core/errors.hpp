// Error: what can go wrong in the domain, as a value. handlers/errors.cpp maps each code to
// its HTTP status and type in one table. A message says what was wrong and what to do; it
// never contains a secret.
#pragma once

#include <string>

namespace keygate::core {

enum class ErrorCode : uint8_t {
  none,
  // 400
  invalid_json,
  missing_field,
  invalid_field,
  unknown_field,
  invalid_scope,
  removed_scope,
  immutable_field,
  invalid_certificate,
  certificate_limit_reached,
  project_limit_reached,
  key_limit_reached,
  invalid_request,
  // 401
  missing_api_key,
  invalid_api_key,
  revoked_api_key,
  expired_api_key,
  // 403
  missing_scope,
  publishable_key_not_allowed,
  organization_suspended,
  legacy_scope_requires_rotation,
  insufficient_scope,
  // 404, 405
  not_found,
  method_not_allowed,
  // 409
  slug_taken,
  already_revoked,
  already_rotated,
  certificate_active,
  duplicate_certificate,
  project_archived,
  idempotency_key_reused,
  idempotency_in_progress,
  // 408, 413, 431, 429
  request_timeout,
  body_too_large,
  headers_too_large,
  rate_limited,
  // 503
  storage_unavailable,
  server_busy,
  node_stale,
};

struct Error {
  ErrorCode code = ErrorCode::none;
  std::string message;
  std::string param;  // the offending field, if any

  explicit operator bool() const noexcept { return code != ErrorCode::none; }
};

inline Error make_error(ErrorCode code, std::string message, std::string param = {}) {
  return Error{code, std::move(message), std::move(param)};
}

}  // namespace keygate::core
