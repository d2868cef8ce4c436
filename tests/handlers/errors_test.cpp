#include "handlers/errors.hpp"

#include <gtest/gtest.h>

using namespace keygate;
using core::ErrorCode;

TEST(Errors, EveryCodeMapsToTheSpecsStatusAndType) {
  struct Row {
    ErrorCode code;
    uint16_t status;
    const char* type;
    const char* name;
  };
  const Row rows[] = {
      {ErrorCode::invalid_json, 400, "invalid_request_error", "invalid_json"},
      {ErrorCode::removed_scope, 400, "invalid_request_error", "removed_scope"},
      {ErrorCode::missing_api_key, 401, "authentication_error", "missing_api_key"},
      {ErrorCode::expired_api_key, 401, "authentication_error", "expired_api_key"},
      {ErrorCode::legacy_scope_requires_rotation, 403, "permission_error",
       "legacy_scope_requires_rotation"},
      {ErrorCode::not_found, 404, "not_found_error", "not_found"},
      {ErrorCode::method_not_allowed, 405, "invalid_request_error", "method_not_allowed"},
      {ErrorCode::slug_taken, 409, "conflict_error", "slug_taken"},
      {ErrorCode::idempotency_key_reused, 409, "conflict_error", "idempotency_key_reused"},
      {ErrorCode::body_too_large, 413, "invalid_request_error", "body_too_large"},
      {ErrorCode::headers_too_large, 431, "invalid_request_error", "headers_too_large"},
      {ErrorCode::rate_limited, 429, "rate_limit_error", "rate_limited"},
      {ErrorCode::storage_unavailable, 503, "api_error", "storage_unavailable"},
      {ErrorCode::server_busy, 503, "api_error", "server_busy"},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(handlers::http_status(r.code), r.status) << r.name;
    EXPECT_EQ(handlers::error_type(r.code), r.type) << r.name;
    EXPECT_EQ(handlers::error_code_name(r.code), r.name);
  }
}

TEST(Errors, TheEnvelopeNamesTypeCodeMessageParamAndRequestId) {
  net::Response res;
  handlers::write_error(res, "req_1", ErrorCode::invalid_field, "say \"what\"", "name");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(
      res.body,
      R"({"error":{"type":"invalid_request_error","code":"invalid_field","message":"say \"what\"","param":"name"},"meta":{"request_id":"req_1"}})");
  handlers::write_error(res, "req_2", ErrorCode::not_found, "gone");
  EXPECT_NE(res.body.find(R"("param":null)"), std::string::npos);
}
