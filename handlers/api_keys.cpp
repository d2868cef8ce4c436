// API keys (docs/api.md §4).
#include "core/clock.hpp"
#include "core/validation.hpp"
#include "handlers/auth.hpp"
#include "handlers/commit.hpp"
#include "handlers/errors.hpp"
#include "handlers/families.hpp"
#include "handlers/json_input.hpp"
#include "handlers/query.hpp"
#include "handlers/render.hpp"

namespace keygate::handlers {

using core::ErrorCode;

namespace {

constexpr uint64_t kMaxGraceSeconds = 604'800;

void key_not_found(Exchange& ex) {
  write_error(ex, ErrorCode::not_found, "No API key with that id exists in this organization.",
              "key_id");
}

// Checks scope and tenancy, and reads {id} (and {keyId} when `with_key`).
bool prologue(Exchange& ex, core::Scope scope, bool with_key, core::Id& org, core::Id& key) {
  if (!authorize(ex, scope)) return false;
  auto o = organization_in_path(ex);
  if (!o || !can_access(ex, *o)) return false;
  org = *o;
  if (!with_key) return true;
  auto k = core::parse_id(core::IdKind::api_key, ex.params[1]);
  if (!k) {
    key_not_found(ex);
    return false;
  }
  key = *k;
  return true;
}

// At most kMaxOriginsPerKey patterns of at most kMaxOriginBytes each: verification walks
// them for every request with a publishable key (docs/api.md §4, "Bounds").
bool read_origins(JsonValue& v, std::vector<std::string>& out, core::Error& err) {
  if (!read_strings(v, "allowed_origins", out, err)) return false;
  if (out.size() > core::kMaxOriginsPerKey) {
    err = invalid_field("allowed_origins", "may hold at most " +
                                               std::to_string(core::kMaxOriginsPerKey) +
                                               " origins; use a wildcard (https://*.example.com) "
                                               "for many subdomains");
    return false;
  }
  for (const auto& o : out) {
    if (o.size() > core::kMaxOriginBytes) {
      err = invalid_field("allowed_origins", "holds an origin longer than " +
                                                 std::to_string(core::kMaxOriginBytes) +
                                                 " bytes: '" + shown(o) + "'");
      return false;
    }
    if (!core::valid_origin_pattern(o)) {
      err = invalid_field("allowed_origins",
                          "must hold origins like https://app.example.com or https://*.example.com "
                          "(scheme and host, optional port, no path); '" +
                              shown(o) + "' is not one");
      return false;
    }
  }
  return true;
}

bool read_rate_limit(Exchange& ex, JsonValue& v, core::RateLimit& out, core::Error& err) {
  if (!ex.principal.root) {
    err = invalid_field("rate_limit",
                        "is managed by the operator and cannot be set with a tenant key");
    return false;
  }
  simdjson::ondemand::object obj;
  if (v.get_object().get(obj)) {
    err = invalid_field("rate_limit", "must be an object {\"requests_per_second\", \"burst\"}");
    return false;
  }
  bool rps = false, burst = false;
  for (auto f : obj) {
    std::string_view k;
    JsonValue fv;
    uint64_t n = 0;
    if (f.unescaped_key().get(k) || f.value().get(fv))
      return (err = invalid_json("invalid JSON"), false);
    if (k != "requests_per_second" && k != "burst") return (err = unknown_field(k), false);
    if (!read_uint(fv, k, n, err)) return false;
    if (n > 10'000'000) return (err = invalid_field(k, "must be at most 10000000"), false);
    if (k == "burst")
      out.burst = static_cast<uint32_t>(n), burst = true;
    else
      out.requests_per_second = static_cast<uint32_t>(n), rps = true;
  }
  if (!rps || !burst) {
    err = missing_field(rps ? "rate_limit.burst" : "rate_limit.requests_per_second");
    return false;
  }
  return true;
}

bool immutable(std::string_view k, core::Error& err) {
  err = core::make_error(
      ErrorCode::immutable_field,
      "'" + std::string(k) + "' cannot be changed: rotate the key or create a new one.",
      std::string(k));
  return false;
}

void respond_key(Exchange& ex, uint16_t status, const core::ApiKey& key,
                 std::string_view revealed) {
  core::ReadSection rs;
  uint64_t last_used = 0;
  if (core::KeySlot* s = ex.app.index.find_key(key.id)) last_used = s->last_used_ms();
  const uint64_t now = core::now_ms();
  write_envelope(ex, status, [&](core::JsonWriter& w) {
    write_api_key(w, ex.app.index, key, last_used, ex.app.config.rate_defaults, now, revealed);
  });
}

}  // namespace

net::task<void> create_api_key(Exchange& ex) {
  core::Id org, unused;
  if (!prologue(ex, core::Scope::api_keys_manage, false, org, unused)) co_return;
  core::CreateApiKey cmd;
  cmd.org = org;
  bool has_name = false, has_origins = false, has_scopes = false;
  core::Error err;
  bool ok = JsonFields::each(ex.req.body, false, err, [&](std::string_view k, JsonValue& v) {
    std::string s;
    if (k == "name") {
      if (!read_string(v, k, cmd.name, err)) return false;
      has_name = true;
      return core::valid_name(cmd.name) ||
             (err = invalid_field("name", "must be 1 to 200 characters and not blank"), false);
    }
    if (k == "type") {
      if (!read_string(v, k, s, err)) return false;
      auto t = core::parse_key_type(s);
      if (!t) return (err = invalid_field("type", "must be 'secret' or 'publishable'"), false);
      cmd.type = *t;
      return true;
    }
    if (k == "environment") {
      if (!read_string(v, k, s, err)) return false;
      auto e = core::parse_environment(s);
      if (!e) return (err = invalid_field("environment", "must be 'live' or 'test'"), false);
      cmd.environment = *e;
      return true;
    }
    if (k == "allowed_origins")
      return (has_origins = true) && read_origins(v, cmd.allowed_origins, err);
    if (k == "scopes") {
      core::ScopeSet scopes = 0;
      if (!read_scopes(v, k, scopes, err)) return false;
      cmd.scopes = scopes;
      return has_scopes = true;
    }
    if (k == "expires_at") {
      bool null = false;
      if (read_is_null(v, null) && null) return true;
      if (!read_string(v, k, s, err)) return false;
      const auto when = core::parse_rfc3339(s);
      if (!when) return (err = invalid_field("expires_at", when.error()), false);
      cmd.expires_ms = *when;
      if (cmd.expires_ms <= core::now_ms())
        return (err = invalid_field("expires_at", "must be in the future"), false);
      return true;
    }
    if (k == "project_id") {
      std::string_view text;
      if (!read_string_view(v, k, text, err)) return false;
      auto id = core::parse_id(core::IdKind::project, text);
      if (!id) return (err = invalid_field(k, "must be a project id (proj_...)"), false);
      cmd.project = *id;
      return true;
    }
    if (k == "rate_limit") {
      core::RateLimit rl;
      if (!read_rate_limit(ex, v, rl, err)) return false;
      cmd.rate_limit = rl;
      return true;
    }
    err = unknown_field(k);
    return false;
  });
  if (ok && !has_name) ok = (err = missing_field("name"), false);
  if (ok && has_origins && cmd.type != core::KeyType::publishable)
    ok = (err = invalid_field("allowed_origins", "can only be set on publishable keys"), false);
  if (ok && has_scopes && cmd.type != core::KeyType::secret)
    ok = (err = invalid_field("scopes",
                              "can only be set on secret keys: publishable keys carry no scopes"),
          false);
  if (!ok) {
    write_error(ex, err);
    co_return;
  }
  auto out = co_await commit_or_reject(ex, std::move(cmd));
  if (!out) co_return;
  respond_key(ex, 201, *out->key, out->revealed_key);
}

void list_api_keys(Exchange& ex) {
  core::Id org, unused;
  if (!prologue(ex, core::Scope::api_keys_read, false, org, unused)) return;
  Page page;
  if (!read_page(ex, core::IdKind::api_key, 200, page)) return;
  std::optional<core::KeyStatus> status;
  std::optional<core::KeyType> type;
  std::optional<core::Environment> env;
  if (auto v = query_param(ex.req.query, "status")) {
    for (auto s : {core::KeyStatus::active, core::KeyStatus::rotating, core::KeyStatus::expired,
                   core::KeyStatus::revoked})
      if (core::to_string(s) == *v) status = s;
    if (!status) {
      write_error(ex, ErrorCode::invalid_field,
                  "'status' must be active, rotating, expired or revoked.", "status");
      return;
    }
  }
  if (auto v = query_param(ex.req.query, "type"); v && !(type = core::parse_key_type(*v))) {
    write_error(ex, ErrorCode::invalid_field, "'type' must be secret or publishable.", "type");
    return;
  }
  if (auto v = query_param(ex.req.query, "environment");
      v && !(env = core::parse_environment(*v))) {
    write_error(ex, ErrorCode::invalid_field, "'environment' must be live or test.", "environment");
    return;
  }
  std::optional<core::Id> project_filter;
  if (auto v = query_param(ex.req.query, "project_id");
      v && !(project_filter = core::parse_id(core::IdKind::project, *v))) {
    write_error(ex, ErrorCode::invalid_field, "'project_id' must be a project id (proj_...).",
                "project_id");
    return;
  }
  const uint64_t now = core::now_ms();
  core::ReadSection rs;
  core::OrgSlot* o = ex.app.index.find_org(org);
  core::KeySlot* s = o->keys();
  uint16_t project = 0;  // the filter's number in this organization
  if (project_filter) {
    const core::ProjectSet* set = o->project_set();
    const core::Project* p = set ? set->find(*project_filter) : nullptr;
    if (!p) {
      write_error(ex, ErrorCode::invalid_field,
                  "'project_id' does not name a project of this organization.", "project_id");
      return;
    }
    project = p->number;
  }
  // A cursor whose key was reclaimed since (--reclaim-keys-after) is a place in the list
  // still: the walk starts over and passes the keys up to it, within the scan bound.
  std::optional<core::Id> passed;
  if (page.after) {
    core::KeySlot* cur = ex.app.index.find_key(*page.after);
    if (cur && ex.app.index.org_of(*cur) != o) {
      write_error(ex, ErrorCode::invalid_field,
                  "'cursor' does not name a key of this organization.", "cursor");
      return;
    }
    if (cur)
      s = cur->next();
    else
      passed = page.after;
  }
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  w.begin_object().key("data").begin_array();
  unsigned n = 0;
  core::Id last;
  bool more = false;
  // At most kMaxListScan keys are looked at per page, whatever the filters: when they match
  // rarely the page is short (even empty) and its cursor continues where the walk stopped.
  size_t examined = 0;
  for (; s; s = s->next()) {
    if (examined++ == kMaxListScan) {
      more = true;
      break;
    }
    const core::ApiKey& k = *s->load();
    if ((passed && !(*passed < k.id)) || (status && k.status_at(now) != *status) ||
        (type && k.type != *type) || (env && k.environment != *env) ||
        (project && k.project != project)) {
      last = k.id;
      continue;
    }
    if (n == page.limit) {
      more = true;
      break;
    }
    write_api_key(w, ex.app.index, k, s->last_used_ms(), ex.app.config.rate_defaults, now);
    last = k.id;
    ++n;
  }
  w.end_array().key("pagination").begin_object().field("limit", page.limit).field("has_more", more);
  if (more)
    write_id(w, "next_cursor", core::IdKind::api_key, last);
  else
    w.key("next_cursor").null();
  w.end_object()
      .key("meta")
      .begin_object()
      .field("request_id", ex.request_id_view())
      .end_object()
      .end_object();
}

void get_api_key(Exchange& ex) {
  core::Id org, key;
  if (!prologue(ex, core::Scope::api_keys_read, true, org, key)) return;
  core::ReadSection rs;
  core::KeySlot* s = ex.app.index.find_key(key);
  if (!s || ex.app.index.org_of(*s)->id != org) return key_not_found(ex);
  const uint64_t now = core::now_ms();
  write_envelope(ex, 200, [&](core::JsonWriter& w) {
    write_api_key(w, ex.app.index, *s->load(), s->last_used_ms(), ex.app.config.rate_defaults, now);
  });
}

net::task<void> update_api_key(Exchange& ex) {
  core::Id org, key;
  if (!prologue(ex, core::Scope::api_keys_manage, true, org, key)) co_return;
  core::KeyType type;
  {
    core::ReadSection rs;
    core::KeySlot* s = ex.app.index.find_key(key);
    if (!s || ex.app.index.org_of(*s)->id != org) co_return key_not_found(ex);
    type = s->load()->type;
  }
  core::UpdateApiKey cmd;
  cmd.org = org;
  cmd.key = key;
  core::Error err;
  bool ok = JsonFields::each(ex.req.body, false, err, [&](std::string_view k, JsonValue& v) {
    if (k == "name") {
      std::string s;
      if (!read_string(v, k, s, err)) return false;
      if (!core::valid_name(s))
        return (err = invalid_field("name", "must be 1 to 200 characters and not blank"), false);
      cmd.name = std::move(s);
      return true;
    }
    if (k == "allowed_origins") {
      if (type != core::KeyType::publishable)
        return (err = invalid_field("allowed_origins", "can only be set on publishable keys"),
                false);
      std::vector<std::string> origins;
      if (!read_origins(v, origins, err)) return false;
      cmd.allowed_origins = std::move(origins);
      return true;
    }
    if (k == "scopes") {
      if (type != core::KeyType::secret)
        return (err = invalid_field("scopes", "can only be set on secret keys"), false);
      core::ScopeSet scopes;
      if (!read_scopes(v, k, scopes, err)) return false;
      cmd.scopes = scopes;
      return true;
    }
    if (k == "rate_limit") {
      core::RateLimit rl;
      if (!read_rate_limit(ex, v, rl, err)) return false;
      cmd.rate_limit = rl;
      return true;
    }
    if (k == "type" || k == "environment" || k == "key" || k == "revealed_key" ||
        k == "key_preview" || k == "display_key" || k == "id" || k == "organization_id")
      return immutable(k, err);
    err = unknown_field(k);
    return false;
  });
  if (!ok) {
    write_error(ex, err);
    co_return;
  }
  auto out = co_await commit_or_reject(ex, std::move(cmd));
  if (!out) co_return;
  respond_key(ex, 200, *out->key, {});
}

net::task<void> revoke_api_key(Exchange& ex) {
  core::Id org, key;
  if (!prologue(ex, core::Scope::api_keys_manage, true, org, key)) co_return;
  auto out = co_await commit_or_reject(ex, core::RevokeApiKey{org, key});
  if (!out) co_return;
  respond_key(ex, 200, *out->key, {});
}

net::task<void> rotate_api_key(Exchange& ex) {
  core::Id org, key;
  if (!prologue(ex, core::Scope::api_keys_manage, true, org, key)) co_return;
  core::RotateApiKey cmd{org, key};
  core::Error err;
  const bool ok = JsonFields::each(ex.req.body, true, err, [&](std::string_view k, JsonValue& v) {
    if (k != "grace_period_seconds") return (err = unknown_field(k), false);
    if (!read_uint(v, k, cmd.grace_period_seconds, err)) return false;
    if (cmd.grace_period_seconds > kMaxGraceSeconds)
      return (err = invalid_field(k, "must be from 0 to 604800 (7 days)"), false);
    return true;
  });
  if (!ok) {
    write_error(ex, err);
    co_return;
  }
  auto out = co_await commit_or_reject(ex, std::move(cmd));
  if (!out) co_return;
  respond_key(ex, 201, *out->key, out->revealed_key);
}

}  // namespace keygate::handlers
