#include "core/scopes.hpp"

#include "core/json_writer.hpp"

namespace keygate::core {

namespace {
constexpr std::string_view kNames[] = {
    "sessions:list",
    "sessions:read",
    "fingerprints:list",
    "fingerprints:read",
    "organizations:create",
    "organizations:read",
    "organizations:update",
    "api_keys:read",
    "api_keys:manage",
    "gate:agent_tokens:verify",
    "gate:agent_tokens:revoke",
    "gate:login_sessions:consume",
    "gate:services:read",
    "gate:services:manage",
    "api_keys:verify",
    "certificates:read",
    "certificates:manage",
    "organizations:manage",
};
}  // namespace

std::string_view scope_name(Scope s) noexcept {
  return kNames[static_cast<unsigned>(s)];
}

ScopeParse parse_scope(std::string_view name, Scope& out) noexcept {
  for (unsigned i = 0; i < kScopeCount; ++i) {
    if (kNames[i] == name) {
      out = static_cast<Scope>(i);
      return ScopeParse::ok;
    }
  }
  if (name == "organizations:manage") return ScopeParse::removed;
  return ScopeParse::unknown;
}

std::string scope_list(ScopeSet set) {
  std::string out;
  for_each_scope(set, [&](Scope s) {
    if (!out.empty()) out += ", ";
    out += scope_name(s);
  });
  return out;
}

void write_scope_array(JsonWriter& w, ScopeSet set) {
  w.begin_array();
  for_each_scope(set, [&](Scope s) { w.string(scope_name(s)); });
  w.end_array();
}

void parse_scope_list(std::string_view list, ScopeSet& set, bool& unknown) noexcept {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (!name.empty()) {
      Scope s;
      if (parse_scope(name, s) == ScopeParse::ok)
        set |= bit(s);
      else
        unknown = true;
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace keygate::core
