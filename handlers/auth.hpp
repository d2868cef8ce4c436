// Authentication and authorization of management requests (docs/api.md §1 and §2):
// the credential from `Authorization: Bearer` or `X-API-Key`, the root key, 401 vs 403,
// scopes, the legacy scope, tenancy (another organization's ids are 404), rate limits.
#pragma once

#include <string_view>

#include "handlers/exchange.hpp"

namespace keygate::handlers {

enum class CredentialRead { none, ok, conflict, bad_scheme };
// Hot path: the credential as sent; no allocation.
CredentialRead read_credential(const net::Request& req, std::string_view& key) noexcept;
// The same from the values of the Authorization and X-API-Key headers.
CredentialRead read_credential(std::string_view authorization, std::string_view x_api_key,
                               std::string_view& key) noexcept;

// Fills ex.principal, or writes the error (400/401/403/429) and returns false. Counts the
// request against the key's rate limit.
bool authenticate(Exchange& ex);
// Secret key with `scope` (root has every scope); on organization endpoints a key still
// carrying organizations:manage is refused. Writes the 403 and returns false otherwise.
bool authorize(Exchange& ex, core::Scope scope, bool organization_endpoint = false);
// The principal may act on organization `org` (root: any that exists; a tenant: its own).
// Writes the 404 and returns false otherwise.
bool can_access(Exchange& ex, core::Id org);
// The organization an OpenAI-shaped request (/v1/organization/...) acts on, after
// authorize(scope): a tenant key's own, or for the root key the one its OpenAI-Organization
// header names. Writes the error and returns nullopt otherwise.
std::optional<core::Id> openai_organization(Exchange& ex, core::Scope scope);

void write_rate_headers(net::Response& res, const core::RateDecision& d);

}  // namespace keygate::handlers
