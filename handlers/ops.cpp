// Operations endpoints (docs/api.md §9): liveness, readiness, metrics.
#include "core/clock.hpp"
#include "core/committer.hpp"
#include "handlers/errors.hpp"
#include "handlers/families.hpp"
#include "handlers/metrics.hpp"

namespace keygate::handlers {

extern const std::string_view kOpenApiDocument;

void openapi(Exchange& ex) {
  ex.res.status = 200;
  ex.res.body.assign(kOpenApiDocument);
}

void healthz(Exchange& ex) {
  ex.res.status = 200;
  ex.res.body.append("{\"status\":\"ok\"}");
}

void readyz(Exchange& ex) {
  const bool recovered = ex.app.ready.load(std::memory_order_acquire);
  const bool writable = recovered && ex.app.committer->writable();
  // Cluster mode: a node that cannot show it is in step with etcd vouches for no key
  // (cluster/freshness.hpp), so a load balancer should send verifications elsewhere.
  // (Read only once `ready` is seen: main sets vouch_until before it.)
  const bool vouching = recovered && ex.app.vouching(core::now_ms());
  ex.res.status = recovered && writable && vouching ? 200 : 503;
  ex.res.body.append("{\"status\":\"")
      .append(ex.res.status == 200 ? "ready" : "not_ready")
      .append("\",\"recovered\":");
  ex.res.body.append(recovered ? "true" : "false")
      .append(",\"log_writable\":")
      .append(writable ? "true" : "false")
      .append(",\"vouching\":")
      .append(vouching ? "true" : "false")
      .append("}");
}

void metrics(Exchange& ex) {
  ex.res.status = 200;
  ex.res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  ex.res.body = ex.app.metrics.render(ex.app.index, *ex.app.committer,
                                      ex.app.connection_count ? ex.app.connection_count() : 0,
                                      ex.app.buffers);
  if (ex.app.more_metrics) ex.app.more_metrics(ex.res.body);
}

// A node's newest snapshot, for a node that joins the cluster (cluster/peer_snapshot.hpp):
// the root key only, since it holds every organization, key record and audit event.
void cluster_snapshot(Exchange& ex) {
  if (!ex.principal.root) {
    write_error(ex, core::ErrorCode::missing_scope,
                "Only the cluster's root key reads a node's snapshot.");
    return;
  }
  if (!ex.app.peer_snapshot) {
    write_error(ex, core::ErrorCode::not_found,
                "This node is not in cluster mode: it has no snapshot to give.");
    return;
  }
  int64_t revision = 0;
  int fd = -1;
  uint64_t size = 0;
  std::string identity, why;
  if (!ex.app.peer_snapshot(fd, size, revision, identity, why)) {
    ex.res.add_header("Retry-After", "1");
    write_error(ex, core::ErrorCode::server_busy, "No snapshot to give now: " + why + ".");
    return;
  }
  ex.res.file.set(fd, size);  // sent a chunk at a time (net/connection.cpp)
  ex.res.status = 200;
  ex.res.content_type = "application/octet-stream";
  ex.res.add_header("X-Keygate-Snapshot-Revision", std::to_string(revision));
  ex.res.add_header("X-Keygate-Cluster", identity);
}

}  // namespace keygate::handlers
