// The audit log (docs/api.md §8): OpenAI's `GET /v1/organization/audit_logs`, objects
// `organization.audit_log` in a `list` with first_id/last_id/has_more as its SDK pages them,
// and the native `GET /v1/organizations/{id}/audit-events` in the native envelope. Both read
// core::AuditLog; both take the same filters.
#include "core/audit.hpp"

#include <charconv>

#include "core/log.hpp"
#include "handlers/auth.hpp"
#include "handlers/errors.hpp"
#include "handlers/families.hpp"
#include "handlers/query.hpp"
#include "handlers/render.hpp"

namespace keygate::handlers {

using core::ErrorCode;

namespace {

constexpr unsigned kMaxLimit = 100;
constexpr size_t kMaxFilterValues = 100;

// A resource id of any kind keygate's events name.
std::optional<core::Id> parse_any_id(std::string_view text) {
  for (auto kind : {core::IdKind::api_key, core::IdKind::certificate, core::IdKind::project,
                    core::IdKind::organization})
    if (auto id = core::parse_id(kind, text)) return id;
  return std::nullopt;
}

bool event_type_name(std::string_view v) {
  if (v.empty() || v.size() > 80) return false;
  for (char c : v)
    if (!((c >= 'a' && c <= 'z') || c == '_' || c == '.')) return false;
  return true;
}

bool read_seconds(std::string_view v, int64_t& out) {
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && end == v.data() + v.size() && !v.empty();
}

// The filters and paging of both lists, from a query string whose arrays come as
// `name[]=a&name[]=b` (the SDK's qs "brackets" format, brackets percent-encoded or not) or
// `name=a,b`. Unknown parameters are ignored, as OpenAI does. Writes the 400 and returns
// false on a malformed value. `nothing` is set when a filter can match no event keygate
// records (an OpenAI event type keygate never emits, an actor e-mail): the page is empty.
bool read_query(Exchange& ex, core::AuditQuery& q, bool& nothing) {
  std::string_view rest = ex.req.query;
  bool unknown_types_only = false, types_seen = false;
  auto bad = [&](const std::string& param, const std::string& why) {
    write_error(ex, ErrorCode::invalid_field, "'" + param + "' " + why, param);
    return false;
  };
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const size_t eq = pair.find('=');
    std::string raw_name(pair.substr(0, eq)), raw_value;
    if (eq != std::string_view::npos) raw_value = pair.substr(eq + 1);
    char name_buf[128], value_buf[1024];
    for (char& c : raw_value)
      if (c == '+') c = ' ';
    const size_t nl = percent_decode(raw_name, name_buf, sizeof name_buf);
    const size_t vl = percent_decode(raw_value, value_buf, sizeof value_buf);
    if (nl == SIZE_MAX) continue;  // no parameter of ours is that long
    std::string_view name(name_buf, nl);
    if (vl == SIZE_MAX) return bad(std::string(name), "is too long or badly percent-encoded.");
    const std::string_view value(value_buf, vl);
    if (name.ends_with("[]")) name.remove_suffix(2);

    if (name == "limit") {
      unsigned limit = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), limit);
      if (ec != std::errc() || end != value.data() + value.size() || limit < 1 || limit > kMaxLimit)
        return bad("limit", "must be a whole number from 1 to 100.");
      q.limit = limit;
    } else if (name == "after" || name == "cursor" || name == "before") {
      auto id = core::parse_id(core::IdKind::audit_event, value);
      if (!id)
        return bad(std::string(name), "must be an event id from a previous page (audit_...).");
      (name == "before" ? q.before : q.after) = *id;
    } else if (name.starts_with("effective_at[") && name.ends_with("]")) {
      const std::string_view op = name.substr(13, name.size() - 14);
      int64_t s = 0;
      if (!read_seconds(value, s) || s < 0)
        return bad(std::string(name), "must be a Unix time in seconds.");
      if (op == "gt")
        q.from_s = std::max(q.from_s, s + 1);
      else if (op == "gte")
        q.from_s = std::max(q.from_s, s);
      else if (op == "lt")
        q.to_s = std::min(q.to_s, s - 1);
      else if (op == "lte")
        q.to_s = std::min(q.to_s, s);
      else
        return bad(std::string(name),
                   "is not a filter: use effective_at[gt], [gte], [lt] or [lte].");
    } else if (name == "event_types" || name == "project_ids" || name == "actor_ids" ||
               name == "resource_ids" || name == "actor_emails") {
      std::string_view list = value;
      while (!list.empty()) {  // a,b,c as well as repeated parameters
        const size_t comma = list.find(',');
        const std::string_view v = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        if (v.empty()) continue;
        const size_t count =
            q.types.size() + q.projects.size() + q.actors.size() + q.resources.size();
        if (count >= kMaxFilterValues)
          return bad(std::string(name), "takes at most 100 values across all filters.");
        if (name == "event_types") {
          if (!event_type_name(v))
            return bad("event_types", "must hold event types such as api_key.created.");
          types_seen = true;
          if (auto t = core::parse_audit_type(v)) q.types.push_back(*t);
        } else if (name == "project_ids") {
          auto id = core::parse_id(core::IdKind::project, v);
          if (!id) return bad("project_ids", "must hold project ids (proj_...).");
          q.projects.push_back(*id);
        } else if (name == "actor_ids") {
          if (v != "root" && v != "signup" && !core::parse_id(core::IdKind::api_key, v))
            return bad("actor_ids", "must hold API key ids (key_...), root or signup.");
          q.actors.emplace_back(v);
        } else if (name == "resource_ids") {
          auto id = parse_any_id(v);
          if (!id)
            return bad("resource_ids",
                       "must hold ids of keys, certificates, projects or organizations.");
          q.resources.push_back(*id);
        } else {
          nothing = true;  // keygate's actors are keys: none has an e-mail address
        }
      }
    }
  }
  if (q.after && q.before) return bad("before", "cannot be combined with 'after': page one way.");
  unknown_types_only = types_seen && q.types.empty();
  if (unknown_types_only || q.from_s > q.to_s) nothing = true;
  return true;
}

void write_openai_actor(core::JsonWriter& w, const core::Actor& a) {
  const std::string id = core::actor_id(a);
  w.key("actor").begin_object().field("type", "api_key");
  w.key("api_key")
      .begin_object()
      .field("id", std::string_view(id))
      .field("type", "service_account");
  w.key("service_account").begin_object().field("id", std::string_view(id)).end_object();
  w.end_object().end_object();
}

// Inside a ReadSection: the project's current name is read from the index.
void write_openai_event(core::JsonWriter& w, const core::OrgSlot& org, const core::AuditEvent& e) {
  w.begin_object();
  write_id(w, "id", core::IdKind::audit_event, e.id);
  w.field("object", "organization.audit_log");
  w.field("type", core::to_string(e.type));
  w.field("effective_at", e.effective_at());
  write_openai_actor(w, e.actor);
  if (!e.project_id.empty()) {
    w.key("project").begin_object();
    write_id(w, "id", core::IdKind::project, e.project_id);
    const core::ProjectSet* set = org.project_set();
    const core::Project* p = set ? set->find(e.project_id) : nullptr;
    w.key("name");
    p ? w.string(p->name) : w.null();
    w.end_object();
  }
  w.key(core::to_string(e.type)).raw(e.payload);
  w.end_object();
}

void write_native_event(core::JsonWriter& w, const core::AuditEvent& e) {
  w.begin_object();
  write_id(w, "id", core::IdKind::audit_event, e.id);
  w.field("type", core::to_string(e.type));
  write_time(w, "effective_at", e.id.millis());
  w.key("actor").begin_object();
  w.field("type", e.actor.kind == core::ActorKind::api_key  ? "api_key"
                  : e.actor.kind == core::ActorKind::signup ? "signup"
                                                            : "root");
  write_id(w, "id", core::IdKind::api_key, e.actor.key);
  w.end_object();
  write_id(w, "project_id", core::IdKind::project, e.project_id);
  w.key("resource_ids").begin_array();
  for (const core::Id& r : e.resources) {
    // The kind of each resource follows from the event's type.
    const auto kind = e.type <= core::AuditType::organization_updated ? core::IdKind::organization
                      : e.type <= core::AuditType::api_key_deleted    ? core::IdKind::api_key
                      : e.type <= core::AuditType::certificates_deactivated
                          ? core::IdKind::certificate
                          : core::IdKind::project;
    w.string(core::to_string(kind, r));
  }
  w.end_array();
  w.key("details").raw(e.payload);
  w.end_object();
}

// The page `q` asks for; false, with a 503 written, when the events kept on disk cannot be
// read (a damaged snapshot: core::AuditDisk::read).
bool read_page(Exchange& ex, core::Id org, const core::AuditQuery& q, bool nothing,
               core::AuditPage& page) {
  if (nothing) return true;
  try {
    page = ex.app.index.audit().page(org, q);
    return true;
  } catch (const std::runtime_error& e) {
    core::log(core::Level::error, "audit.unreadable", {{"error", e.what()}});
    write_error(ex, ErrorCode::storage_unavailable,
                "The audit events kept on disk cannot be read; the server's log says why.");
    return false;
  }
}

}  // namespace

void list_audit_logs(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::organizations_read);
  if (!org) return;
  core::AuditQuery q;
  bool nothing = false;
  if (!read_query(ex, q, nothing)) return;
  core::AuditPage page;
  if (!read_page(ex, *org, q, nothing, page)) return;
  core::ReadSection rs;
  const core::OrgSlot* o = ex.app.index.find_org(*org);
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  w.begin_object().field("object", "list").key("data").begin_array();
  for (const core::AuditEvent& e : page.events) write_openai_event(w, *o, e);
  w.end_array();
  // A walk stopped by the scan bound continues from where it stopped: the cursor of the
  // direction asked (last_id going back, first_id with `before`) names that event.
  std::optional<core::Id> first, last;
  if (!page.events.empty()) first = page.events.front().id, last = page.events.back().id;
  if (page.resume) (q.before ? first : last) = page.resume;
  for (auto [name, id] : {std::pair{"first_id", first}, std::pair{"last_id", last}}) {
    if (id)
      write_id(w, name, core::IdKind::audit_event, *id);
    else
      w.key(name).null();
  }
  w.field("has_more", page.has_more).end_object();
}

void list_audit_events(Exchange& ex) {
  if (!authorize(ex, core::Scope::organizations_read)) return;
  auto org = organization_in_path(ex);
  if (!org || !can_access(ex, *org)) return;
  core::AuditQuery q;
  bool nothing = false;
  if (!read_query(ex, q, nothing)) return;
  core::AuditPage page;
  if (!read_page(ex, *org, q, nothing, page)) return;
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  w.begin_object().key("data").begin_array();
  for (const core::AuditEvent& e : page.events) write_native_event(w, e);
  w.end_array().key("pagination").begin_object().field("limit", static_cast<uint64_t>(q.limit));
  w.field("has_more", page.has_more);
  // Forward (the default): the next page is after the last event; with `before`, the
  // page before this one is before its first.
  // A walk stopped by the scan bound continues from where it stopped.
  if (page.has_more && page.resume)
    write_id(w, q.before ? "prev_cursor" : "next_cursor", core::IdKind::audit_event, *page.resume);
  else if (page.has_more && !page.events.empty())
    write_id(w, q.before ? "prev_cursor" : "next_cursor", core::IdKind::audit_event,
             q.before ? page.events.front().id : page.events.back().id);
  else
    w.key(q.before ? "prev_cursor" : "next_cursor").null();
  w.end_object();
  w.key("meta").begin_object().field("request_id", ex.request_id_view()).end_object().end_object();
}

}  // namespace keygate::handlers
