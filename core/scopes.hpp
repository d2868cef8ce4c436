// Scopes of secret keys as a bitset: the list of docs/api.md §2 (seed 001 plus
// api_keys:verify, certificates:read, certificates:manage), and the removed
// organizations:manage, which only migrated data may still carry.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace keygate::core {

enum class Scope : uint8_t {
  sessions_list,
  sessions_read,
  fingerprints_list,
  fingerprints_read,
  organizations_create,
  organizations_read,
  organizations_update,
  api_keys_read,
  api_keys_manage,
  gate_agent_tokens_verify,
  gate_agent_tokens_revoke,
  gate_login_sessions_consume,
  gate_services_read,
  gate_services_manage,
  api_keys_verify,
  certificates_read,
  certificates_manage,
  organizations_manage_legacy,  // removed: refused on input, blocks organization endpoints
};

inline constexpr unsigned kScopeCount = 17;  // without the legacy one

using ScopeSet = uint32_t;

constexpr ScopeSet bit(Scope s) noexcept {
  return ScopeSet{1} << static_cast<unsigned>(s);
}
inline constexpr ScopeSet kAllScopes = (ScopeSet{1} << kScopeCount) - 1;
inline constexpr ScopeSet kLegacyScope = bit(Scope::organizations_manage_legacy);

std::string_view scope_name(Scope s) noexcept;

enum class ScopeParse : uint8_t { ok, unknown, removed };
// Hot path: no allocation.
ScopeParse parse_scope(std::string_view name, Scope& out) noexcept;
// Adds the scopes of a comma-separated list (blanks around names allowed, empty names
// skipped); an unknown or removed name sets `unknown`. Hot path: no allocation.
void parse_scope_list(std::string_view list, ScopeSet& set, bool& unknown) noexcept;

template <typename F>
void for_each_scope(ScopeSet set, F&& f) {
  for (unsigned i = 0; i <= kScopeCount; ++i)
    if (set & (ScopeSet{1} << i)) f(static_cast<Scope>(i));
}

}  // namespace keygate::core
