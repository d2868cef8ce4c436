#include "persistence/codec.hpp"

#include <cstring>

#include "persistence/record.hpp"

namespace keygate::persistence {

namespace {

class Out {
 public:
  explicit Out(std::string& s) : s_(s) {}
  template <typename T>
  void num(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof v);
    s_.append(b, sizeof v);
  }
  void str(std::string_view v) {
    num(static_cast<uint32_t>(v.size()));
    s_.append(v);
  }
  void id(core::Id v) {
    num(v.hi);
    num(v.lo);
  }
  void bytes(const void* p, size_t n) { s_.append(static_cast<const char*>(p), n); }

 private:
  std::string& s_;
};

class In {
 public:
  explicit In(std::string_view s) : s_(s) {}
  template <typename T>
  T num() {
    T v{};
    if (!take(sizeof v)) return v;
    std::memcpy(&v, s_.data() + pos_ - sizeof v, sizeof v);
    return v;
  }
  std::string str() {
    auto n = num<uint32_t>();
    if (!take(n)) return {};
    return std::string(s_.substr(pos_ - n, n));
  }
  core::Id id() {
    core::Id v;
    v.hi = num<uint64_t>();
    v.lo = num<uint64_t>();
    return v;
  }
  void bytes(void* p, size_t n) {
    if (take(n)) std::memcpy(p, s_.data() + pos_ - n, n);
  }
  bool ok_and_done() const { return ok_ && pos_ == s_.size(); }
  bool ok() const { return ok_; }

 private:
  bool take(size_t n) {
    if (!ok_ || s_.size() - pos_ < n) return ok_ = false;
    pos_ += n;
    return true;
  }
  std::string_view s_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

void encode(const core::Organization& o, std::string& out) {
  Out w(out);
  w.id(o.id);
  w.str(o.name);
  w.str(o.slug);
  w.num(static_cast<uint8_t>(o.status));
  w.num(o.created_ms);
  w.num(o.updated_ms);
}

void encode(const core::KeyHash& hash, const core::ApiKey& k, uint64_t last_used_ms,
            std::string& out) {
  Out w(out);
  w.id(k.id);
  w.id(k.organization_id);
  w.bytes(hash.data(), hash.size());
  w.num(static_cast<uint8_t>(k.type));
  w.num(static_cast<uint8_t>(k.environment));
  w.num(k.scopes);
  w.bytes(k.preview, sizeof k.preview);
  w.str(k.public_value());
  w.str(k.name);
  w.num(static_cast<uint32_t>(k.allowed_origins().size()));
  for (const auto& o : k.allowed_origins()) w.str(o);
  w.num(static_cast<uint8_t>(k.rate_limit.has_value()));
  w.num(k.rate_limit ? k.rate_limit->requests_per_second : 0u);
  w.num(k.rate_limit ? k.rate_limit->burst : 0u);
  w.num(k.created_ms);
  w.num(k.rotated_ms);
  w.num(k.revoked_ms);
  w.num(k.grace_expires_ms);
  w.num(k.expires_ms);
  w.id(k.replaced_by());
  w.id(k.rotated_from());
  w.num(last_used_ms);
  w.num(k.project);  // version 2
}

void encode(const core::Project& p, std::string& out) {
  Out w(out);
  w.id(p.id);
  w.id(p.organization_id);
  w.num(p.number);
  w.str(p.name);
  w.num(p.created_ms);
  w.num(p.archived_ms);
}

std::shared_ptr<core::Project> decode_project(std::string_view payload) {
  In r(payload);
  auto p = std::make_shared<core::Project>();
  p->id = r.id();
  p->organization_id = r.id();
  p->number = r.num<uint16_t>();
  p->name = r.str();
  p->created_ms = r.num<uint64_t>();
  p->archived_ms = r.num<uint64_t>();
  if (!r.ok_and_done() || p->id.empty() || p->number == 0 ||
      p->number > core::kMaxProjectsPerOrganization)
    return nullptr;
  return p;
}

void encode(const core::AuditEvent& e, std::string& out) {
  Out w(out);
  w.id(e.id);
  w.id(e.organization_id);
  w.id(e.project_id);
  w.num(static_cast<uint8_t>(e.type));
  w.num(static_cast<uint8_t>(e.actor.kind));
  w.id(e.actor.key);
  w.num(static_cast<uint16_t>(e.resources.size()));
  for (const core::Id& r : e.resources) w.id(r);
  w.str(e.payload);
}

std::optional<core::AuditEvent> decode_audit_event(std::string_view payload) {
  In r(payload);
  core::AuditEvent e;
  e.id = r.id();
  e.organization_id = r.id();
  e.project_id = r.id();
  e.type = static_cast<core::AuditType>(r.num<uint8_t>());
  const auto actor = r.num<uint8_t>();
  e.actor.kind = static_cast<core::ActorKind>(actor);
  e.actor.key = r.id();
  const auto n = r.num<uint16_t>();
  for (uint16_t i = 0; i < n && r.ok(); ++i) e.resources.push_back(r.id());
  e.payload = r.str();
  if (!r.ok_and_done() || e.id.empty() || e.organization_id.empty() ||
      core::to_string(e.type).empty() || actor < 1 || actor > 3)
    return std::nullopt;
  return e;
}

void encode(const core::Certificate& c, std::string& out) {
  Out w(out);
  w.id(c.id);
  w.id(c.organization_id);
  w.num(static_cast<uint8_t>(c.name.has_value()));
  w.str(c.name ? *c.name : std::string());
  w.str(c.pem);
  w.bytes(c.fingerprint.data(), c.fingerprint.size());
  w.num(c.valid_at);
  w.num(c.expires_at);
  w.num(c.created_ms);
  w.num(static_cast<uint8_t>(c.active));
  w.num(static_cast<uint16_t>(c.active_projects.size()));  // version 2
  for (uint16_t p : c.active_projects) w.num(p);
}

void encode_certificate_deletion(core::Id org, core::Id cert, std::string& out) {
  Out w(out);
  w.id(org);
  w.id(cert);
}

std::shared_ptr<core::Certificate> decode_certificate(std::string_view payload, uint8_t version) {
  if (version < 1 || version > 2) return nullptr;
  In r(payload);
  auto c = std::make_shared<core::Certificate>();
  c->id = r.id();
  c->organization_id = r.id();
  const auto has_name = r.num<uint8_t>();
  std::string name = r.str();
  if (has_name) c->name = std::move(name);
  c->pem = r.str();
  r.bytes(c->fingerprint.data(), c->fingerprint.size());
  c->valid_at = r.num<int64_t>();
  c->expires_at = r.num<int64_t>();
  c->created_ms = r.num<uint64_t>();
  const auto active = r.num<uint8_t>();
  c->active = active != 0;
  if (version >= 2) {
    const auto n = r.num<uint16_t>();
    for (uint16_t i = 0; i < n && r.ok(); ++i) {
      const auto p = r.num<uint16_t>();
      // Ascending project numbers, each at most once.
      if (p == 0 || p > core::kMaxProjectsPerOrganization ||
          (!c->active_projects.empty() && p <= c->active_projects.back()))
        return nullptr;
      c->active_projects.push_back(p);
    }
  }
  if (!r.ok_and_done() || has_name > 1 || active > 1 || c->id.empty()) return nullptr;
  return c;
}

bool decode_certificate_deletion(std::string_view payload, core::Id& org, core::Id& cert) {
  In r(payload);
  org = r.id();
  cert = r.id();
  return r.ok_and_done();
}

std::unique_ptr<core::Organization> decode_organization(std::string_view payload) {
  In r(payload);
  auto o = std::make_unique<core::Organization>();
  o->id = r.id();
  o->name = r.str();
  o->slug = r.str();
  const auto status = r.num<uint8_t>();
  o->status = static_cast<core::OrgStatus>(status);
  o->created_ms = r.num<uint64_t>();
  o->updated_ms = r.num<uint64_t>();
  if (!r.ok_and_done() || status > 1 || o->id.empty()) return nullptr;
  return o;
}

std::unique_ptr<core::ApiKey> decode_api_key(std::string_view payload, core::KeyHash& hash,
                                             uint64_t& last_used_ms, uint8_t version) {
  if (version < 1 || version > 2) return nullptr;
  In r(payload);
  auto k = std::make_unique<core::ApiKey>();
  k->id = r.id();
  k->organization_id = r.id();
  r.bytes(hash.data(), hash.size());
  const auto type = r.num<uint8_t>();
  const auto env = r.num<uint8_t>();
  k->type = static_cast<core::KeyType>(type);
  k->environment = static_cast<core::Environment>(env);
  k->scopes = r.num<uint32_t>();
  r.bytes(k->preview, sizeof k->preview);
  core::KeyExtras extras;  // read in the payload's order, attached once complete
  extras.value = r.str();
  k->name = r.str();
  const auto origins = r.num<uint32_t>();
  for (uint32_t i = 0; i < origins && r.ok(); ++i) extras.allowed_origins.push_back(r.str());
  // A publishable key carries its value; a secret key carries neither value nor origins.
  if ((type == static_cast<uint8_t>(core::KeyType::publishable)) != !extras.value.empty())
    return nullptr;
  if (extras.value.empty() && !extras.allowed_origins.empty()) return nullptr;
  const auto has_limit = r.num<uint8_t>();
  const auto rps = r.num<uint32_t>();
  const auto burst = r.num<uint32_t>();
  if (has_limit) k->rate_limit = core::RateLimit{rps, burst};
  k->created_ms = r.num<uint64_t>();
  k->rotated_ms = r.num<uint64_t>();
  k->revoked_ms = r.num<uint64_t>();
  k->grace_expires_ms = r.num<uint64_t>();
  k->expires_ms = r.num<uint64_t>();
  extras.replaced_by = r.id();
  extras.rotated_from = r.id();
  k->edit_extras([&](core::KeyExtras& e) { e = std::move(extras); });
  last_used_ms = r.num<uint64_t>();
  if (version >= 2) k->project = r.num<uint16_t>();
  if (!r.ok_and_done() || type > 1 || env > 1 || k->id.empty() ||
      k->project > core::kMaxProjectsPerOrganization)
    return nullptr;
  return k;
}

void append_staged(const core::StateMachine::Staged& st, std::string& payload, std::string& out) {
  payload.clear();
  if (st.org) {
    encode(*st.org, payload);
    append_record(out, RecordType::organization, payload);
  } else if (st.key) {
    encode(st.key_hash, *st.key, 0, payload);
    append_record(out, RecordType::api_key, payload);
  } else if (st.project) {
    encode(*st.project, payload);
    append_record(out, RecordType::project, payload);
  } else if (st.event) {
    encode(*st.event, payload);
    append_record(out, RecordType::audit_event, payload);
  } else if (st.cert_deleted) {
    encode_certificate_deletion(st.cert->organization_id, st.cert->id, payload);
    append_record(out, RecordType::certificate_deleted, payload);
  } else {
    encode(*st.cert, payload);
    append_record(out, RecordType::certificate, payload);
  }
}

void append_command(const std::vector<core::StateMachine::Staged>& staged, size_t first,
                    size_t last, std::string& payload, std::string& group, std::string& out) {
  if (last - first == 1) return append_staged(staged[first], payload, out);
  group.clear();
  for (size_t i = first; i < last; ++i) append_staged(staged[i], payload, group);
  append_record(out, RecordType::group, group);
}

}  // namespace keygate::persistence
