// The error envelope (docs/api.md §1.6), built in one place: maps each core::ErrorCode to its HTTP
// status and type (docs/api.md §1) and writes
// {"error": {"type", "code", "message", "param"}, "meta": {"request_id"}}.
#pragma once

#include <string_view>

#include "core/errors.hpp"
#include "handlers/exchange.hpp"

namespace keygate::handlers {

uint16_t http_status(core::ErrorCode code) noexcept;
std::string_view error_type(core::ErrorCode code) noexcept;
std::string_view error_code_name(core::ErrorCode code) noexcept;

void write_error(Exchange& ex, const core::Error& error);
void write_error(Exchange& ex, core::ErrorCode code, std::string_view message,
                 std::string_view param = {});
// Without an Exchange: for requests that never reached the router.
void write_error(net::Response& res, std::string_view request_id, core::ErrorCode code,
                 std::string_view message, std::string_view param = {});

}  // namespace keygate::handlers
