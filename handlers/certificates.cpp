// Certificates (docs/api.md §6), wire-compatible with the OpenAI Admin API: the objects
// `certificate`, `organization.certificate`, `certificate.deleted` and `list` exactly as its
// SDKs parse them; times in Unix seconds; the organization is the key's own, or for the
// root key the one named by the OpenAI-Organization header.
#include <algorithm>

#include "core/clock.hpp"
#include "core/validation.hpp"
#include "core/x509.hpp"
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

// `certificate`, `organization.certificate` (listed: with `active` for the organization),
// `organization.project.certificate` (in_project: with `active` for that project), or
// `certificate` with its PEM.
enum class Shape { certificate, listed, in_project, with_content };

void write_certificate(core::JsonWriter& w, const core::Certificate& c, Shape shape,
                       uint16_t project = 0) {
  w.begin_object();
  w.field("object", shape == Shape::listed       ? "organization.certificate"
                    : shape == Shape::in_project ? "organization.project.certificate"
                                                 : "certificate");
  write_id(w, "id", core::IdKind::certificate, c.id);
  w.key("name");
  if (c.name)
    w.string(*c.name);
  else
    w.null();
  w.field("created_at", static_cast<int64_t>(c.created_ms / 1000));
  if (shape == Shape::listed) w.field("active", c.active);
  if (shape == Shape::in_project) w.field("active", c.active_in(project));
  w.key("certificate_details").begin_object();
  w.field("valid_at", c.valid_at).field("expires_at", c.expires_at);
  if (shape == Shape::with_content) w.field("content", std::string_view(c.pem));
  w.end_object().end_object();
}

void respond(Exchange& ex, uint16_t status, const core::Certificate& c, Shape shape) {
  ex.res.status = status;
  core::JsonWriter w(ex.res.body);
  write_certificate(w, c, shape);
}

std::optional<core::Id> certificate_param(Exchange& ex) {
  auto id = core::parse_id(core::IdKind::certificate, ex.params[0]);
  if (!id)
    write_error(ex, ErrorCode::not_found,
                "No certificate with that id exists in this organization.", "certificate_id");
  return id;
}

bool wants_content(std::string_view query) {
  for (std::string_view name : {"include[]", "include%5B%5D", "include%5b%5d", "include"}) {
    std::string_view q = query;
    while (auto v = query_param(q, name)) {
      if (*v == "content") return true;
      const size_t at = q.find(std::string(name) + "=");
      q.remove_prefix(at + name.size() + 1);
    }
  }
  return false;
}

// The organization's certificates, with `active` for the organization or (project > 0) for
// that project.
void list(Exchange& ex, core::Id org, uint16_t project) {
  Page page;
  if (!read_page(ex, core::IdKind::certificate, 100, page)) return;
  bool desc = true;
  if (auto v = query_param(ex.req.query, "order")) {
    if (*v == "asc")
      desc = false;
    else if (*v != "desc")
      return write_error(ex, ErrorCode::invalid_field, "'order' must be asc or desc.", "order");
  }
  core::ReadSection rs;
  const core::CertificateSet* set = ex.app.index.find_org(org)->certs();
  std::vector<const core::Certificate*> items;
  if (set)
    for (const auto& c : set->items) items.push_back(c.get());
  // Ids sort as creation times do: created_at order, ties broken by id.
  if (desc) std::reverse(items.begin(), items.end());
  size_t start = 0;
  if (page.after) {
    auto it = std::find_if(items.begin(), items.end(),
                           [&](const core::Certificate* c) { return c->id == *page.after; });
    if (it == items.end())
      return write_error(ex, ErrorCode::invalid_field,
                         "'after' does not name a certificate of this organization.", "after");
    start = static_cast<size_t>(it - items.begin()) + 1;
  }
  const size_t end = std::min(items.size(), start + page.limit);
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  w.begin_object().field("object", "list").key("data").begin_array();
  for (size_t i = start; i < end; ++i)
    write_certificate(w, *items[i], project ? Shape::in_project : Shape::listed, project);
  w.end_array();
  if (start < end) {
    write_id(w, "first_id", core::IdKind::certificate, items[start]->id);
    write_id(w, "last_id", core::IdKind::certificate, items[end - 1]->id);
  } else {
    w.key("first_id").null().key("last_id").null();
  }
  w.field("has_more", end < items.size()).end_object();
}

}  // namespace

net::task<void> create_certificate(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::certificates_manage);
  if (!org) co_return;
  core::CreateCertificate cmd;
  cmd.org = *org;
  bool has_pem = false;
  core::Error err;
  bool ok = JsonFields::each(ex.req.body, false, err, [&](std::string_view k, JsonValue& v) {
    if (k == "certificate") return (has_pem = true) && read_string(v, k, cmd.pem, err);
    if (k == "name") {
      bool null = false;
      if (read_is_null(v, null) && null) return true;
      std::string name;
      if (!read_string(v, k, name, err)) return false;
      if (!core::valid_certificate_name(name))
        return (err = invalid_field("name", "must be at most 200 characters"), false);
      cmd.name = std::move(name);
      return true;
    }
    err = unknown_field(k);
    return false;
  });
  if (ok && !has_pem) ok = (err = missing_field("certificate"), false);
  if (ok) {
    core::ParsedCertificate parsed;
    std::string why;
    if (!core::parse_certificate_pem(cmd.pem, parsed, why)) {
      ok = false;
      err = core::make_error(ErrorCode::invalid_certificate, why, "certificate");
    } else {
      cmd.fingerprint = parsed.fingerprint;
      cmd.valid_at = parsed.valid_at;
      cmd.expires_at = parsed.expires_at;
    }
  }
  if (!ok) {
    write_error(ex, err);
    co_return;
  }
  auto out = co_await commit_or_reject(ex, std::move(cmd));
  if (!out) co_return;
  respond(ex, 200, out->certificates[0], Shape::with_content);  // the OpenAI API answers 200
}

void get_certificate(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::certificates_read);
  if (!org) return;
  auto id = certificate_param(ex);
  if (!id) return;
  core::ReadSection rs;
  const core::CertificateSet* set = ex.app.index.find_org(*org)->certs();
  const core::Certificate* c = set ? set->find(*id) : nullptr;
  if (!c)
    return write_error(ex, ErrorCode::not_found,
                       "No certificate with that id exists in this organization.",
                       "certificate_id");
  respond(ex, 200, *c, wants_content(ex.req.query) ? Shape::with_content : Shape::certificate);
}

net::task<void> update_certificate(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::certificates_manage);
  if (!org) co_return;
  auto id = certificate_param(ex);
  if (!id) co_return;
  core::UpdateCertificate cmd{*org, *id};
  core::Error err;
  const bool ok = JsonFields::each(ex.req.body, false, err, [&](std::string_view k, JsonValue& v) {
    if (k != "name") return (err = unknown_field(k), false);
    std::string name;
    if (!read_string(v, k, name, err)) return false;
    if (!core::valid_certificate_name(name))
      return (err = invalid_field("name", "must be at most 200 characters"), false);
    cmd.name = std::move(name);
    return true;
  });
  if (!ok) {
    write_error(ex, err);
    co_return;
  }
  auto out = co_await commit_or_reject(ex, std::move(cmd));
  if (!out) co_return;
  respond(ex, 200, out->certificates[0], Shape::certificate);
}

net::task<void> delete_certificate(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::certificates_manage);
  if (!org) co_return;
  auto id = certificate_param(ex);
  if (!id) co_return;
  auto out = co_await commit_or_reject(ex, core::DeleteCertificate{*org, *id});
  if (!out) co_return;
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  w.begin_object();
  write_id(w, "id", core::IdKind::certificate, *id);
  w.field("object", "certificate.deleted").end_object();
}

namespace {

net::task<void> set_active(Exchange& ex, bool active, bool in_project) {
  auto org = openai_organization(ex, core::Scope::certificates_manage);
  if (!org) co_return;
  core::SetCertificatesActive cmd{*org, {}, active};
  uint16_t project = 0;
  if (in_project) {
    core::ReadSection rs;
    const core::Project* p = project_in_path(ex, *org);
    if (!p) co_return;
    project = p->number;
    cmd.project = p->id;
  }
  bool has_ids = false;
  core::Error err;
  bool ok = JsonFields::each(ex.req.body, false, err, [&](std::string_view k, JsonValue& v) {
    if (k != "certificate_ids") return (err = unknown_field(k), false);
    has_ids = true;
    std::vector<std::string> ids;
    if (!read_strings(v, k, ids, err)) return false;
    if (ids.empty() || ids.size() > 10)
      return (err = invalid_field(k, "must hold 1 to 10 certificate ids"), false);
    for (const auto& s : ids) {
      auto id = core::parse_id(core::IdKind::certificate, s);
      if (!id) {
        err = core::make_error(
            ErrorCode::not_found,
            "No certificate " + s + " exists in this organization: nothing was changed.",
            "certificate_ids");
        return false;
      }
      cmd.certificates.push_back(*id);
    }
    return true;
  });
  if (ok && !has_ids) ok = (err = missing_field("certificate_ids"), false);
  if (!ok) {
    write_error(ex, err);
    co_return;
  }
  auto out = co_await commit_or_reject(ex, std::move(cmd));
  if (!out) co_return;
  ex.res.status = 200;
  core::JsonWriter w(ex.res.body);
  w.begin_object().field("object", "list").key("data").begin_array();
  for (const auto& c : out->certificates)
    write_certificate(w, c, in_project ? Shape::in_project : Shape::listed, project);
  w.end_array().end_object();
}

}  // namespace

net::task<void> activate_certificates(Exchange& ex) {
  return set_active(ex, true, false);
}
net::task<void> deactivate_certificates(Exchange& ex) {
  return set_active(ex, false, false);
}

void list_certificates(Exchange& ex) {
  if (auto org = openai_organization(ex, core::Scope::certificates_read)) list(ex, *org, 0);
}

void list_project_certificates(Exchange& ex) {
  auto org = openai_organization(ex, core::Scope::certificates_read);
  if (!org) return;
  uint16_t project = 0;
  {
    core::ReadSection rs;
    const core::Project* p = project_in_path(ex, *org);
    if (!p) return;
    project = p->number;
  }
  list(ex, *org, project);
}
net::task<void> activate_project_certificates(Exchange& ex) {
  return set_active(ex, true, true);
}
net::task<void> deactivate_project_certificates(Exchange& ex) {
  return set_active(ex, false, true);
}

}  // namespace keygate::handlers
