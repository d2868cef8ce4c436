// Scopes of secret keys as a bitset: the list of docs/api.md §2 (seed 001 plus
// api_keys:verify, certificates:read, certificates:manage), and the removed
// organizations:manage, which only migrated data may still carry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
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
// What the root key holds: every scope, the removed one included.
inline constexpr ScopeSet kEveryScope = kAllScopes | kLegacyScope;

// The scopes a set stands for today: the removed organizations:manage reads as the three it
// was split into (organizations:create, :read, :update), and is itself dropped.
constexpr ScopeSet current_scopes(ScopeSet s) noexcept {
  if (!(s & kLegacyScope)) return s;
  return (s & ~kLegacyScope) | bit(Scope::organizations_create) | bit(Scope::organizations_read) |
         bit(Scope::organizations_update);
}
// Least privilege (docs/security.md, "Scopes only narrow"): the scopes of `wanted` that a
// caller holding `held` does not hold, both read as current_scopes(). Empty: it may grant
// them, or act on a key that has them.
constexpr ScopeSet scopes_beyond(ScopeSet wanted, ScopeSet held) noexcept {
  return current_scopes(wanted) & ~current_scopes(held);
}
// "api_keys:manage, certificates:read": for messages.
std::string scope_list(ScopeSet set);
// The set as a JSON array of names, in the order of the list: the one writer of scopes for
// records, answers and audit events.
class JsonWriter;
void write_scope_array(JsonWriter& w, ScopeSet set);

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
