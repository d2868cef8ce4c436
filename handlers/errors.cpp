#include "handlers/errors.hpp"

#include "core/json_writer.hpp"

namespace keygate::handlers {

using core::ErrorCode;

uint16_t http_status(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::none:
      return 200;
    case ErrorCode::invalid_json:
    case ErrorCode::missing_field:
    case ErrorCode::invalid_field:
    case ErrorCode::unknown_field:
    case ErrorCode::invalid_scope:
    case ErrorCode::removed_scope:
    case ErrorCode::immutable_field:
    case ErrorCode::invalid_certificate:
    case ErrorCode::certificate_limit_reached:
    case ErrorCode::project_limit_reached:
    case ErrorCode::key_limit_reached:
    case ErrorCode::invalid_request:
      return 400;
    case ErrorCode::missing_api_key:
    case ErrorCode::invalid_api_key:
    case ErrorCode::revoked_api_key:
    case ErrorCode::expired_api_key:
      return 401;
    case ErrorCode::missing_scope:
    case ErrorCode::publishable_key_not_allowed:
    case ErrorCode::organization_suspended:
    case ErrorCode::legacy_scope_requires_rotation:
    case ErrorCode::insufficient_scope:
      return 403;
    case ErrorCode::not_found:
      return 404;
    case ErrorCode::method_not_allowed:
      return 405;
    case ErrorCode::request_timeout:
      return 408;
    case ErrorCode::slug_taken:
    case ErrorCode::already_revoked:
    case ErrorCode::already_rotated:
    case ErrorCode::certificate_active:
    case ErrorCode::project_archived:
    case ErrorCode::duplicate_certificate:
    case ErrorCode::idempotency_key_reused:
    case ErrorCode::idempotency_in_progress:
      return 409;
    case ErrorCode::body_too_large:
      return 413;
    case ErrorCode::headers_too_large:
      return 431;
    case ErrorCode::rate_limited:
      return 429;
    case ErrorCode::storage_unavailable:
    case ErrorCode::server_busy:
    case ErrorCode::node_stale:
      return 503;
  }
  return 500;
}

std::string_view error_type(ErrorCode c) noexcept {
  switch (http_status(c)) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 409:
      return "conflict_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "api_error";
    default:
      return "invalid_request_error";
  }
}

std::string_view error_code_name(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::none:
      return "none";
    case ErrorCode::invalid_json:
      return "invalid_json";
    case ErrorCode::missing_field:
      return "missing_field";
    case ErrorCode::invalid_field:
      return "invalid_field";
    case ErrorCode::unknown_field:
      return "unknown_field";
    case ErrorCode::invalid_scope:
      return "invalid_scope";
    case ErrorCode::removed_scope:
      return "removed_scope";
    case ErrorCode::immutable_field:
      return "immutable_field";
    case ErrorCode::invalid_certificate:
      return "invalid_certificate";
    case ErrorCode::certificate_limit_reached:
      return "certificate_limit_reached";
    case ErrorCode::project_limit_reached:
      return "project_limit_reached";
    case ErrorCode::key_limit_reached:
      return "key_limit_reached";
    case ErrorCode::invalid_request:
      return "invalid_request";
    case ErrorCode::missing_api_key:
      return "missing_api_key";
    case ErrorCode::invalid_api_key:
      return "invalid_api_key";
    case ErrorCode::revoked_api_key:
      return "revoked_api_key";
    case ErrorCode::expired_api_key:
      return "expired_api_key";
    case ErrorCode::missing_scope:
      return "missing_scope";
    case ErrorCode::publishable_key_not_allowed:
      return "publishable_key_not_allowed";
    case ErrorCode::organization_suspended:
      return "organization_suspended";
    case ErrorCode::legacy_scope_requires_rotation:
      return "legacy_scope_requires_rotation";
    case ErrorCode::insufficient_scope:
      return "insufficient_scope";
    case ErrorCode::not_found:
      return "not_found";
    case ErrorCode::method_not_allowed:
      return "method_not_allowed";
    case ErrorCode::slug_taken:
      return "slug_taken";
    case ErrorCode::already_revoked:
      return "already_revoked";
    case ErrorCode::already_rotated:
      return "already_rotated";
    case ErrorCode::certificate_active:
      return "certificate_active";
    case ErrorCode::project_archived:
      return "project_archived";
    case ErrorCode::duplicate_certificate:
      return "duplicate_certificate";
    case ErrorCode::idempotency_key_reused:
      return "idempotency_key_reused";
    case ErrorCode::idempotency_in_progress:
      return "idempotency_in_progress";
    case ErrorCode::request_timeout:
      return "request_timeout";
    case ErrorCode::body_too_large:
      return "body_too_large";
    case ErrorCode::headers_too_large:
      return "headers_too_large";
    case ErrorCode::rate_limited:
      return "rate_limited";
    case ErrorCode::storage_unavailable:
      return "storage_unavailable";
    case ErrorCode::server_busy:
      return "server_busy";
    case ErrorCode::node_stale:
      return "node_stale";
  }
  return "unknown";
}

void write_error(net::Response& res, std::string_view request_id, ErrorCode code,
                 std::string_view message, std::string_view param) {
  res.status = http_status(code);
  res.content_type = "application/json";
  res.body.clear();
  core::JsonWriter w(res.body);
  w.begin_object().key("error").begin_object();
  w.field("type", error_type(code)).field("code", error_code_name(code)).field("message", message);
  w.key("param");
  if (param.empty())
    w.null();
  else
    w.string(param);
  w.end_object()
      .key("meta")
      .begin_object()
      .field("request_id", request_id)
      .end_object()
      .end_object();
}

void write_error(Exchange& ex, ErrorCode code, std::string_view message, std::string_view param) {
  write_error(ex.res, ex.request_id_view(), code, message, param);
}

void write_error(Exchange& ex, const core::Error& e) {
  write_error(ex, e.code, e.message, e.param);
}

}  // namespace keygate::handlers
