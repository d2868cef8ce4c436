// Projects (docs/api.md §7), wire-compatible with the OpenAI Admin API: the object
// `organization.project` and `list` as its SDKs parse them, times in Unix seconds, the
// organization resolved as for certificates (openai_organization). Reading needs
// organizations:read, changing organizations:update: a project is part of how an
// organization is set up, as its name and slug are.
#include <algorithm>
#include <charconv>

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
  unsigned limit = 20;
  if (auto v = query_param(ex.req.query, "limit")) {
    unsigned n = 0;
    auto r = std::from_chars(v->data(), v->data() + v->size(), n);
    if (r.ec != std::errc{} || r.ptr != v->data() + v->size() || n < 1 || n > 100)
      return write_error(ex, ErrorCode::invalid_field,
                         "'limit' must be a whole number from 1 to 100.", "limit");
    limit = n;
  }
  bool include_archived = false;
  if (auto v = query_param(ex.req.query, "include_archived")) {
    if (*v == "true")
      include_archived = true;
    else if (*v != "false")
      return write_error(ex, ErrorCode::invalid_field, "'include_archived' must be true or false.",
                         "include_archived");
  }
  std::optional<core::Id> after;
  if (auto v = query_param(ex.req.query, "after")) {
    after = core::parse_id(core::IdKind::project, *v);
    if (!after)
      return write_error(ex, ErrorCode::invalid_field, "'after' must be a project id (proj_...).",
                         "after");
  }
  core::ReadSection rs;
  const core::ProjectSet* set = ex.app.index.find_org(*org)->project_set();
  std::vector<const core::Project*> items;  // in creation order, as OpenAI lists them
  if (set)
    for (const auto& p : set->items) items.push_back(p.get());
  size_t start = 0;
  if (after) {
    auto it = std::find_if(items.begin(), items.end(),
                           [&](const core::Project* p) { return p->id == *after; });
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
    if (n == limit) {
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
  auto id = project_param(ex);
  if (!id) return;
  core::ReadSection rs;
  const core::ProjectSet* set = ex.app.index.find_org(*org)->project_set();
  const core::Project* p = set ? set->find(*id) : nullptr;
  if (!p) return project_not_found(ex);
  respond(ex, *p);
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

}  // namespace keygate::handlers
