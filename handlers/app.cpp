#include "handlers/app.hpp"

#include <stdexcept>

#include "core/clock.hpp"
#include "core/key_format.hpp"
#include "core/log.hpp"
#include "handlers/auth.hpp"
#include "handlers/console.hpp"
#include "handlers/errors.hpp"
#include "handlers/families.hpp"
#include "handlers/idempotency.hpp"
#include "handlers/metrics.hpp"
#include "handlers/shared_idempotency.hpp"

namespace keygate::handlers {

namespace {

using net::Method;

std::vector<Route> routes() {
  return {
      // The hot paths first: the router tries routes in order.
      {Method::get, "/v1/auth", forward_auth, nullptr, Auth::none, true},
      // Envoy's ext_authz asks with the method of the request it is checking.
      {Method::post, "/v1/auth", forward_auth, nullptr, Auth::none, true},
      {Method::put, "/v1/auth", forward_auth, nullptr, Auth::none, true},
      {Method::patch, "/v1/auth", forward_auth, nullptr, Auth::none, true},
      {Method::del, "/v1/auth", forward_auth, nullptr, Auth::none, true},
      {Method::post, "/v1/keys/verify", verify_key, nullptr, Auth::required, true},
      {Method::get, "/healthz", healthz, nullptr, Auth::none, true},
      {Method::get, "/readyz", readyz, nullptr, Auth::none, true},
      {Method::get, "/metrics", metrics, nullptr, Auth::none, true},
      {Method::get, "/v1/openapi.json", openapi, nullptr, Auth::none, true},
      {Method::get, "/v1/cluster/snapshot", cluster_snapshot, nullptr, Auth::required},
      // The browser console: static files, management-side (on the admin listener when
      // there is one). It authenticates nothing itself: its scripts call the API above.
      {Method::get, "/console", console_root, nullptr, Auth::none},
      {Method::get, "/console/", console_index, nullptr, Auth::none},
      {Method::get, "/console/{file}", console_file, nullptr, Auth::none},
      {Method::post, "/v1/organizations", nullptr, create_organization, Auth::when_sent},
      {Method::get, "/v1/organizations", list_organizations, nullptr, Auth::required},
      {Method::get, "/v1/organizations/{id}", get_organization, nullptr, Auth::required},
      {Method::patch, "/v1/organizations/{id}", nullptr, update_organization, Auth::required},
      {Method::post, "/v1/organizations/{id}/api-keys", nullptr, create_api_key, Auth::required},
      {Method::get, "/v1/organizations/{id}/api-keys", list_api_keys, nullptr, Auth::required},
      {Method::get, "/v1/organizations/{id}/api-keys/{keyId}", get_api_key, nullptr,
       Auth::required},
      {Method::patch, "/v1/organizations/{id}/api-keys/{keyId}", nullptr, update_api_key,
       Auth::required},
      {Method::del, "/v1/organizations/{id}/api-keys/{keyId}", nullptr, revoke_api_key,
       Auth::required},
      {Method::post, "/v1/organizations/{id}/api-keys/{keyId}/rotations", nullptr, rotate_api_key,
       Auth::required},
      {Method::get, "/v1/organizations/{id}/audit-events", list_audit_events, nullptr,
       Auth::required},
      {Method::get, "/v1/organization/audit_logs", list_audit_logs, nullptr, Auth::required},
      // Before /{id}: "activate" and "deactivate" are not certificate ids.
      {Method::post, "/v1/organization/certificates/activate", nullptr, activate_certificates,
       Auth::required},
      {Method::post, "/v1/organization/certificates/deactivate", nullptr, deactivate_certificates,
       Auth::required},
      {Method::get, "/v1/organization/certificates", list_certificates, nullptr, Auth::required},
      {Method::post, "/v1/organization/certificates", nullptr, create_certificate, Auth::required},
      {Method::get, "/v1/organization/certificates/{id}", get_certificate, nullptr, Auth::required},
      {Method::post, "/v1/organization/certificates/{id}", nullptr, update_certificate,
       Auth::required},
      {Method::del, "/v1/organization/certificates/{id}", nullptr, delete_certificate,
       Auth::required},
      {Method::get, "/v1/organization/projects", list_projects, nullptr, Auth::required},
      {Method::post, "/v1/organization/projects", nullptr, create_project, Auth::required},
      {Method::get, "/v1/organization/projects/{id}", get_project, nullptr, Auth::required},
      {Method::post, "/v1/organization/projects/{id}", nullptr, update_project, Auth::required},
      {Method::post, "/v1/organization/projects/{id}/archive", nullptr, archive_project,
       Auth::required},
      {Method::get, "/v1/organization/projects/{id}/api_keys", list_project_keys, nullptr,
       Auth::required},
      {Method::get, "/v1/organization/projects/{id}/api_keys/{keyId}", get_project_key, nullptr,
       Auth::required},
      {Method::del, "/v1/organization/projects/{id}/api_keys/{keyId}", nullptr, delete_project_key,
       Auth::required},
      {Method::get, "/v1/organization/projects/{id}/certificates", list_project_certificates,
       nullptr, Auth::required},
      {Method::post, "/v1/organization/projects/{id}/certificates/activate", nullptr,
       activate_project_certificates, Auth::required},
      {Method::post, "/v1/organization/projects/{id}/certificates/deactivate", nullptr,
       deactivate_project_certificates, Auth::required},
  };
}

// A fresh req_ id in `buf` (32 bytes), also sent as the X-Request-Id header.
std::string_view assign_request_id(net::Response& res, char* buf) {
  thread_local core::IdGenerator ids;
  const std::string_view id(
      buf, core::format_id(core::IdKind::request, ids.next(core::coarse_now_ms()), buf));
  res.add_header("X-Request-Id", id);
  return id;
}

uint64_t elapsed_since(uint64_t start_ns) {
  return core::monotonic_ns() - start_ns;
}

// Off by default (--access-log): a log line costs more than answering /v1/auth.
void access_log(const Exchange& ex, uint64_t elapsed_ns) {
  core::log(core::Level::info, "access",
            {{"request_id", ex.request_id_view()},
             {"method", ex.req.method_name},
             {"path", ex.req.path},
             {"status", static_cast<long long>(ex.res.status)},
             {"ms", static_cast<double>(elapsed_ns) / 1e6}});
}

void finished(Exchange& ex, uint64_t started) {
  const uint64_t ns = elapsed_since(started);
  ex.app.metrics.record_request(ex.route, ex.res.status, ns);
  if (ex.app.config.access_log) access_log(ex, ns);
}

Idempotency::Owner owner_of(const Principal& p) noexcept {
  return p.root ? Idempotency::Owner{} : Idempotency::Owner{p.organization, p.key};
}

// Whether an answer is worth remembering: not a failure of the server's (the next attempt
// may succeed) nor a rate limit's.
bool worth_keeping(const net::Response& res) noexcept {
  return res.status < 500 && res.status != 429;
}

// `idempotency_key` points into the request, which outlives the handler.
net::task<void> run_async(Exchange ex, AsyncHandler handler, std::string_view idempotency_key,
                          uint64_t started) {
  co_await handler(ex);
  if (!idempotency_key.empty())
    ex.app.idempotency.finish(owner_of(ex.principal), idempotency_key, ex.res,
                              worth_keeping(ex.res));
  finished(ex, started);
}

// This node's memory of (principal, Idempotency-Key): true when the request is new and
// should run; else the answer (a replay, or 409) is written.
bool begin_locally(Exchange& ex, std::string_view idem, const core::KeyHash& fingerprint) {
  switch (
      ex.app.idempotency.begin(owner_of(ex.principal), idem, fingerprint, core::now_ms(), ex.res)) {
    case Idempotency::Begin::replay:
      ex.res.add_header("Idempotent-Replayed", "true");
      return false;
    case Idempotency::Begin::reused:
      write_error(ex, core::ErrorCode::idempotency_key_reused,
                  "This Idempotency-Key was used with a different request: use a new key for a "
                  "new request.",
                  "Idempotency-Key");
      return false;
    case Idempotency::Begin::in_progress:
      write_error(ex, core::ErrorCode::idempotency_in_progress,
                  "A request with this Idempotency-Key is still being processed: retry shortly.",
                  "Idempotency-Key");
      return false;
    case Idempotency::Begin::fresh:
      break;
  }
  return true;
}

// The fleet's way (handlers/shared_idempotency.hpp): claim (principal, key) in the shared
// store; a claim already there is a replay (its answer opened with this caller's
// credential) or a 409; a store that does not answer leaves it to this node's memory.
net::task<void> run_shared_idempotent(Exchange ex, AsyncHandler handler, std::string_view idem,
                                      core::KeyHash fingerprint, uint64_t started) {
  const std::string_view fp(reinterpret_cast<const char*>(fingerprint.data()), fingerprint.size());
  // What this node remembers itself (an error it gave, an answer Redis did not take) first.
  switch (
      ex.app.idempotency.find(owner_of(ex.principal), idem, fingerprint, core::now_ms(), ex.res)) {
    case Idempotency::Begin::fresh:
      break;
    case Idempotency::Begin::replay:
      ex.res.add_header("Idempotent-Replayed", "true");
      finished(ex, started);
      co_return;
    case Idempotency::Begin::reused:
    case Idempotency::Begin::in_progress:
      begin_locally(ex, idem, fingerprint);  // writes the same 409
      finished(ex, started);
      co_return;
  }
  core::SharedCall claim;
  claim.op = core::SharedCall::Op::claim;
  claim.name = shared_name(ex.principal, idem);
  claim.value.assign("P").append(fp);
  claim.ttl_ms = ex.app.config.shared_claim_ms;
  co_await shared(*ex.app.shared_store, claim);
  if (!claim.ok) {
    if (begin_locally(ex, idem, fingerprint)) {
      co_await handler(ex);
      ex.app.idempotency.finish(owner_of(ex.principal), idem, ex.res, worth_keeping(ex.res));
    }
    finished(ex, started);
    co_return;
  }
  std::string_view credential;
  read_credential(ex.req, credential);
  const std::array<uint8_t, 32> key = seal_key(credential, idem);
  if (claim.existed) {
    const std::string_view held = claim.value;
    if (held.size() < 1 + fp.size() || held.substr(1, fp.size()) != fp) {
      write_error(ex, core::ErrorCode::idempotency_key_reused,
                  "This Idempotency-Key was used with a different request: use a new key for a "
                  "new request.",
                  "Idempotency-Key");
    } else if (held[0] != 'D') {
      write_error(ex, core::ErrorCode::idempotency_in_progress,
                  "A request with this Idempotency-Key is still being processed (on this or "
                  "another node): retry shortly.",
                  "Idempotency-Key");
    } else if (open_answer(held.substr(1 + fp.size()), key, claim.name, ex.res)) {
      ex.res.add_header("Idempotent-Replayed", "true");
    } else {
      // Filed under this principal's name, sealed for another credential: the stored
      // answer was tampered with. Never run the request again on its strength.
      write_error(ex, core::ErrorCode::storage_unavailable,
                  "The answer kept for this Idempotency-Key cannot be opened: use a new key.");
    }
    finished(ex, started);
    co_return;
  }
  co_await handler(ex);
  const net::Response& res = ex.res;
  // The fleet keeps successful answers. An error changed nothing, so running the request
  // again elsewhere is harmless: this node remembers its small ones (as without Redis),
  // and a tenant cannot fill Redis with refusals, only with writes etcd took.
  core::SharedCall keep;
  keep.name = std::move(claim.name);
  const std::string sealed = res.status < 400 ? seal_answer(res, key, keep.name) : std::string();
  if (!sealed.empty()) {
    keep.op = core::SharedCall::Op::put;
    keep.value.assign("D").append(fp).append(sealed);
    keep.ttl_ms = Idempotency::kTtlMs;
  } else {
    keep.op = core::SharedCall::Op::remove;  // an error, or an answer that could not be sealed
  }
  co_await shared(*ex.app.shared_store, keep);
  // An error, or a store that failed here (its claim stays until it expires, and a retry
  // meanwhile is told to wait): this node remembers the answer, for retries that reach it.
  net::Response scratch;
  if ((keep.op == core::SharedCall::Op::remove || !keep.ok) && worth_keeping(res) &&
      ex.app.idempotency.begin(owner_of(ex.principal), idem, fingerprint, core::now_ms(),
                               scratch) == Idempotency::Begin::fresh)
    ex.app.idempotency.finish(owner_of(ex.principal), idem, res, true);
  finished(ex, started);
}

}  // namespace

App::App(AppContext& context, Listener listener)
    : ctx_(context), router_(routes()), listener_(listener) {
  std::vector<std::string> names;
  for (const Route& r : router_.routes())
    names.push_back(std::string(method_name(r.method)) + " " + std::string(r.pattern));
  unmatched_route_ = static_cast<uint16_t>(names.size());
  names.push_back("unmatched");
  if (names.size() > kMaxRoutes)
    throw std::logic_error("more routes than Metrics has room for: raise kMaxRoutes");
  ctx_.metrics.set_routes(std::move(names));
}

std::optional<net::task<void>> App::handle(const net::Request& req, net::Response& res) {
  const uint64_t started = core::monotonic_ns();
  Exchange ex{req, res, ctx_};
  ex.started_ns = started;
  ex.request_id_len = static_cast<uint8_t>(assign_request_id(res, ex.request_id).size());
  std::optional<net::task<void>> pending = dispatch(ex, started);
  if (!pending) finished(ex, started);  // else run_async records it when the handler is done
  return pending;
}

// Answers what can be answered at once, or returns the handler's coroutine.
std::optional<net::task<void>> App::dispatch(Exchange& ex, uint64_t started) {
  const net::Request& req = ex.req;
  net::Response& res = ex.res;
  std::string allow;
  switch (router_.match(req.method, req.path, ex.route, ex.params, allow)) {
    case Router::Result::not_found:
      ex.route = unmatched_route_;
      write_error(ex, core::ErrorCode::not_found,
                  "There is no such endpoint: check the path against the API reference.");
      return std::nullopt;
    case Router::Result::method_not_allowed:
      ex.route = unmatched_route_;
      res.add_header("Allow", allow);
      write_error(ex, core::ErrorCode::method_not_allowed,
                  "This endpoint does not accept " + std::string(req.method_name) +
                      ": use one of " + allow + ".");
      return std::nullopt;
    case Router::Result::found:
      break;
  }
  const Route& route = router_.route(ex.route);
  if (listener_ == Listener::data_plane && !route.data_plane) {
    write_error(ex, core::ErrorCode::not_found,
                "The management API is served on this server's admin listener "
                "(--admin-listen), not on this one.");
    return std::nullopt;
  }
  if (!ctx_.ready.load(std::memory_order_acquire) && route.sync != healthz &&
      route.sync != readyz && route.sync != openapi) {
    write_error(ex, core::ErrorCode::storage_unavailable,
                "The server is still recovering its data: retry in a moment.");
    return std::nullopt;
  }
  if (route.auth == Auth::required && !authenticate(ex)) return std::nullopt;
  if (route.auth == Auth::when_sent) {
    std::string_view credential;
    if (read_credential(req, credential) != CredentialRead::none && !authenticate(ex))
      return std::nullopt;
  }
  std::string_view idem;
  // Idempotency belongs to the principal that asked (docs/security.md): an anonymous
  // request is never remembered, so nobody can be replayed another's answer (a sign-up's
  // carries the new organization's secret).
  if (req.method == Method::post && route.async && ex.principal.authenticated)
    idem = req.header("idempotency-key");
  if (!idem.empty()) {
    if (idem.size() > 255) {
      write_error(ex, core::ErrorCode::invalid_field, "Idempotency-Key must be at most 255 bytes.",
                  "Idempotency-Key");
      return std::nullopt;
    }
    std::string fp_input;
    fp_input.append(req.method_name).append(" ").append(req.target).append("\n").append(req.body);
    const core::KeyHash fingerprint = core::hash_key(fp_input);
    // In a fleet sharing its answers (--redis), through the store, asynchronously.
    if (ctx_.shared_store)
      return run_shared_idempotent(ex, route.async, idem, fingerprint, started);
    if (!begin_locally(ex, idem, fingerprint)) return std::nullopt;
  }
  if (route.sync) {
    route.sync(ex);
    return std::nullopt;
  }
  return run_async(ex, route.async, idem, started);
}

void App::reject(net::ProtocolError error, net::Response& res) {
  char buf[32];
  const std::string_view id = assign_request_id(res, buf);
  switch (error) {
    case net::ProtocolError::headers_too_large:
      return write_error(
          res, id, core::ErrorCode::headers_too_large,
          "The request line and headers exceed the server's limit: send fewer or smaller headers.");
    case net::ProtocolError::body_too_large:
      return write_error(res, id, core::ErrorCode::body_too_large,
                         "The request body exceeds the server's limit: send a smaller body.");
    case net::ProtocolError::timeout:
      return write_error(res, id, core::ErrorCode::request_timeout,
                         "The request was not received in time: send the whole request promptly.");
    case net::ProtocolError::malformed:
      return write_error(res, id, core::ErrorCode::invalid_request,
                         "The request is not valid HTTP/1.1.");
    case net::ProtocolError::overloaded:
      write_error(res, id, core::ErrorCode::server_busy,
                  "The server holds as many large requests as its memory budget allows "
                  "(--max-buffer-bytes): retry in a moment.");
      res.add_header("Retry-After", "1");
      return;
  }
}

}  // namespace keygate::handlers
