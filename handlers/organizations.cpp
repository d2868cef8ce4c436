// Organizations (docs/api.md §3).
#include "core/clock.hpp"
#include "core/validation.hpp"
#include "handlers/auth.hpp"
#include "handlers/commit.hpp"
#include "handlers/errors.hpp"
#include "handlers/families.hpp"
#include "handlers/json_input.hpp"
#include "handlers/query.hpp"
#include "handlers/render.hpp"
#include "handlers/signup_limit.hpp"

namespace keygate::handlers {

using core::ErrorCode;

namespace {

bool check_name(std::string_view name, core::Error& err) {
  if (!core::valid_name(name)) {
    err = invalid_field("name", "must be 1 to 200 characters and not blank");
    return false;
  }
  return true;
}

bool check_slug(std::string_view slug, core::Error& err) {
  if (!core::valid_slug(slug)) {
    err = invalid_field("slug", "must be 1 to 64 characters of lowercase letters, digits and '-'");
    return false;
  }
  return true;
}

}  // namespace

net::task<void> create_organization(Exchange& ex) {
  // The router authenticated the request if it carried a credential (Auth::when_sent).
  if (ex.principal.authenticated) {
    if (!authorize(ex, core::Scope::organizations_create, true)) co_return;
  } else if (!ex.app.config.open_signup) {
    write_error(ex, ErrorCode::missing_api_key,
                "No API key was sent: pass one with the scope organizations:create as "
                "'Authorization: Bearer <key>' (this server does not allow open sign-up).");
    co_return;
  } else if (ex.app.signups) {
    const core::RateDecision d = ex.app.signups->take(ex.req.peer_address(), ex.started_ns);
    if (!d.allowed) {
      write_rate_headers(ex.res, d);
      write_error(ex, ErrorCode::rate_limited,
                  "Too many sign-ups from this address: retry after the time in Retry-After.");
      co_return;
    }
  }
  core::CreateOrganization cmd;
  bool has_name = false, has_slug = false;
  core::Error err;
  bool ok = JsonFields::each(ex.req.body, false, err, [&](std::string_view k, JsonValue& v) {
    if (k == "name")
      return (has_name = true) && read_string(v, k, cmd.name, err) && check_name(cmd.name, err);
    if (k == "slug")
      return (has_slug = true) && read_string(v, k, cmd.slug, err) && check_slug(cmd.slug, err);
    err = unknown_field(k);
    return false;
  });
  if (ok && !has_name) ok = (err = missing_field("name"), false);
  if (ok && !has_slug) {
    cmd.slug = core::derive_slug(cmd.name);
    if (cmd.slug.empty())
      ok = (err = invalid_field("slug", "is required: no slug can be derived from this name"),
            false);
  }
  if (!ok) {
    write_error(ex, err);
    co_return;
  }
  auto out = co_await commit_or_reject(ex, std::move(cmd));
  if (!out) co_return;
  const uint64_t now = core::now_ms();
  write_envelope(ex, 201, [&](core::JsonWriter& w) {
    // The organization with its first secret key, revealed this once (seed 000).
    w.begin_object();
    write_id(w, "id", core::IdKind::organization, out->org->id);
    w.field("object", "organization").field("name", std::string_view(out->org->name));
    w.field("slug", std::string_view(out->org->slug))
        .field("status", core::to_string(out->org->status));
    write_time(w, "created_at", out->org->created_ms);
    write_time(w, "updated_at", out->org->updated_ms);
    w.key("api_key");
    core::ReadSection rs;
    write_api_key(w, ex.app.index, *out->key, 0, ex.app.config.rate_defaults, now,
                  out->revealed_key);
    w.end_object();
  });
}

void list_organizations(Exchange& ex) {
  if (!ex.principal.root && ex.principal.type == core::KeyType::publishable) {
    authorize(ex, core::Scope::organizations_read);  // writes the publishable-key 403
    return;
  }
  Page page;
  if (!read_page(ex, core::IdKind::organization, 200, page)) return;
  core::ReadSection rs;
  core::Index& index = ex.app.index;
  core::OrgSlot* start;
  if (!ex.principal.root) {
    core::OrgSlot* own = index.find_org(ex.principal.organization);
    start = (!page.after || *page.after < own->id) ? own : nullptr;
  } else if (page.after) {
    core::OrgSlot* cur = index.find_org(*page.after);
    if (!cur) {
      write_error(ex, ErrorCode::invalid_field, "'cursor' does not name an organization.",
                  "cursor");
      return;
    }
    start = cur->next();
  } else {
    start = index.first_org();
  }
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  w.begin_object().key("data").begin_array();
  unsigned n = 0;
  core::OrgSlot* s = start;
  core::Id last;
  for (; s && n < page.limit; s = ex.principal.root ? s->next() : nullptr, ++n) {
    write_organization(w, *s->load());
    last = s->id;
  }
  const bool more = ex.principal.root && s != nullptr;
  w.end_array().key("pagination").begin_object().field("limit", page.limit).field("has_more", more);
  if (more)
    write_id(w, "next_cursor", core::IdKind::organization, last);
  else
    w.key("next_cursor").null();
  w.end_object()
      .key("meta")
      .begin_object()
      .field("request_id", ex.request_id_view())
      .end_object()
      .end_object();
}

void get_organization(Exchange& ex) {
  if (!authorize(ex, core::Scope::organizations_read, true)) return;
  auto id = organization_in_path(ex);
  if (!id || !can_access(ex, *id)) return;
  core::ReadSection rs;
  const core::Organization& o = *ex.app.index.find_org(*id)->load();
  write_envelope(ex, 200, [&](core::JsonWriter& w) { write_organization(w, o); });
}

net::task<void> update_organization(Exchange& ex) {
  if (!authorize(ex, core::Scope::organizations_update, true)) co_return;
  auto id = organization_in_path(ex);
  if (!id || !can_access(ex, *id)) co_return;
  core::UpdateOrganization cmd;
  cmd.org = *id;
  core::Error err;
  const bool ok = JsonFields::each(ex.req.body, false, err, [&](std::string_view k, JsonValue& v) {
    std::string s;
    if (k == "name") return read_string(v, k, s, err) && check_name(s, err) && (cmd.name = s, true);
    if (k == "slug") return read_string(v, k, s, err) && check_slug(s, err) && (cmd.slug = s, true);
    if (k == "status") {
      if (!read_string(v, k, s, err)) return false;
      if (s == "active")
        cmd.status = core::OrgStatus::active;
      else if (s == "suspended")
        cmd.status = core::OrgStatus::suspended;
      else
        return (err = invalid_field("status", "must be 'active' or 'suspended'"), false);
      return true;
    }
    if (k == "id" || k == "created_at" || k == "updated_at" || k == "object") {
      err = core::make_error(ErrorCode::immutable_field,
                             "'" + std::string(k) + "' cannot be changed.", std::string(k));
      return false;
    }
    err = unknown_field(k);
    return false;
  });
  if (!ok) {
    write_error(ex, err);
    co_return;
  }
  auto out = co_await commit_or_reject(ex, std::move(cmd));
  if (!out) co_return;
  write_envelope(ex, 200, [&](core::JsonWriter& w) { write_organization(w, *out->org); });
}

}  // namespace keygate::handlers
