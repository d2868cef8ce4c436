#include "cluster/etcd_client.hpp"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <stdexcept>
#include <vector>

#include "core/json_writer.hpp"

namespace keygate::cluster {

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // etcd: every key
}

std::string midpoint(std::string_view low, std::string_view high) {
  // Both as base-256 fractions of the same length (zeros appended), then their average.
  const size_t n = std::max(low.size(), high.size()) + 1;
  std::vector<unsigned> sum(n + 1, 0);
  for (size_t i = n; i-- > 0;) {
    const unsigned a = i < low.size() ? static_cast<unsigned char>(low[i]) : 0;
    const unsigned b = i < high.size() ? static_cast<unsigned char>(high[i]) : 0;
    sum[i + 1] += a + b;
    sum[i] += sum[i + 1] >> 8;
    sum[i + 1] &= 0xff;
  }
  std::string mid(n, '\0');
  unsigned carry = sum[0];  // the bit above the first byte
  for (size_t i = 0; i < n; ++i) {
    const unsigned v = (carry << 8) | sum[i + 1];
    mid[i] = static_cast<char>(v >> 1);
    carry = v & 1;
  }
  while (!mid.empty() && mid.back() == '\0') mid.pop_back();
  if (!(std::string_view(mid) > low && std::string_view(mid) < high)) return {};
  return mid;
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool unbase64(std::string_view text, std::string& out) {
  if (text.size() % 4 != 0) return false;
  out.resize(3 * text.size() / 4);
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return false;
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding's zero bytes: take them off.
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) --len;
  out.resize(len);
  return true;
}

namespace {

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// etcd's gateway writes int64 as a JSON string; absent means 0.
int64_t int64_field(simdjson::dom::element e, const char* name) {
  std::string_view text;
  if (e[name].get(text) != simdjson::SUCCESS) {
    int64_t v = 0;
    return e[name].get(v) == simdjson::SUCCESS ? v : 0;
  }
  int64_t v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

bool read_kv(simdjson::dom::element e, KeyValue& kv) {
  std::string_view key, value;
  if (e["key"].get(key) != simdjson::SUCCESS || !unbase64(key, kv.key)) return false;
  if (e["value"].get(value) == simdjson::SUCCESS) {
    if (!unbase64(value, kv.value)) return false;
  } else {
    kv.value.clear();
  }
  kv.create_revision = int64_field(e, "create_revision");
  kv.mod_revision = int64_field(e, "mod_revision");
  return true;
}

bool read_watch_batch(simdjson::dom::element line, WatchBatch& b) {
  simdjson::dom::element result;
  if (line["result"].get(result) != simdjson::SUCCESS) return false;
  b.revision = int64_field(result["header"], "revision");
  b.compact_revision = int64_field(result, "compact_revision");
  bool canceled = false;
  b.canceled = result["canceled"].get(canceled) == simdjson::SUCCESS && canceled;
  b.events.clear();
  simdjson::dom::array events;
  if (result["events"].get(events) != simdjson::SUCCESS) return true;
  for (simdjson::dom::element ev : events) {
    WatchEvent we;
    std::string_view type;
    we.deleted = ev["type"].get(type) == simdjson::SUCCESS && type == "DELETE";
    if (!read_kv(ev["kv"], we.kv)) return false;
    b.events.push_back(std::move(we));
  }
  return true;
}

}  // namespace

struct EtcdClient::Impl {
  std::vector<std::string> endpoints;
  EtcdTls tls;
  std::string cluster_id;

  void set_tls() {
    if (!tls.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, tls.ca_file.c_str());
    if (!tls.cert_file.empty()) curl_easy_setopt(curl, CURLOPT_SSLCERT, tls.cert_file.c_str());
    if (!tls.key_file.empty()) curl_easy_setopt(curl, CURLOPT_SSLKEY, tls.key_file.c_str());
  }
  size_t current = 0;
  long per_endpoint_ms = 5'000;
  long budget_ms = 0;    // 0: every endpoint gets its turn
  bool refused = false;  // the last call was refused by etcd (HTTP 400), not unanswered
  CURL* curl = curl_easy_init();
  simdjson::dom::parser parser;

  ~Impl() { curl_easy_cleanup(curl); }

  // POSTs `body` to `path` on one endpoint; the HTTP status, or 0 with `error` set.
  long post_once(const std::string& url, const std::string& body, std::string& response,
                 std::string& error, long timeout_ms) {
    curl_easy_reset(curl);
    set_tls();
    char message[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, message);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::min(1'000L, timeout_ms));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    const CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
      error = url + ": " + (message[0] ? message : curl_easy_strerror(rc));
      return 0;
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    return status;
  }

  // POSTs to every endpoint in turn until one answers 200 with JSON; parses it into `doc`.
  bool call(const char* path, const std::string& body, simdjson::dom::element& doc,
            std::string& error, std::string& response) {
    std::string errors;
    refused = false;
    const auto began = std::chrono::steady_clock::now();
    for (size_t tried = 0; tried < endpoints.size(); ++tried) {
      const long spent = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::steady_clock::now() - began)
                                               .count());
      if (tried > 0 && budget_ms > 0 && spent >= budget_ms) {
        errors += "; out of time (" + std::to_string(budget_ms) + " ms) before the other endpoints";
        break;
      }
      const std::string& base = endpoints[current];
      response.clear();
      std::string failure;
      // The last member to try gets what is left of the budget: leaving it early helps
      // only when another member can answer instead.
      const bool last = tried + 1 == endpoints.size();
      const long timeout =
          last && budget_ms > 0 ? std::max(per_endpoint_ms, budget_ms - spent) : per_endpoint_ms;
      const long status = post_once(base + path, body, response, failure, timeout);
      if (status == 200 && parser.parse(response).get(doc) == simdjson::SUCCESS) {
        std::string_view id;
        if (doc["header"]["cluster_id"].get(id) == simdjson::SUCCESS) cluster_id = id;
        return true;
      }
      if (status == 400) {  // invalid for etcd itself: every member would say the same
        refused = true;
        error = "etcd refused the request: " + response.substr(0, 200);
        return false;
      }
      if (status != 0)
        failure = base + path + ": HTTP " + std::to_string(status) + " " + response.substr(0, 200);
      errors += (errors.empty() ? "" : "; ") + failure;
      current = (current + 1) % endpoints.size();
    }
    error = "no etcd endpoint answered: " + errors;
    return false;
  }
};

EtcdClient::EtcdClient(std::vector<std::string> endpoints, EtcdTls tls)
    : impl_(std::make_unique<Impl>()) {
  impl_->tls = std::move(tls);
  static const bool initialised = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!initialised || !impl_->curl) throw std::runtime_error("libcurl could not be initialised");
  if (endpoints.empty()) throw std::invalid_argument("no etcd endpoint");
  for (auto& e : endpoints)
    while (e.ends_with('/')) e.pop_back();
  impl_->endpoints = std::move(endpoints);
}

EtcdClient::~EtcdClient() = default;

const std::string& EtcdClient::cluster_id() const noexcept {
  return impl_->cluster_id;
}

const std::string& EtcdClient::endpoint() const noexcept {
  return impl_->endpoints[impl_->current];
}

bool EtcdClient::last_call_refused() const noexcept {
  return impl_->refused;
}

void EtcdClient::skip_endpoint() noexcept {
  impl_->current = (impl_->current + 1) % impl_->endpoints.size();
}

void EtcdClient::set_limits(long per_endpoint_ms, long budget_ms) noexcept {
  impl_->per_endpoint_ms = std::max(50L, per_endpoint_ms);
  impl_->budget_ms = std::max(0L, budget_ms);
}

bool EtcdClient::range(std::string_view key, std::string_view range_end, int64_t revision,
                       int64_t limit, RangeResult& out, std::string& error) {
  std::string body;
  core::JsonWriter w(body);
  w.begin_object().field("key", std::string_view(base64(key)));
  if (!range_end.empty()) w.field("range_end", std::string_view(base64(range_end)));
  if (revision) w.field("revision", std::string_view(std::to_string(revision)));
  if (limit) w.field("limit", std::string_view(std::to_string(limit)));
  w.end_object();
  simdjson::dom::element doc;
  std::string response;
  if (!impl_->call("/v3/kv/range", body, doc, error, response)) return false;
  out.revision = int64_field(doc["header"], "revision");
  bool more = false;
  out.more = doc["more"].get(more) == simdjson::SUCCESS && more;
  out.kvs.clear();
  simdjson::dom::array kvs;
  if (doc["kvs"].get(kvs) == simdjson::SUCCESS)
    for (simdjson::dom::element e : kvs) {
      KeyValue kv;
      if (!read_kv(e, kv)) {
        error = "etcd answered a range with a key or value that is not base64";
        return false;
      }
      out.kvs.push_back(std::move(kv));
    }
  return true;
}

bool EtcdClient::count(std::string_view key, std::string_view range_end, int64_t revision,
                       int64_t& out, int64_t& store_revision, std::string& error) {
  std::string body;
  core::JsonWriter w(body);
  w.begin_object().field("key", std::string_view(base64(key)));
  if (!range_end.empty()) w.field("range_end", std::string_view(base64(range_end)));
  if (revision) w.field("revision", std::string_view(std::to_string(revision)));
  w.field("count_only", true).end_object();
  simdjson::dom::element doc;
  std::string response;
  if (!impl_->call("/v3/kv/range", body, doc, error, response)) return false;
  out = int64_field(doc, "count");
  store_revision = int64_field(doc["header"], "revision");
  return true;
}

bool EtcdClient::status(StoreStatus& out, std::string& error) {
  simdjson::dom::element doc;
  std::string response;
  if (!impl_->call("/v3/maintenance/status", "{}", doc, error, response)) return false;
  out.db_size = int64_field(doc, "dbSize");
  out.db_size_in_use = int64_field(doc, "dbSizeInUse");
  out.quota = int64_field(doc, "dbSizeQuota");
  out.alarms.clear();
  if (!impl_->call("/v3/maintenance/alarm", R"({"action":"GET"})", doc, error, response))
    return false;
  simdjson::dom::array alarms;
  if (doc["alarms"].get(alarms) == simdjson::SUCCESS)
    for (simdjson::dom::element a : alarms) {
      std::string_view name;
      if (a["alarm"].get(name) == simdjson::SUCCESS) out.alarms.emplace_back(name);
    }
  return true;
}

bool EtcdClient::txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                     TxnResult& out, std::string& error) {
  std::string body;
  core::JsonWriter w(body);
  w.begin_object().key("compare").begin_array();
  for (const Compare& c : compares) {
    const bool mod = c.target == Compare::Target::mod;
    w.begin_object()
        .field("key", std::string_view(base64(c.key)))
        .field("target", mod ? "MOD" : "CREATE")
        .field("result", "EQUAL")
        .field(mod ? "mod_revision" : "create_revision",
               std::string_view(std::to_string(c.revision)))
        .end_object();
  }
  w.end_array().key("success").begin_array();
  for (const Op& op : success) {
    w.begin_object();
    if (op.kind == Op::Kind::put) {
      w.key("request_put")
          .begin_object()
          .field("key", std::string_view(base64(op.key)))
          .field("value", std::string_view(base64(op.value)));
      if (op.lease) w.field("lease", std::string_view(std::to_string(op.lease)));
      w.end_object();
    } else {
      w.key("request_delete_range").begin_object().field("key", std::string_view(base64(op.key)));
      if (!op.range_end.empty()) w.field("range_end", std::string_view(base64(op.range_end)));
      w.end_object();
    }
    w.end_object();
  }
  // Failure: read every compared key (no value), to tell which compare failed.
  w.end_array().key("failure").begin_array();
  for (const Compare& c : compares)
    w.begin_object()
        .key("request_range")
        .begin_object()
        .field("key", std::string_view(base64(c.key)))
        .field("keys_only", true)
        .end_object()
        .end_object();
  w.end_array().end_object();
  simdjson::dom::element doc;
  std::string response;
  if (!impl_->call("/v3/kv/txn", body, doc, error, response)) return false;
  bool succeeded = false;
  out.succeeded = doc["succeeded"].get(succeeded) == simdjson::SUCCESS && succeeded;
  out.revision = int64_field(doc["header"], "revision");
  out.failed.clear();
  simdjson::dom::array responses;
  if (out.succeeded || doc["responses"].get(responses) != simdjson::SUCCESS) return true;
  for (simdjson::dom::element r : responses) {
    const size_t i = out.failed.size();
    if (i == compares.size()) break;
    int64_t create = 0, mod = 0;  // of the key as it is: 0 when absent
    simdjson::dom::array kvs;
    if (r["response_range"]["kvs"].get(kvs) == simdjson::SUCCESS)
      for (simdjson::dom::element kv : kvs) {
        create = int64_field(kv, "create_revision");
        mod = int64_field(kv, "mod_revision");
        break;
      }
    const Compare& c = compares[i];
    out.failed.push_back((c.target == Compare::Target::mod ? mod : create) != c.revision);
  }
  if (out.failed.size() != compares.size()) out.failed.clear();  // unknown: all may have failed
  return true;
}

int64_t EtcdClient::lease_grant(int64_t ttl_seconds, std::string& error) {
  const std::string body = "{\"TTL\":\"" + std::to_string(ttl_seconds) + "\"}";
  simdjson::dom::element doc;
  std::string response;
  if (!impl_->call("/v3/lease/grant", body, doc, error, response)) return 0;
  const int64_t id = int64_field(doc, "ID");
  if (!id) error = "etcd granted no lease: " + response.substr(0, 200);
  return id;
}

int64_t EtcdClient::lease_keepalive(int64_t id, std::string& error) {
  const std::string body = "{\"ID\":\"" + std::to_string(id) + "\"}";
  simdjson::dom::element doc;
  std::string response;
  // The gateway answers one renewal per request, as a stream of one result.
  if (!impl_->call("/v3/lease/keepalive", body, doc, error, response)) return -1;
  return int64_field(doc["result"], "TTL");
}

namespace {

struct WatchState {
  std::string pending;  // bytes of a line not yet complete
  const std::function<bool(const WatchBatch&)>* on_batch;
  const std::function<bool()>* keep_going;
  simdjson::dom::parser parser;
  bool stopped = false;
  bool created = false;
  std::string error;
};

size_t on_watch_bytes(char* data, size_t size, size_t count, void* p) {
  auto* st = static_cast<WatchState*>(p);
  st->pending.append(data, size * count);
  size_t start = 0, nl;
  while ((nl = st->pending.find('\n', start)) != std::string::npos) {
    const std::string_view line(st->pending.data() + start, nl - start);
    start = nl + 1;
    if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
    simdjson::dom::element doc;
    WatchBatch batch;
    if (st->parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS ||
        !read_watch_batch(doc, batch)) {
      st->error = "etcd's watch stream sent a line that is not a watch response: " +
                  std::string(line.substr(0, 200));
      return 0;  // ends the transfer
    }
    bool created = false;
    if (doc["result"]["created"].get(created) == simdjson::SUCCESS && created &&
        batch.events.empty()) {
      st->created = true;
      continue;
    }
    if (!(*st->on_batch)(batch)) {
      st->stopped = true;
      return 0;
    }
  }
  st->pending.erase(0, start);
  return size * count;
}

int on_watch_progress(void* p, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* st = static_cast<WatchState*>(p);
  if (!(*st->keep_going)()) {
    st->stopped = true;
    return 1;
  }
  return 0;
}

}  // namespace

bool EtcdClient::watch(std::string_view key, std::string_view range_end, int64_t start_revision,
                       const std::function<bool(const WatchBatch&)>& on_batch,
                       const std::function<bool()>& keep_going, std::string& error) {
  std::string body;
  core::JsonWriter w(body);
  w.begin_object().key("create_request").begin_object().field("key", std::string_view(base64(key)));
  if (!range_end.empty()) w.field("range_end", std::string_view(base64(range_end)));
  w.field("start_revision", std::string_view(std::to_string(start_revision)))
      .end_object()
      .end_object();

  WatchState st;
  st.on_batch = &on_batch;
  st.keep_going = &keep_going;
  CURL* curl = impl_->curl;
  const std::string url = endpoint() + "/v3/watch";
  curl_easy_reset(curl);
  impl_->set_tls();
  char message[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_watch_bytes);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_watch_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &st);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, message);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1'000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  // A member that is gone without closing the connection (a killed host) is noticed by TCP
  // keepalive probes rather than never.
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 2L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 1L);
  // A member that loses its leader ends the watch (etcd-io/etcd#10819), instead of serving
  // a stream that no longer moves. A member that hangs ends nothing: the committer's
  // freshness probe notices it and moves the watch (EtcdCommitter::probe_loop).
  curl_slist* headers = curl_slist_append(nullptr, "Grpc-Metadata-hasleader: true");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  if (st.stopped) return true;
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (!st.error.empty())
    error = st.error;
  else if (rc != CURLE_OK)
    error = url + ": " + (message[0] ? message : curl_easy_strerror(rc));
  else
    error = url + ": the watch stream ended (HTTP " + std::to_string(status) + ")";
  impl_->current = (impl_->current + 1) % impl_->endpoints.size();  // the next try goes elsewhere
  return false;
}

}  // namespace keygate::cluster
