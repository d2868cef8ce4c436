// Verification, the hot path (docs/api.md §5): POST /v1/keys/verify for services and
// GET /v1/auth for gateways. Neither allocates once its thread's buffers are warm.
#include "core/clock.hpp"
#include "core/x509.hpp"
#include "handlers/auth.hpp"
#include "handlers/errors.hpp"
#include "handlers/families.hpp"
#include "handlers/json_input.hpp"
#include "handlers/metrics.hpp"
#include "handlers/query.hpp"
#include "handlers/render.hpp"
#include "net/tls.hpp"

namespace keygate::handlers {

namespace {

// The client certificate of a /v1/auth request. Over keygate's own TLS: the one the
// connection presented, and every forwarded header is ignored (a client must not claim a
// certificate it did not show). Over plain HTTP: what a TLS-terminating gateway in front
// forwards, only with --trust-forwarded-client-cert: the certificate itself (X-Client-Cert
// from nginx or Caddy, X-Forwarded-Tls-Client-Cert from Traefik), whose SHA-256 keygate
// computes, Envoy's x-forwarded-client-cert Hash=, or X-Client-Cert-Sha256. The gateway
// must overwrite or strip all four (scripts/gateways/); two of them at once is a client
// adding one the gateway did not set, and none is taken.
enum ForwardedHeader : size_t { kCert, kTraefikCert, kXfcc, kCertSha256, kForwardedHeaders };

void client_certificate(const Exchange& ex, const std::string_view* forwarded,
                        std::array<uint8_t, 32>& fingerprint, core::VerifyRequest& vr) {
  if (ex.req.tls) {
    if (const net::PeerCertificate* p = ex.req.peer_certificate) {
      fingerprint = p->sha256;
      vr.client_certificate = &fingerprint;
    }
    return;
  }
  if (!ex.app.config.trust_forwarded_client_cert) return;
  size_t present = 0, which = 0;
  for (size_t i = 0; i < kForwardedHeaders; ++i)
    if (!forwarded[i].empty()) ++present, which = i;
  if (present != 1) return;
  const std::string_view v = forwarded[which];
  const bool ok = which == kCertSha256 ? core::parse_sha256_hex(v, fingerprint)
                  : which == kXfcc     ? core::xfcc_sha256(v, fingerprint)
                                       : core::forwarded_certificate_sha256(v, fingerprint);
  if (ok) vr.client_certificate = &fingerprint;
}

// The header is formatted once per scope set (per thread) and copied after that: a
// deployment's keys share a few sets, and the full set is 17 names to look up and append.
// The line only grows until it has held the longest set; an empty line means none yet.
void append_scopes_header(net::Response& res, core::ScopeSet scopes) {
  thread_local core::ScopeSet cached_scopes = 0;
  thread_local std::string cached_line;
  if (cached_line.empty() || cached_scopes != scopes) {
    cached_line.assign("X-Keygate-Scopes: ");
    bool first = true;
    core::for_each_scope(scopes, [&](core::Scope s) {
      if (!first) cached_line.push_back(',');
      first = false;
      cached_line.append(core::scope_name(s));
    });
    cached_line.append("\r\n");
    cached_scopes = scopes;
  }
  res.headers.append(cached_line);
}

}  // namespace

// Hot path.
void verify_key(Exchange& ex) {
  if (!authorize(ex, core::Scope::api_keys_verify)) return;
  if (!ex.app.vouching(core::coarse_now_ms())) {
    ex.app.metrics.record_verification(core::VerifyCode::node_stale);
    ex.res.add_header("Retry-After", "1");
    return write_error(ex, core::ErrorCode::node_stale,
                       "This node cannot show that it is in step with the cluster's store (etcd) "
                       "within --max-staleness-ms, so it vouches for no key: ask another node, or "
                       "retry in a moment.");
  }
  core::VerifyRequest vr;
  core::Error err;
  bool has_key = false;
  std::array<uint8_t, 32> fingerprint;
  bool ok = JsonFields::each(ex.req.body, false, err, [&](std::string_view k, JsonValue& v) {
    if (k == "key") return (has_key = true) && read_string_view(v, k, vr.key, err);
    if (k == "origin") return read_string_view(v, k, vr.origin, err);
    if (k == "scopes") {
      simdjson::ondemand::array arr;
      if (v.get_array().get(arr))
        return (err = invalid_field("scopes", "must be an array of scope names"), false);
      for (auto item : arr) {
        std::string_view name;
        if (item.get_string().get(name))
          return (err = invalid_field("scopes", "must be an array of scope names"), false);
        core::Scope s;
        if (core::parse_scope(name, s) == core::ScopeParse::ok)
          vr.required_scopes |= core::bit(s);
        else
          vr.unknown_scope = true;  // no key can hold it: INSUFFICIENT_SCOPE, not a 400
      }
      return true;
    }
    if (k == "client_certificate_sha256") {
      std::string_view hex;
      if (!read_string_view(v, k, hex, err)) return false;
      if (!core::parse_sha256_hex(hex, fingerprint))
        return (
            err = invalid_field(k, "must be the certificate's SHA-256 as 64 hexadecimal digits"),
            false);
      vr.client_certificate = &fingerprint;
      return true;
    }
    err = unknown_field(k);
    return false;
  });
  if (ok && !has_key) ok = (err = missing_field("key"), false);
  if (!ok) return write_error(ex, err);
  if (!ex.principal.root) vr.organization = ex.principal.organization;

  core::ReadSection rs;
  const core::VerifyResult r = core::verify(ex.app.index, vr, ex.app.config.rate_defaults,
                                            core::coarse_now_ms(), ex.started_ns);
  ex.app.metrics.record_verification(r.code);
  write_envelope(ex, 200, [&](core::JsonWriter& w) {
    w.begin_object()
        .field("valid", r.code == core::VerifyCode::valid)
        .field("code", core::to_string(r.code));
    if (r.found) {
      write_id(w, "key_id", core::IdKind::api_key, r.key_id);
      write_id(w, "organization_id", core::IdKind::organization, r.organization_id);
      if (!r.project_id.empty()) write_id(w, "project_id", core::IdKind::project, r.project_id);
    }
    if (r.code == core::VerifyCode::valid) {
      w.field("type", core::to_string(r.type)).field("environment", core::to_string(r.environment));
      w.key("scopes");
      core::write_scope_array(w, r.scopes);
      write_time(w, "expires_at", r.expires_ms);
      w.key("rate_limit");
      if (r.rate.limited)
        w.begin_object()
            .field("limit", r.rate.limit)
            .field("remaining", r.rate.remaining)
            .field("reset_ms", r.rate.reset_ms)
            .end_object();
      else
        w.null();
    }
    w.end_object();
  });
}

// Hot path.
void forward_auth(Exchange& ex) {
  net::Response& res = ex.res;
  res.body.clear();
  // A node behind etcd by more than --max-staleness may miss a revocation: it vouches for
  // nothing, and the gateway denies (cluster/freshness.hpp).
  if (!ex.app.vouching(core::coarse_now_ms())) {
    ex.app.metrics.record_verification(core::VerifyCode::node_stale);
    res.status = 503;
    res.add_header("Retry-After", "1");
    res.add_header("X-Keygate-Code", core::to_string(core::VerifyCode::node_stale));
    return;
  }
  static constexpr std::array<std::string_view, 8> kNames = {
      "authorization", "x-api-key", "origin", "x-required-scopes",
      // in ForwardedHeader's order, from h[4]
      "x-client-cert", "x-forwarded-tls-client-cert", "x-forwarded-client-cert",
      "x-client-cert-sha256"};
  std::array<std::string_view, 8> h;
  ex.req.headers_named(kNames, h);
  std::string_view key;
  const CredentialRead cred = read_credential(h[0], h[1], key);
  if (cred == CredentialRead::conflict) {
    res.status = 400;
    res.add_header("X-Keygate-Code", "MALFORMED");
    return;
  }
  core::VerifyRequest vr;
  vr.key = cred == CredentialRead::ok ? key : std::string_view();
  vr.origin = h[2];
  std::array<uint8_t, 32> fingerprint;
  client_certificate(ex, &h[4], fingerprint, vr);
  if (!h[3].empty()) core::parse_scope_list(h[3], vr.required_scopes, vr.unknown_scope);
  if (auto q = query_param(ex.req.query, "scopes")) {
    char decoded[1024];
    const size_t n = percent_decode(*q, decoded, sizeof decoded);
    if (n == SIZE_MAX)
      vr.unknown_scope = true;
    else
      core::parse_scope_list(std::string_view(decoded, n), vr.required_scopes, vr.unknown_scope);
  }

  core::ReadSection rs;
  const core::VerifyResult r = core::verify(ex.app.index, vr, ex.app.config.rate_defaults,
                                            core::coarse_now_ms(), ex.started_ns);
  ex.app.metrics.record_verification(r.code);
  const std::string_view code = core::to_string(r.code);
  switch (r.code) {
    case core::VerifyCode::valid: {
      res.status = 200;
      char id[32];
      res.add_header(
          "X-Keygate-Organization-Id",
          std::string_view(id, core::format_id(core::IdKind::organization, r.organization_id, id)));
      res.add_header("X-Keygate-Key-Id",
                     std::string_view(id, core::format_id(core::IdKind::api_key, r.key_id, id)));
      // Always sent, empty for a key in no project: a gateway that copies the X-Keygate-*
      // headers then overwrites whatever a client sent under the same name.
      res.add_header(
          "X-Keygate-Project-Id",
          r.project_id.empty()
              ? std::string_view()
              : std::string_view(id, core::format_id(core::IdKind::project, r.project_id, id)));
      res.add_header("X-Keygate-Key-Type", core::to_string(r.type));
      res.add_header("X-Keygate-Environment", core::to_string(r.environment));
      append_scopes_header(res, r.scopes);
      write_rate_headers(res, r.rate);
      return;
    }
    case core::VerifyCode::malformed:
    case core::VerifyCode::not_found:
    case core::VerifyCode::revoked:
    case core::VerifyCode::expired:
      res.status = 401;
      res.add_header("WWW-Authenticate", "Bearer");
      break;
    case core::VerifyCode::rate_limited:
      res.status = 429;
      write_rate_headers(res, r.rate);
      break;
    default:
      res.status = 403;
      break;
  }
  res.add_header("X-Keygate-Code", code);
}

}  // namespace keygate::handlers
