// `keygate cluster status`: the nodes registered in etcd (cluster/README.md), each asked
// for its applied revision and readiness over HTTP, against the store's current revision.
#pragma once

#include <string>

#include "cluster/etcd_client.hpp"

namespace keygate::cli {

// Prints one line per node; returns the exit status (1 when etcd cannot be reached or a
// registered node does not answer or is not ready).
int cluster_status(const std::string& etcd_endpoints, const std::string& prefix,
                   const cluster::EtcdTls& tls);

}  // namespace keygate::cli
