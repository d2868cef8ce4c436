#include "handlers/render.hpp"

#include "core/clock.hpp"
#include "handlers/errors.hpp"

namespace keygate::handlers {

void write_time(core::JsonWriter& w, std::string_view name, uint64_t unix_ms) {
  w.key(name);
  if (unix_ms)
    w.string(core::format_rfc3339(unix_ms));
  else
    w.null();
}

void write_id(core::JsonWriter& w, std::string_view name, core::IdKind kind, core::Id id) {
  w.key(name);
  if (id.empty()) {
    w.null();
  } else {
    char buf[32];
    w.string(std::string_view(buf, core::format_id(kind, id, buf)));
  }
}

void write_organization(core::JsonWriter& w, const core::Organization& o) {
  w.begin_object();
  write_id(w, "id", core::IdKind::organization, o.id);
  w.field("object", "organization")
      .field("name", std::string_view(o.name))
      .field("slug", std::string_view(o.slug));
  w.field("status", core::to_string(o.status));
  write_time(w, "created_at", o.created_ms);
  write_time(w, "updated_at", o.updated_ms);
  w.end_object();
}

core::Id project_of(const core::Index& index, const core::ApiKey& k) noexcept {
  if (!k.project) return {};
  const core::OrgSlot* org = index.find_org(k.organization_id);
  const core::Project* p = org ? org->project(k.project) : nullptr;
  return p ? p->id : core::Id{};
}

std::optional<core::Id> organization_in_path(Exchange& ex) {
  auto id = core::parse_id(core::IdKind::organization, ex.params[0]);
  if (!id)
    write_error(ex, core::ErrorCode::not_found, "No organization with that id exists.", "id");
  return id;
}

const core::Project* project_in_path(Exchange& ex, core::Id org) {
  auto id = core::parse_id(core::IdKind::project, ex.params[0]);
  const core::OrgSlot* o = ex.app.index.find_org(org);
  const core::ProjectSet* set = o ? o->project_set() : nullptr;
  const core::Project* p = set && id ? set->find(*id) : nullptr;
  if (!p)
    write_error(ex, core::ErrorCode::not_found,
                "No project with that id exists in this organization.", "project_id");
  return p;
}

void write_project(core::JsonWriter& w, const core::Project& p) {
  w.begin_object();
  write_id(w, "id", core::IdKind::project, p.id);
  w.field("object", "organization.project").field("name", std::string_view(p.name));
  w.field("created_at", static_cast<int64_t>(p.created_ms / 1000));
  w.key("archived_at");
  if (p.archived_ms)
    w.number(static_cast<int64_t>(p.archived_ms / 1000));
  else
    w.null();
  w.field("status", p.archived_ms ? "archived" : "active");
  w.end_object();
}

void write_api_key(core::JsonWriter& w, const core::Index& index, const core::ApiKey& k,
                   uint64_t last_used_ms, const core::RateDefaults& defaults, uint64_t now_ms,
                   std::string_view revealed) {
  const std::string_view preview(k.preview, 4);
  w.begin_object();
  write_id(w, "id", core::IdKind::api_key, k.id);
  w.field("object", "api_key");
  write_id(w, "organization_id", core::IdKind::organization, k.organization_id);
  write_id(w, "project_id", core::IdKind::project, project_of(index, k));
  w.field("type", core::to_string(k.type)).field("name", std::string_view(k.name));
  w.field("environment", core::to_string(k.environment)).field("key_preview", preview);
  if (k.type == core::KeyType::publishable) {
    w.field("display_key", k.public_value());
  } else {
    std::string display =
        "sk_" + std::string(core::to_string(k.environment)) + "_\u2026" + std::string(preview);
    w.field("display_key", std::string_view(display));
  }
  w.key("allowed_origins").begin_array();
  for (const auto& o : k.allowed_origins()) w.string(o);
  w.end_array();
  w.key("scopes");
  core::write_scope_array(w, k.scopes);
  const core::RateLimit rl = defaults.for_key(k);
  w.key("rate_limit")
      .begin_object()
      .field("requests_per_second", rl.requests_per_second)
      .field("burst", rl.burst)
      .end_object();
  w.field("status", core::to_string(k.status_at(now_ms)));
  write_time(w, "created_at", k.created_ms);
  write_time(w, "rotated_at", k.rotated_ms);
  write_time(w, "revoked_at", k.revoked_ms);
  write_time(w, "grace_expires_at", k.grace_expires_ms);
  write_time(w, "expires_at", k.expires_ms);
  write_time(w, "last_used_at", last_used_ms);
  write_id(w, "replaced_by", core::IdKind::api_key, k.replaced_by());
  write_id(w, "rotated_from", core::IdKind::api_key, k.rotated_from());
  if (!revealed.empty()) w.field("revealed_key", revealed);
  w.end_object();
}

}  // namespace keygate::handlers
