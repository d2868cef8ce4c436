// Projects (docs/api.md §7), wire-compatible with the OpenAI Admin API: the objects
// `organization.project`, `organization.project.api_key` and `list` as its SDKs parse
// them, times in Unix seconds, the organization resolved as for certificates
// (openai_organization). Reading a project needs organizations:read, changing it
// organizations:update: a project is part of how an organization is set up, as its name
// and slug are. A project's keys are keygate's own keys (api_keys:read, api_keys:manage).
#include <algorithm>

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

void project_not_found(Exchange& ex) {
  write_error(ex, ErrorCode::not_found, "No project with that id exists in this organization.",
              "project_id");
}

std::optional<core::Id> project_param(Exchange& ex) {
  auto id = core::parse_id(core::IdKind::project, ex.params[0]);
  if (!id) project_not_found(ex);
  return id;
}

void respond(Exchange& ex, const core::Project& p) {
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  write_project(w, p);
}

// {"name": "..."}: the one field a project's create and modify take.
bool read_name(Exchange& ex, std::string& name) {
  bool has_name = false;
  core::Error err;
  bool ok = JsonFields::each(ex.req.body, false, err, [&](std::string_view k, JsonValue& v) {
    if (k != "name") return (err = unknown_field(k), false);
    if (!read_string(v, k, name, err)) return false;
    has_name = true;
    return core::valid_name(name) ||
           (err = invalid_field("name", "must be 1 to 200 characters and not blank"), false);
  });
  if (ok && !has_name) ok = (err = missing_field("name"), false);
  if (!ok) write_error(ex, err);
  return ok;
}

void key_not_found(Exchange& ex) {
  write_error(ex, ErrorCode::not_found, "No API key with that id exists in this project.",
              "api_key_id");
}

// Key `{keyId}` if it lives in project `p` and is not revoked (revoking is OpenAI's delete);
// writes the 404 and returns null otherwise. Inside a ReadSection.
core::KeySlot* find_project_key(Exchange& ex, const core::Project& p) {
  auto id = core::parse_id(core::IdKind::api_key, ex.params[1]);
  core::KeySlot* s = id ? ex.app.index.find_key(*id) : nullptr;
  const core::ApiKey* k = s ? s->load() : nullptr;
  if (!k || k->organization_id != p.organization_id || k->project != p.number || k->revoked_ms) {
    key_not_found(ex);
    return nullptr;
  }
  return s;
}

int64_t seconds(uint64_t ms) {
  return static_cast<int64_t>(ms / 1000);
}

// organization.project.api_key. keygate's keys have no owner (a user or a service account
// in OpenAI's model): `owner` is empty, and `owner_project_access` says whether the
// project lets its keys in (active) or is archived (inactive).
void write_project_key(core::JsonWriter& w, const core::ApiKey& k, const core::Project& p,
                       uint64_t last_used_ms) {
  w.begin_object().field("object", "organization.project.api_key");
  write_id(w, "id", core::IdKind::api_key, k.id);
  w.field("name", std::string_view(k.name));
  const std::string_view preview(k.preview, 4);
  const std::string redacted = std::string(k.type == core::KeyType::secret ? "sk_" : "pk_") +
                               std::string(core::to_string(k.environment)) + "_\u2026" +
                               std::string(preview);
  w.field("redacted_value", std::string_view(redacted));
  w.field("created_at", seconds(k.created_ms));
  w.key("last_used_at");
  if (last_used_ms)
    w.number(seconds(last_used_ms));
  else
    w.null();
  w.key("expires_at");
  if (k.expires_ms)
    w.number(seconds(k.expires_ms));
  else
    w.null();
  w.key("owner").begin_object().end_object();
  w.field("owner_project_access", p.archived_ms ? "inactive" : "active");
  w.end_object();
}

}  // namespace

net::task<void> create_project(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::organizations_update);
  if (!org) co_return;
  core::CreateProject cmd{*org, {}};
  if (!read_name(ex, cmd.name)) co_return;
  auto out = co_await commit_or_reject(ex, std::move(cmd));
  if (!out) co_return;
  respond(ex, *out->project);  // the OpenAI API answers 200
}

void list_projects(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::organizations_read);
  if (!org) return;
  Page page;
  if (!read_page(ex, core::IdKind::project, 100, page)) return;
  bool include_archived = false;
  if (auto v = query_param(ex.req.query, "include_archived")) {
    if (*v == "true")
      include_archived = true;
    else if (*v != "false")
      return write_error(ex, ErrorCode::invalid_field, "'include_archived' must be true or false.",
                         "include_archived");
  }
  core::ReadSection rs;
  const core::ProjectSet* set = ex.app.index.find_org(*org)->project_set();
  std::vector<const core::Project*> items;  // in creation order, as OpenAI lists them
  if (set)
    for (const auto& p : set->items) items.push_back(p.get());
  size_t start = 0;
  if (page.after) {
    auto it = std::find_if(items.begin(), items.end(),
                           [&](const core::Project* p) { return p->id == *page.after; });
    if (it == items.end())
      return write_error(ex, ErrorCode::invalid_field,
                         "'after' does not name a project of this organization.", "after");
    start = static_cast<size_t>(it - items.begin()) + 1;
  }
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  w.begin_object().field("object", "list").key("data").begin_array();
  const core::Project* first = nullptr;
  const core::Project* last = nullptr;
  bool more = false;
  unsigned n = 0;
  for (size_t i = start; i < items.size(); ++i) {
    if (items[i]->archived_ms && !include_archived) continue;
    if (n == page.limit) {
      more = true;
      break;
    }
    write_project(w, *items[i]);
    if (!first) first = items[i];
    last = items[i];
    ++n;
  }
  w.end_array();
  write_id(w, "first_id", core::IdKind::project, first ? first->id : core::Id{});
  write_id(w, "last_id", core::IdKind::project, last ? last->id : core::Id{});
  w.field("has_more", more).end_object();
}

void get_project(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::organizations_read);
  if (!org) return;
  core::ReadSection rs;
  if (const core::Project* p = project_in_path(ex, *org)) respond(ex, *p);
}

net::task<void> update_project(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::organizations_update);
  if (!org) co_return;
  auto id = project_param(ex);
  if (!id) co_return;
  core::UpdateProject cmd{*org, *id, {}};
  if (!read_name(ex, cmd.name)) co_return;
  auto out = co_await commit_or_reject(ex, std::move(cmd));
  if (!out) co_return;
  respond(ex, *out->project);
}

net::task<void> archive_project(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::organizations_update);
  if (!org) co_return;
  auto id = project_param(ex);
  if (!id) co_return;
  auto out = co_await commit_or_reject(ex, core::ArchiveProject{*org, *id});
  if (!out) co_return;
  respond(ex, *out->project);
}

void list_project_keys(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::api_keys_read);
  if (!org) return;
  Page page;
  if (!read_page(ex, core::IdKind::api_key, 100, page)) return;
  std::optional<std::string_view> access = query_param(ex.req.query, "owner_project_access");
  if (access && *access != "active" && *access != "inactive" && *access != "any")
    return write_error(ex, ErrorCode::invalid_field,
                       "'owner_project_access' must be active, inactive or any.",
                       "owner_project_access");
  core::ReadSection rs;
  const core::Project* p = project_in_path(ex, *org);
  if (!p) return;
  core::KeySlot* s = ex.app.index.find_org(*org)->keys();
  // A key reclaimed since (--reclaim-keys-after) is a place in the list still: the walk
  // starts over and passes the keys up to it, within the scan bound.
  std::optional<core::Id> passed;
  if (page.after) {
    core::KeySlot* cur = ex.app.index.find_key(*page.after);
    // A key of the organization: a page cut short by the scan bound ends on whichever key
    // the walk reached last, in this project or not.
    if (cur && cur->load()->organization_id != *org)
      return write_error(ex, ErrorCode::invalid_field,
                         "'after' does not name a key of this organization.", "after");
    if (cur)
      s = cur->next();
    else
      passed = page.after;
  }
  // Every key of the project answers to the project's own access; `inactive` lists them
  // only when it is archived, `active` only when it is not.
  const bool shown =
      !access || *access == "any" || (*access == "inactive") == (p->archived_ms != 0);
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  w.begin_object().field("object", "list").key("data").begin_array();
  core::Id first, last;
  bool more = false;
  unsigned n = 0;
  size_t examined = 0;  // at most kMaxListScan keys a page, as the native list
  core::Id walked;      // the last key looked at: where a page cut short continues
  for (; s && shown; s = s->next()) {
    const core::ApiKey& k = *s->load();
    if (examined++ == kMaxListScan) {
      more = true;
      last = walked;
      break;
    }
    walked = k.id;
    if ((passed && !(*passed < k.id)) || k.project != p->number || k.revoked_ms) continue;
    if (n == page.limit) {
      more = true;
      break;
    }
    write_project_key(w, k, *p, s->last_used_ms());
    if (first.empty()) first = k.id;
    last = k.id;
    ++n;
  }
  w.end_array();
  write_id(w, "first_id", core::IdKind::api_key, first);
  write_id(w, "last_id", core::IdKind::api_key, last);
  w.field("has_more", more).end_object();
}

void get_project_key(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::api_keys_read);
  if (!org) return;
  core::ReadSection rs;
  const core::Project* p = project_in_path(ex, *org);
  core::KeySlot* s = p ? find_project_key(ex, *p) : nullptr;
  if (!s) return;
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  write_project_key(w, *s->load(), *p, s->last_used_ms());
}

// OpenAI's delete: keygate revokes the key (it stays listed, revoked, in the native API).
net::task<void> delete_project_key(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::api_keys_manage);
  if (!org) co_return;
  core::Id key;
  {
    core::ReadSection rs;
    const core::Project* p = project_in_path(ex, *org);
    core::KeySlot* s = p ? find_project_key(ex, *p) : nullptr;
    if (!s) co_return;
    key = s->load()->id;
  }
  auto out = co_await commit_or_reject(ex, core::RevokeApiKey{*org, key});
  if (!out) co_return;
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  w.begin_object().field("object", "organization.project.api_key.deleted");
  write_id(w, "id", core::IdKind::api_key, key);
  w.field("deleted", true).end_object();
}

}  // namespace keygate::handlers
