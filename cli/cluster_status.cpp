#include "cli/cluster_status.hpp"

#include <curl/curl.h>
#include <simdjson.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "cluster/etcd_client.hpp"

namespace keygate::cli {

namespace {

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// GET url: the status (0 when it did not answer) and body.
long get(const std::string& url, std::string& body) {
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return 0;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 2'000L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  if (curl_easy_perform(curl.get()) != CURLE_OK) return 0;
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  return status;
}

// The value of an unlabelled sample in Prometheus text; -1 when absent.
double sample(const std::string& text, const std::string& name) {
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

}  // namespace

int cluster_status(const std::string& etcd_endpoints, const std::string& prefix_flag,
                   const cluster::EtcdTls& tls) {
  const std::vector<std::string> endpoints = cluster::split_endpoints(etcd_endpoints);
  if (endpoints.empty()) {
    std::fprintf(stderr, "keygate cluster status: --etcd (or KEYGATE_ETCD) names no endpoint\n");
    return 2;
  }
  std::string prefix = prefix_flag;
  while (prefix.ends_with('/')) prefix.pop_back();
  cluster::EtcdClient client(endpoints, tls);
  cluster::RangeResult nodes;
  std::string error;
  const std::string from = prefix + "/nodes/";
  if (!client.range(from, cluster::prefix_end(from), 0, 0, nodes, error)) {
    std::fprintf(stderr, "keygate cluster status: %s\n", error.c_str());
    return 1;
  }
  // Fence keys (cluster/freshness.hpp) live beside the registrations and are not nodes.
  std::erase_if(nodes.kvs, [](const cluster::KeyValue& kv) {
    return kv.key.find("/nodes/fence-") != std::string::npos;
  });
  std::printf("etcd %s: revision %lld, %zu node(s) registered\n", client.endpoint().c_str(),
              static_cast<long long>(nodes.revision), nodes.kvs.size());
  int status = 0;
  cluster::StoreStatus store;
  if (client.status(store, error)) {
    std::string alarms;
    for (const std::string& a : store.alarms) alarms += (alarms.empty() ? "" : ",") + a;
    std::printf("etcd database: %.1f MiB (%.1f MiB in use)%s; alarms: %s\n",
                static_cast<double>(store.db_size) / 1048576.0,
                static_cast<double>(store.db_size_in_use) / 1048576.0,
                store.quota > 0 ? (", quota " + std::to_string(store.quota >> 20) + " MiB").c_str()
                                : " (quota: etcd's --quota-backend-bytes, 2 GiB by default)",
                alarms.empty() ? "none" : alarms.c_str());
    if (!store.alarms.empty()) status = 1;
  }
  std::printf("%-28s %-10s %-10s %-9s %-6s %s\n", "node", "applied", "behind", "etcd age", "ready",
              "started from");
  simdjson::dom::parser parser;
  for (const auto& kv : nodes.kvs) {
    simdjson::dom::element doc;
    std::string_view url;
    if (parser.parse(kv.value).get(doc) != simdjson::SUCCESS ||
        doc["url"].get(url) != simdjson::SUCCESS) {
      std::printf("%-28s (a registration that is not keygate's)\n", kv.key.c_str());
      status = 1;
      continue;
    }
    std::string metrics, ready;
    const std::string base(url);
    const bool answered = get(base + "/metrics", metrics) == 200;
    const long ready_status = get(base + "/readyz", ready);
    if (!answered) {
      std::printf("%-28s does not answer\n", base.c_str());
      status = 1;
      continue;
    }
    const double applied = sample(metrics, "keygate_cluster_applied_revision");
    const double age = sample(metrics, "keygate_cluster_contact_age_seconds");
    // How it started (cluster/README.md, "A node joins"): its own snapshot, a peer's, or
    // a full load from etcd. Registered by nodes since that was added.
    std::string_view started;
    if (doc["started"].get(started) != simdjson::SUCCESS) started = "?";
    std::printf("%-28s %-10.0f %-10.0f %-9.1f %-6s %.*s\n", base.c_str(), applied,
                applied >= 0 ? static_cast<double>(nodes.revision) - applied : -1.0, age,
                ready_status == 200 ? "yes" : "no", static_cast<int>(started.size()),
                started.data());
    if (ready_status != 200) status = 1;
  }
  return status;
}

}  // namespace keygate::cli
