#include "core/state_machine.hpp"

#include <algorithm>

#include "core/json_writer.hpp"

namespace keygate::core {

namespace {

Outcome fail(ErrorCode code, std::string message, std::string param = {}) {
  Outcome o;
  o.error = make_error(code, std::move(message), std::move(param));
  return o;
}

Outcome project_not_found() {
  return fail(ErrorCode::not_found, "No project with that id exists in this organization.",
              "project_id");
}

Outcome key_not_found() {
  return fail(ErrorCode::not_found, "No API key with that id exists in this organization.",
              "key_id");
}

void write_scopes(JsonWriter& w, ScopeSet scopes) {
  w.key("scopes");
  write_scope_array(w, scopes);
}

Outcome fail(Error e) {
  Outcome o;
  o.error = std::move(e);
  return o;
}

// The payloads of the audit events, in OpenAI's shapes (docs/api.md §8): never a secret.
std::string key_created(const ApiKey& k) {
  std::string out;
  JsonWriter w(out);
  w.begin_object().field("id", std::string_view(to_string(IdKind::api_key, k.id)));
  w.key("data").begin_object();
  write_scopes(w, k.scopes);
  w.field("name", std::string_view(k.name))
      .field("type", to_string(k.type))
      .field("environment", to_string(k.environment));
  if (!k.rotated_from().empty())
    w.field("rotated_from", std::string_view(to_string(IdKind::api_key, k.rotated_from())));
  w.end_object().end_object();
  return out;
}

std::string just_id(IdKind kind, Id id) {
  std::string out;
  JsonWriter(out).begin_object().field("id", std::string_view(to_string(kind, id))).end_object();
  return out;
}

std::string certificate_payload(const Certificate& c) {
  std::string out;
  JsonWriter w(out);
  w.begin_object().field("id", std::string_view(to_string(IdKind::certificate, c.id)));
  w.key("name");
  c.name ? w.string(*c.name) : w.null();
  w.end_object();
  return out;
}

}  // namespace

StateMachine::StateMachine(Index& index) : index_(index) {}

void StateMachine::audit(AuditType type, Id org, Id project, std::vector<Id> resources,
                         std::string payload) {
  if (!auditing_) return;
  auto e = std::make_shared<AuditEvent>();
  e->id = ids_.next(now_ms_);
  e->organization_id = org;
  e->project_id = project;
  e->resources = std::move(resources);
  e->type = type;
  e->actor = actor_ ? *actor_ : Actor{};
  e->payload = std::move(payload);
  Staged st;
  st.event = std::move(e);
  staged_.push_back(std::move(st));
}

Id StateMachine::project_id(const ApiKey& k) const {
  if (!k.project) return {};
  const auto ps = projects(k.organization_id);
  return k.project <= ps.size() && ps[k.project - 1] ? ps[k.project - 1]->id : Id{};
}

const Organization* StateMachine::org(Id id) const {
  if (auto it = staged_orgs_.find(id); it != staged_orgs_.end())
    return staged_[it->second].org.get();
  OrgSlot* s = index_.find_org(id);
  return s ? s->load() : nullptr;
}

const ApiKey* StateMachine::key(Id org_id, Id key_id, KeyHash& hash) const {
  const ApiKey* k = nullptr;
  if (auto it = staged_keys_.find(key_id); it != staged_keys_.end()) {
    k = staged_[it->second].key.get();
    hash = staged_[it->second].key_hash;
  } else if (KeySlot* s = index_.find_key(key_id)) {
    k = s->load();
    hash = s->hash;
  }
  // Another organization's key does not exist, as far as this caller can tell.
  return k && k->organization_id == org_id ? k : nullptr;
}

ApiKey& StateMachine::stage(std::unique_ptr<ApiKey> k, const KeyHash& hash) {
  ApiKey& ref = *k;
  const auto [at, first] = staged_keys_.try_emplace(k->id, staged_.size());
  if (!first)
    at->second = staged_.size();
  else if (!index_.find_key(k->id))
    ++staged_new_keys_[k->organization_id];
  staged_.push_back({nullptr, std::move(k), hash, nullptr});
  return ref;
}

Organization& StateMachine::stage(std::unique_ptr<Organization> o) {
  Organization& ref = *o;
  staged_orgs_[o->id] = staged_.size();
  staged_.push_back({std::move(o), nullptr, {}, nullptr});
  return ref;
}

Outcome StateMachine::execute(const Command& command, uint64_t now_ms, const Actor& actor,
                              ScopeSet authority) {
  ReadSection rs;  // the writer reads the published index like any reader
  actor_ = &actor;
  authority_ = authority;
  now_ms_ = now_ms;
  Outcome out = std::visit([&](const auto& c) { return run(c, now_ms); }, command);
  actor_ = nullptr;
  authority_ = kEveryScope;
  return out;
}

// Checked here, by the writer, against the key as this batch sees it: a key narrowed (or
// the target widened) a moment before cannot slip past a check made earlier by a handler.
Error StateMachine::no_room_for_key(Id org_id) const {
  const OrgSlot* slot = index_.find_org(org_id);
  size_t keys = slot ? slot->key_count.load(std::memory_order_relaxed) : 0;
  if (const auto it = staged_new_keys_.find(org_id); it != staged_new_keys_.end())
    keys += it->second;  // this batch's new keys in the organization
  if (keys < max_keys_per_org_) return {};
  return make_error(ErrorCode::key_limit_reached,
                    "This organization holds " + std::to_string(keys) +
                        " API keys, the most this server allows (--max-keys-per-org): revoked "
                        "and expired keys count too. Ask the operator to raise the limit.",
                    "organization_id");
}

Error StateMachine::beyond_authority(ScopeSet scopes, std::string_view doing) const {
  const ScopeSet missing = scopes_beyond(scopes, authority_);
  if (!missing) return {};
  return make_error(ErrorCode::insufficient_scope,
                    "This API key cannot " + std::string(doing) + ": it lacks " +
                        scope_list(missing) +
                        ". A key may grant, and act on keys holding, only scopes it holds itself.",
                    "scopes");
}

std::unique_ptr<ApiKey> StateMachine::new_key(Id org_id, KeyType type, Environment env,
                                              uint64_t now, std::string& value, KeyHash& hash) {
  auto k = std::make_unique<ApiKey>();
  k->id = ids_.next(now);
  k->organization_id = org_id;
  k->type = type;
  k->environment = env;
  // 190 random bits: a collision is not a practical event, but the index is keyed by the
  // hash, so make sure rather than assume.
  do {
    value = generate_key(type, env);
    hash = hash_key(value);
  } while (index_.find_key(hash));
  std::copy_n(value.end() - 4, 4, k->preview);
  if (type == KeyType::publishable) k->edit_extras([&](KeyExtras& e) { e.value = value; });
  k->created_ms = now;
  return k;
}

Outcome StateMachine::run(const CreateOrganization& c, uint64_t now) {
  if (slugs_.contains(c.slug))
    return fail(ErrorCode::slug_taken, "The slug '" + c.slug + "' is taken: choose another.",
                "slug");
  auto o = std::make_unique<Organization>();
  o->id = ids_.next(now);
  o->name = c.name;
  o->slug = c.slug;
  o->created_ms = o->updated_ms = now;
  slug_undo_.emplace_back(c.slug, std::nullopt);
  slugs_.emplace(c.slug, o->id);
  Outcome out;
  out.org = stage(std::move(o));
  // The organization's first secret key, with every scope (seed 000: shown once).
  KeyHash hash;
  auto k = new_key(out.org->id, KeyType::secret, Environment::live, now, out.revealed_key, hash);
  k->name = "Default secret key";
  k->scopes = kAllScopes;
  out.key = stage(std::move(k), hash);
  {
    std::string payload;
    JsonWriter w(payload);
    w.begin_object().field("id", std::string_view(to_string(IdKind::organization, out.org->id)));
    w.key("data").begin_object().field("name", std::string_view(out.org->name));
    w.field("slug", std::string_view(out.org->slug)).end_object().end_object();
    audit(AuditType::organization_created, out.org->id, {}, {out.org->id}, std::move(payload));
  }
  audit(AuditType::api_key_created, out.org->id, {}, {out.key->id}, key_created(*out.key));
  return out;
}

Outcome StateMachine::run(const UpdateOrganization& c, uint64_t now) {
  const Organization* cur = org(c.org);
  if (!cur) return fail(ErrorCode::not_found, "No organization with that id exists.", "id");
  auto o = std::make_unique<Organization>(*cur);
  if (c.slug && *c.slug != cur->slug) {
    if (slugs_.contains(*c.slug))
      return fail(ErrorCode::slug_taken, "The slug '" + *c.slug + "' is taken: choose another.",
                  "slug");
    slug_undo_.emplace_back(cur->slug, cur->id);
    slugs_.erase(cur->slug);
    slug_undo_.emplace_back(*c.slug, std::nullopt);
    slugs_.emplace(*c.slug, cur->id);
    o->slug = *c.slug;
  }
  if (c.name) o->name = *c.name;
  if (c.status) o->status = *c.status;
  o->updated_ms = now;
  std::string payload;
  JsonWriter w(payload);
  w.begin_object().field("id", std::string_view(to_string(IdKind::organization, cur->id)));
  w.key("changes_requested").begin_object();
  if (c.name) w.field("name", std::string_view(*c.name));
  if (c.slug) w.field("slug", std::string_view(*c.slug));
  if (c.status) w.field("status", to_string(*c.status));
  w.end_object().end_object();
  Outcome out;
  out.org = stage(std::move(o));
  audit(AuditType::organization_updated, cur->id, {}, {cur->id}, std::move(payload));
  return out;
}

Outcome StateMachine::run(const CreateApiKey& c, uint64_t now) {
  if (!org(c.org)) return fail(ErrorCode::not_found, "No organization with that id exists.", "id");
  uint16_t number = 0;
  if (!c.project.empty()) {
    const Project* p = project(c.org, c.project);
    if (!p) return project_not_found();
    if (p->archived_ms)
      return fail(
          ErrorCode::project_archived,
          "Project " + to_string(IdKind::project, p->id) + " is archived: it takes no new keys.",
          "project_id");
    number = p->number;
  }
  ScopeSet scopes = 0;
  if (c.type == KeyType::secret) {
    // Omitted: every scope for a caller that holds them all, else exactly the caller's.
    scopes = c.scopes ? *c.scopes
                      : (scopes_beyond(kAllScopes, authority_) ? current_scopes(authority_)
                                                               : kAllScopes);
    if (Error e = beyond_authority(scopes, "grant these scopes")) return fail(std::move(e));
  }
  if (Error e = no_room_for_key(c.org)) return fail(std::move(e));
  Outcome out;
  KeyHash hash;
  auto k = new_key(c.org, c.type, c.environment, now, out.revealed_key, hash);
  k->name = c.name;
  k->scopes = scopes;
  if (k->type == KeyType::publishable && !c.allowed_origins.empty())
    k->edit_extras([&](KeyExtras& e) { e.allowed_origins = c.allowed_origins; });
  k->expires_ms = c.expires_ms;
  k->rate_limit = c.rate_limit;
  k->project = number;
  out.key = stage(std::move(k), hash);
  audit(AuditType::api_key_created, c.org, c.project, {out.key->id}, key_created(*out.key));
  return out;
}

Outcome StateMachine::run(const UpdateApiKey& c, uint64_t) {
  KeyHash hash;
  const ApiKey* cur = key(c.org, c.key, hash);
  if (!cur) return key_not_found();
  if (Error e = beyond_authority(cur->scopes, "change a key that holds more scopes than it does"))
    return fail(std::move(e));
  if (c.scopes)
    if (Error e = beyond_authority(*c.scopes, "grant these scopes")) return fail(std::move(e));
  auto k = std::make_unique<ApiKey>(*cur);
  if (c.name) k->name = *c.name;
  if (c.allowed_origins && k->type == KeyType::publishable)
    k->edit_extras([&](KeyExtras& e) { e.allowed_origins = *c.allowed_origins; });
  if (c.scopes) k->scopes = *c.scopes;
  if (c.rate_limit) k->rate_limit = *c.rate_limit;
  std::string payload;
  JsonWriter w(payload);
  w.begin_object().field("id", std::string_view(to_string(IdKind::api_key, cur->id)));
  w.key("changes_requested").begin_object();
  if (c.name) w.field("name", std::string_view(*c.name));
  if (c.scopes) write_scopes(w, *c.scopes);
  if (c.allowed_origins) {
    w.key("allowed_origins").begin_array();
    for (const auto& o : *c.allowed_origins) w.string(o);
    w.end_array();
  }
  if (c.rate_limit) {
    w.key("rate_limit").begin_object();
    w.field("requests_per_second", c.rate_limit->requests_per_second);
    w.field("burst", c.rate_limit->burst).end_object();
  }
  w.end_object().end_object();
  Outcome out;
  out.key = stage(std::move(k), hash);
  audit(AuditType::api_key_updated, c.org, project_id(*cur), {cur->id}, std::move(payload));
  return out;
}

Outcome StateMachine::run(const RevokeApiKey& c, uint64_t now) {
  KeyHash hash;
  const ApiKey* cur = key(c.org, c.key, hash);
  if (!cur) return key_not_found();
  if (cur->revoked_ms) return fail(ErrorCode::already_revoked, "This API key is already revoked.");
  if (Error e = beyond_authority(cur->scopes, "revoke a key that holds more scopes than it does"))
    return fail(std::move(e));
  auto k = std::make_unique<ApiKey>(*cur);
  k->revoked_ms = now;
  Outcome out;
  out.key = stage(std::move(k), hash);
  audit(AuditType::api_key_deleted, c.org, project_id(*cur), {cur->id},
        just_id(IdKind::api_key, cur->id));
  return out;
}

Outcome StateMachine::run(const RotateApiKey& c, uint64_t now) {
  KeyHash old_hash;
  const ApiKey* cur = key(c.org, c.key, old_hash);
  if (!cur) return key_not_found();
  switch (cur->status_at(now)) {
    case KeyStatus::revoked:
      return fail(ErrorCode::already_revoked,
                  "A revoked API key cannot be rotated: create a new key.");
    case KeyStatus::rotating:
      return fail(ErrorCode::already_rotated,
                  "This API key was already rotated: rotate its replacement instead.");
    case KeyStatus::expired:
      return fail(ErrorCode::already_rotated,
                  "An expired API key cannot be rotated: create a new key.");
    case KeyStatus::active:
      break;
  }
  // A rotation reveals the replacement's value: the caller must hold all it would get.
  if (Error e = beyond_authority(cur->scopes, "rotate a key that holds more scopes than it does"))
    return fail(std::move(e));
  if (Error e = no_room_for_key(c.org)) return fail(std::move(e));
  Outcome out;
  KeyHash fresh_hash;
  auto fresh =
      new_key(cur->organization_id, cur->type, cur->environment, now, out.revealed_key, fresh_hash);
  fresh->name = cur->name;
  fresh->scopes = current_scopes(cur->scopes);
  fresh->edit_extras([&](KeyExtras& e) {
    e.allowed_origins = cur->allowed_origins();  // empty for a secret key
    e.rotated_from = cur->id;
  });
  fresh->rate_limit = cur->rate_limit;
  fresh->expires_ms = cur->expires_ms;
  fresh->project = cur->project;
  auto old = std::make_unique<ApiKey>(*cur);
  old->rotated_ms = now;
  old->grace_expires_ms = now + c.grace_period_seconds * 1000;
  old->edit_extras([&](KeyExtras& e) { e.replaced_by = fresh->id; });
  const Id old_id = old->id;
  const uint64_t grace = old->grace_expires_ms;
  stage(std::move(old), old_hash);
  out.key = stage(std::move(fresh), fresh_hash);
  const Id project = project_id(*out.key);
  std::string payload;
  JsonWriter w(payload);
  w.begin_object().field("id", std::string_view(to_string(IdKind::api_key, old_id)));
  w.key("changes_requested").begin_object();
  w.field("replaced_by", std::string_view(to_string(IdKind::api_key, out.key->id)));
  w.field("expires_in_seconds", c.grace_period_seconds);
  w.field("grace_expires_at", static_cast<uint64_t>(grace / 1000)).end_object().end_object();
  audit(AuditType::api_key_updated, c.org, project, {old_id}, std::move(payload));
  audit(AuditType::api_key_created, c.org, project, {out.key->id}, key_created(*out.key));
  return out;
}

std::vector<const Certificate*> StateMachine::certificates(Id org_id) const {
  std::vector<const Certificate*> out;
  OrgSlot* slot = index_.find_org(org_id);
  if (const CertificateSet* set = slot ? slot->certs() : nullptr)
    for (const auto& c : set->items)
      if (!staged_certs_.contains(c->id)) out.push_back(c.get());
  for (const auto& [id, i] : staged_certs_)
    if (staged_[i].cert->organization_id == org_id && !staged_[i].cert_deleted)
      out.push_back(staged_[i].cert.get());
  std::sort(out.begin(), out.end(),
            [](const Certificate* a, const Certificate* b) { return a->id < b->id; });
  return out;
}

void StateMachine::stage(std::shared_ptr<Certificate> c, bool deleted) {
  staged_certs_[c->id] = staged_.size();
  staged_.push_back({nullptr, nullptr, {}, std::move(c), deleted});
}

namespace {

const Certificate* find_certificate(const std::vector<const Certificate*>& certs, Id id) {
  for (const Certificate* c : certs)
    if (c->id == id) return c;
  return nullptr;
}

Outcome certificate_not_found() {
  return fail(ErrorCode::not_found, "No certificate with that id exists in this organization.",
              "certificate_id");
}

}  // namespace

Outcome StateMachine::run(const CreateCertificate& c, uint64_t now) {
  if (!org(c.org)) return fail(ErrorCode::not_found, "No organization with that id exists.", "id");
  const auto existing = certificates(c.org);
  // Checked here, by the one writer, so that the limit and uniqueness hold under any
  // number of concurrent uploads.
  for (const Certificate* e : existing)
    if (e->fingerprint == c.fingerprint)
      return fail(ErrorCode::duplicate_certificate,
                  "This certificate is already uploaded to this organization (as " +
                      to_string(IdKind::certificate, e->id) + ").",
                  "certificate");
  if (existing.size() >= kMaxCertificatesPerOrganization)
    return fail(
        ErrorCode::certificate_limit_reached,
        "An organization can hold at most 50 certificates: delete one you no longer use first.",
        "certificate");
  auto cert = std::make_shared<Certificate>();
  cert->id = ids_.next(now);
  cert->organization_id = c.org;
  cert->name = c.name;
  cert->pem = c.pem;
  cert->fingerprint = c.fingerprint;
  cert->valid_at = c.valid_at;
  cert->expires_at = c.expires_at;
  cert->created_ms = now;
  Outcome out;
  out.certificates.push_back(*cert);
  audit(AuditType::certificate_created, c.org, {}, {cert->id}, certificate_payload(*cert));
  stage(std::move(cert), false);
  return out;
}

Outcome StateMachine::run(const UpdateCertificate& c, uint64_t) {
  const Certificate* cur = find_certificate(certificates(c.org), c.certificate);
  if (!cur) return certificate_not_found();
  auto cert = std::make_shared<Certificate>(*cur);
  if (c.name) cert->name = c.name;
  Outcome out;
  out.certificates.push_back(*cert);
  audit(AuditType::certificate_updated, c.org, {}, {cert->id}, certificate_payload(*cert));
  stage(std::move(cert), false);
  return out;
}

Outcome StateMachine::run(const DeleteCertificate& c, uint64_t) {
  const Certificate* cur = find_certificate(certificates(c.org), c.certificate);
  if (!cur) return certificate_not_found();
  if (cur->active)
    return fail(
        ErrorCode::certificate_active,
        "This certificate is active: deactivate it (POST /v1/organization/certificates/deactivate) "
        "before deleting it.",
        "certificate_id");
  if (!cur->active_projects.empty())
    return fail(ErrorCode::certificate_active,
                "This certificate is active for a project: deactivate it there (POST "
                "/v1/organization/projects/{project_id}/certificates/deactivate) before deleting "
                "it.",
                "certificate_id");
  Outcome out;
  out.certificates.push_back(*cur);
  audit(AuditType::certificate_deleted, c.org, {}, {cur->id}, certificate_payload(*cur));
  stage(std::make_shared<Certificate>(*cur), true);
  return out;
}

Outcome StateMachine::run(const SetCertificatesActive& c, uint64_t) {
  uint16_t number = 0;
  if (!c.project.empty()) {
    const Project* p = project(c.org, c.project);
    if (!p) return project_not_found();
    number = p->number;
  }
  const auto certs = certificates(c.org);
  std::vector<const Certificate*> found;
  for (Id id : c.certificates) {
    const Certificate* cur = find_certificate(certs, id);
    if (!cur)
      return fail(ErrorCode::not_found,
                  "No certificate " + to_string(IdKind::certificate, id) +
                      " exists in this organization: nothing was changed.",
                  "certificate_ids");
    found.push_back(cur);
  }
  Outcome out;
  std::vector<Id> changed;
  std::string payload;
  JsonWriter w(payload);
  w.begin_object().key("certificates").begin_array();
  for (const Certificate* cur : found) {
    auto cert = std::make_shared<Certificate>(*cur);
    if (!number) {
      cert->active = c.active;
    } else {
      auto& ps = cert->active_projects;
      const auto at = std::lower_bound(ps.begin(), ps.end(), number);
      const bool there = at != ps.end() && *at == number;
      if (c.active && !there) ps.insert(at, number);
      if (!c.active && there) ps.erase(at);
    }
    out.certificates.push_back(*cert);
    // Idempotent: nothing is staged for a certificate already as asked.
    if (cert->active != cur->active || cert->active_projects != cur->active_projects) {
      if (std::find(changed.begin(), changed.end(), cert->id) == changed.end()) {
        changed.push_back(cert->id);
        w.begin_object().field("id", std::string_view(to_string(IdKind::certificate, cert->id)));
        w.key("name");
        cert->name ? w.string(*cert->name) : w.null();
        w.end_object();
      }
      stage(std::move(cert), false);
    }
  }
  w.end_array().end_object();
  if (!changed.empty())
    audit(c.active ? AuditType::certificates_activated : AuditType::certificates_deactivated, c.org,
          c.project, std::move(changed), std::move(payload));
  return out;
}

std::vector<const Project*> StateMachine::projects(Id org_id) const {
  std::vector<const Project*> out;
  OrgSlot* slot = index_.find_org(org_id);
  if (const ProjectSet* set = slot ? slot->project_set() : nullptr)
    for (const auto& p : set->items) out.push_back(p.get());
  for (const auto& [id, i] : staged_projects_) {
    const Project& p = *staged_[i].project;
    if (p.organization_id != org_id) continue;
    if (p.number <= out.size())
      out[p.number - 1] = &p;  // a staged version of a published project
    else
      out.resize(p.number, nullptr), out[p.number - 1] = &p;
  }
  return out;
}

void StateMachine::stage(std::shared_ptr<Project> p) {
  staged_projects_[p->id] = staged_.size();
  Staged s;
  s.project = std::move(p);
  staged_.push_back(std::move(s));
}

namespace {}  // namespace

const Project* StateMachine::project(Id org_id, Id id) const {
  for (const Project* p : projects(org_id))
    if (p && p->id == id) return p;
  return nullptr;
}

Outcome StateMachine::run(const CreateProject& c, uint64_t now) {
  if (!org(c.org)) return fail(ErrorCode::not_found, "No organization with that id exists.", "id");
  const auto existing = projects(c.org);
  if (existing.size() >= kMaxProjectsPerOrganization)
    return fail(ErrorCode::project_limit_reached,
                "An organization can hold at most 1000 projects (archived ones count).", "name");
  auto p = std::make_shared<Project>();
  p->id = ids_.next(now);
  p->organization_id = c.org;
  p->name = c.name;
  p->number = static_cast<uint16_t>(existing.size() + 1);
  p->created_ms = now;
  Outcome out;
  out.project = *p;
  std::string payload;
  JsonWriter w(payload);
  w.begin_object().field("id", std::string_view(to_string(IdKind::project, p->id)));
  w.key("data").begin_object().field("name", std::string_view(p->name));
  w.field("title", std::string_view(p->name)).end_object().end_object();
  audit(AuditType::project_created, c.org, p->id, {p->id}, std::move(payload));
  stage(std::move(p));
  return out;
}

Outcome StateMachine::run(const UpdateProject& c, uint64_t) {
  const Project* cur = project(c.org, c.project);
  if (!cur) return project_not_found();
  if (cur->archived_ms)
    return fail(ErrorCode::project_archived, "An archived project cannot be modified.",
                "project_id");
  auto p = std::make_shared<Project>(*cur);
  p->name = c.name;
  Outcome out;
  out.project = *p;
  std::string payload;
  JsonWriter w(payload);
  w.begin_object().field("id", std::string_view(to_string(IdKind::project, p->id)));
  w.key("changes_requested").begin_object().field("title", std::string_view(c.name));
  w.field("name", std::string_view(c.name)).end_object().end_object();
  audit(AuditType::project_updated, c.org, p->id, {p->id}, std::move(payload));
  stage(std::move(p));
  return out;
}

Outcome StateMachine::run(const ArchiveProject& c, uint64_t now) {
  const Project* cur = project(c.org, c.project);
  if (!cur) return project_not_found();
  Outcome out;
  out.project = *cur;
  if (cur->archived_ms) return out;  // idempotent
  auto p = std::make_shared<Project>(*cur);
  p->archived_ms = now;
  out.project = *p;
  audit(AuditType::project_archived, c.org, p->id, {p->id}, just_id(IdKind::project, p->id));
  stage(std::move(p));
  return out;
}

bool StateMachine::apply(std::shared_ptr<Project> p) {
  const Id id = p->id;
  if (!index_.put(std::shared_ptr<const Project>(std::move(p)))) return false;
  ids_.observe(id);
  return true;
}

void StateMachine::publish() {
  for (Staged& s : staged_) {
    if (s.org)
      index_.put(std::unique_ptr<const Organization>(std::move(s.org)));
    else if (s.key)
      index_.put(s.key_hash, std::unique_ptr<const ApiKey>(std::move(s.key)));
    else if (s.project)
      index_.put(std::shared_ptr<const Project>(std::move(s.project)));
    else if (s.event)
      index_.audit().insert(std::move(*s.event));
    else if (s.cert_deleted)
      index_.remove_certificate(s.cert->organization_id, s.cert->id);
    else
      index_.put(std::shared_ptr<const Certificate>(std::move(s.cert)));
  }
  staged_.clear();
  clear_staged_maps();
  slug_undo_.clear();
  index_.reclaim();
}

void StateMachine::discard() {
  discard_from(0, 0);
}

void StateMachine::discard_from(size_t records, size_t slugs) {
  staged_.erase(staged_.begin() + static_cast<ptrdiff_t>(std::min(records, staged_.size())),
                staged_.end());
  while (slug_undo_.size() > slugs) {  // newest first: a slug touched twice ends as it began
    auto& [slug, holder] = slug_undo_.back();
    if (holder)
      slugs_[slug] = *holder;
    else
      slugs_.erase(slug);
    slug_undo_.pop_back();
  }
  if (staged_.empty())
    clear_staged_maps();
  else
    reindex_staged();
}

void StateMachine::clear_staged_maps() {
  staged_orgs_.clear();
  staged_keys_.clear();
  staged_new_keys_.clear();
  staged_certs_.clear();
  staged_projects_.clear();
}

void StateMachine::reindex_staged() {
  ReadSection rs;
  clear_staged_maps();
  for (size_t i = 0; i < staged_.size(); ++i) {  // later versions replace earlier ones
    const Staged& st = staged_[i];
    if (st.org) {
      staged_orgs_[st.org->id] = i;
    } else if (st.key) {
      if (staged_keys_.insert_or_assign(st.key->id, i).second && !index_.find_key(st.key->id))
        ++staged_new_keys_[st.key->organization_id];
    } else if (st.cert) {
      staged_certs_[st.cert->id] = i;
    } else if (st.project) {
      staged_projects_[st.project->id] = i;
    }
  }
}

void StateMachine::apply(std::shared_ptr<Certificate> c) {
  ids_.observe(c->id);
  index_.put(std::shared_ptr<const Certificate>(std::move(c)));
}

void StateMachine::apply_certificate_deletion(Id org, Id cert) {
  index_.remove_certificate(org, cert);
}

void StateMachine::apply(AuditEvent e) {
  ids_.observe(e.id);
  index_.audit().insert(std::move(e));
}

void StateMachine::apply(std::unique_ptr<Organization> o) {
  ReadSection rs;
  ids_.observe(o->id);
  if (OrgSlot* s = index_.find_org(o->id)) slugs_.erase(s->load()->slug);
  slugs_[o->slug] = o->id;
  index_.put(std::unique_ptr<const Organization>(std::move(o)));
}

void StateMachine::apply(const KeyHash& hash, std::unique_ptr<ApiKey> k) {
  ids_.observe(k->id);
  index_.put(hash, std::unique_ptr<const ApiKey>(std::move(k)));
}

bool StateMachine::try_apply(const KeyHash& hash, std::unique_ptr<ApiKey> k,
                             uint64_t last_used_ms) {
  const Id id = k->id;
  std::unique_ptr<const ApiKey> record(std::move(k));
  if (!index_.try_put(hash, record, last_used_ms)) return false;
  ids_.observe(id);
  return true;
}

}  // namespace keygate::core
