#include "cluster/etcd_client.hpp"

#include <curl/curl.h>
#include <poll.h>
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <vector>

#include "cluster/etcd_grpc.hpp"

namespace keygate::cluster {

std::vector<std::string> split_endpoints(std::string_view list) {
  std::vector<std::string> out;
  for (size_t at = 0; at <= list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    if (comma > at) out.emplace_back(list.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

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

namespace {

// Appends what libcurl received to the std::string at `out`, up to `Limit` bytes; past it
// the transfer ends (CURLE_WRITE_ERROR): a member or a network that sends without end
// costs the call, not the node's memory.
template <size_t Limit>
size_t collect(char* data, size_t size, size_t count, void* out) {
  auto* answer = static_cast<std::string*>(out);
  if (answer->size() + size * count > Limit) return 0;
  answer->append(data, size * count);
  return size * count;
}

// The gateway's answers (leases, status, alarms) are a few hundred bytes.
constexpr size_t kMaxGatewayAnswer = size_t{1} << 20;

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

// libcurl's receive buffer for HTTP/2: with the default 16 KiB, Debian's libcurl 7.88.1
// hands the tail of an answer larger than it to the write callback only when more bytes
// arrive (a 60 KB watch message came 0.5-1 s late, and a node with transactions above
// 64 KB stalled); with a buffer larger than any message etcd sends (its requests are at
// most --max-request-bytes, 1.5 MiB by default) every message arrives whole at once.
constexpr long kReceiveBuffer = 4L << 20;

// gRPC's status arrives in the trailers (or, for an error alone, the headers); libcurl hands
// both to the header callback.
struct GrpcStatus {
  int code = -1;  // -1: no grpc-status was sent
  std::string message;
};

size_t on_grpc_header(char* data, size_t size, size_t count, void* p) {
  auto* st = static_cast<GrpcStatus*>(p);
  std::string_view line(data, size * count);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  const auto value_of = [&](std::string_view name) -> std::optional<std::string_view> {
    if (line.size() <= name.size() || line[name.size()] != ':') return std::nullopt;
    for (size_t i = 0; i < name.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return std::nullopt;
    std::string_view v = line.substr(name.size() + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    return v;
  };
  if (auto v = value_of("grpc-status")) {
    int code = -1;
    std::from_chars(v->data(), v->data() + v->size(), code);
    st->code = code;
  } else if (auto m = value_of("grpc-message")) {  // percent-encoded (gRPC over HTTP/2)
    st->message.clear();
    for (size_t i = 0; i < m->size(); ++i) {
      unsigned byte = 0;
      if ((*m)[i] == '%' && i + 2 < m->size() &&
          std::from_chars(m->data() + i + 1, m->data() + i + 3, byte, 16).ec == std::errc()) {
        st->message.push_back(static_cast<char>(byte));
        i += 2;
      } else {
        st->message.push_back((*m)[i]);
      }
    }
  }
  return size * count;
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
  CURL* grpc_curl = curl_easy_init();  // its own connection: HTTP/2, which the gateway is not
  simdjson::dom::parser parser;

  ~Impl() {
    curl_easy_cleanup(curl);
    curl_easy_cleanup(grpc_curl);
    curl_slist_free_all(grpc_headers);
  }

  // POSTs `body` to `path` on one endpoint; the HTTP status, or 0 with `error` set.
  long post_once(const std::string& url, const std::string& body, std::string& response,
                 std::string& error, long timeout_ms) {
    curl_easy_reset(curl);
    set_tls();
    char message[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect<kMaxGatewayAnswer>);
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

  // Calls `attempt(base_url, timeout_ms, failure)` on every endpoint in turn, starting
  // with the last that answered, until one answers (1) or refuses (-1: invalid for etcd
  // itself, so every member would say the same; `failure` says why); 0 is no answer.
  template <typename Attempt>
  bool each_endpoint(Attempt&& attempt, std::string& error) {
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
      // The last member to try gets what is left of the budget: leaving it early helps
      // only when another member can answer instead.
      const bool last = tried + 1 == endpoints.size();
      const long timeout =
          last && budget_ms > 0 ? std::max(per_endpoint_ms, budget_ms - spent) : per_endpoint_ms;
      std::string failure;
      const int outcome = attempt(endpoints[current], timeout, failure);
      if (outcome > 0) return true;
      if (outcome < 0) {
        refused = true;
        error = "etcd refused the request: " + failure;
        return false;
      }
      errors += (errors.empty() ? "" : "; ") + failure;
      current = (current + 1) % endpoints.size();
    }
    error = "no etcd endpoint answered: " + errors;
    return false;
  }

  // POSTs to the JSON gateway until a member answers 200 with JSON; parses it into `doc`.
  bool call(const char* path, const std::string& body, simdjson::dom::element& doc,
            std::string& error, std::string& response) {
    return each_endpoint(
        [&](const std::string& base, long timeout, std::string& failure) {
          response.clear();
          const long status = post_once(base + path, body, response, failure, timeout);
          if (status == 200 && parser.parse(response).get(doc) == simdjson::SUCCESS) {
            std::string_view id;
            if (doc["header"]["cluster_id"].get(id) == simdjson::SUCCESS) cluster_id = id;
            return 1;
          }
          if (status == 400) {
            failure = response.substr(0, 200);
            return -1;
          }
          if (status != 0)
            failure =
                base + path + ": HTTP " + std::to_string(status) + " " + response.substr(0, 200);
          return 0;
        },
        error);
  }

  // A unary gRPC call (`/etcdserverpb.KV/Range`, ...) over HTTP/2: cleartext with prior
  // knowledge on http://, ALPN on https://; the answer's message in `reply`, which points
  // into `answer`.
  bool call_grpc(const char* method, const std::string& message, std::string& answer,
                 std::string_view& reply, std::string& error) {
    const std::string body = grpc::frame(message);
    return each_endpoint(
        [&](const std::string& base, long timeout, std::string& failure) {
          // One connection, kept from call to call (a connection per call cost etcd an
          // accept, a gRPC transport and its buffers each time: a tenth of its CPU under
          // 64 writers; perf/RESULTS.md). Debian's libcurl 7.88.1 sends nothing for a
          // request with prior knowledge on a connection it reuses (it stacks a second
          // HTTP/2 layer on it: curl/curl#10643, "Error in the HTTP2 framing layer"), so
          // prior knowledge is asked for only on a fresh connection, and plain HTTP/2 when
          // reusing the live one to the same member. With TLS, ALPN says HTTP/2 either way.
          CURL* c = grpc_curl;
          const auto began = std::chrono::steady_clock::now();
          const std::string url = base + method;
          const bool tls = base.starts_with("https:");
          GrpcStatus status;
          char message_buf[CURL_ERROR_SIZE] = {};
          curl_easy_setopt(c, CURLOPT_URL, url.c_str());
          curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
          curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
          curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
          curl_easy_setopt(c, CURLOPT_HEADERDATA, &status);
          curl_easy_setopt(c, CURLOPT_ERRORBUFFER, message_buf);
          curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, std::min(1'000L, timeout));
          // Every attempt at the call (a kept connection, then fresh ones) shares its time: a
          // member that stalls, then closes, costs the call's time once, not once a try.
          const auto left_ms = [&] {
            return timeout -
                   static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - began)
                                         .count());
          };
          const auto perform = [&](bool fresh) {
            answer.clear();
            status = {};
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, std::max(1L, left_ms()));
            curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
            curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
                             tls     ? CURL_HTTP_VERSION_2TLS
                             : fresh ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
                                     : CURL_HTTP_VERSION_2_0);
            const CURLcode code = curl_easy_perform(c);
            // Whatever failed leaves no connection worth reusing: the next call opens one.
            connected_to = code == CURLE_OK ? base : std::string();
            return code;
          };
          const auto closed = [](CURLcode code) {
            return code == CURLE_GOT_NOTHING || code == CURLE_RECV_ERROR ||
                   code == CURLE_PARTIAL_FILE || code == CURLE_SEND_ERROR || code == CURLE_HTTP2 ||
                   code == CURLE_HTTP2_STREAM;
          };
          const bool reuse = base == connected_to && connection_alive(c);
          CURLcode rc = perform(!reuse);
          long version = 0;
          if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &version);
          // The kept connection was gone after all: closed under the request, or found closed
          // by libcurl, which then opened one asking for HTTP/2 by upgrade, answered in
          // HTTP/1.1 (etcd's 404: no gRPC method ran). Sent again on a fresh connection.
          if (reuse && (closed(rc) || (rc == CURLE_OK && version != CURL_HTTP_VERSION_2_0)) &&
              left_ms() > 0)
            rc = perform(true);
          // A fresh connection that closed after the request left and before any answer came
          // (a member restarted, a connection cut): sent again once, to the same member, as
          // libcurl itself does for a reused HTTP/1.1 connection. Safe for a transaction: a
          // copy that was committed makes its own compares fail, and the caller finds its
          // token in the watch (cluster/README.md, "A lost answer").
          if (closed(rc) && left_ms() > timeout / 2) rc = perform(true);
          curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
          if (rc != CURLE_OK) {
            failure = url + ": " + (message_buf[0] ? message_buf : curl_easy_strerror(rc));
            return 0;
          }
          long http = 0;
          curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
          if (http == 200 && status.code == 0 && grpc::unframe(answer, reply)) return 1;
          // What etcd's gateway answers 400 for: every member would say the same.
          // InvalidArgument (too many operations, too large), FailedPrecondition,
          // OutOfRange (a compacted or future revision).
          if (status.code == 3 || status.code == 9 || status.code == 11) {
            failure = status.message;
            return -1;
          }
          failure = url + ": HTTP " + std::to_string(http) +
                    (status.code >= 0
                         ? " gRPC status " + std::to_string(status.code) + " " + status.message
                         : " without a gRPC status");
          return 0;
        },
        error);
  }

  // The gRPC handle's settings that do not change between calls (set once: see call_grpc).
  curl_slist* grpc_headers = nullptr;
  void setup_grpc() {
    grpc_headers = curl_slist_append(nullptr, "Content-Type: application/grpc");
    grpc_headers = curl_slist_append(grpc_headers, "TE: trailers");
    CURL* c = grpc_curl;
    if (!tls.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, tls.ca_file.c_str());
    if (!tls.cert_file.empty()) curl_easy_setopt(c, CURLOPT_SSLCERT, tls.cert_file.c_str());
    if (!tls.key_file.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, tls.key_file.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, grpc_headers);
    // A unary answer: one message's 5-byte prefix and at most kMaxMessage bytes.
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect<grpc::kMaxMessage + 5>);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_grpc_header);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, kReceiveBuffer);
    curl_easy_setopt(c, CURLOPT_MAXCONNECTS, 1L);  // the connection to the current member
  }

  // The member whose connection the gRPC handle keeps (empty: none), and whether that
  // connection is still open with nothing unread: a member that closed it, or sent a
  // GOAWAY or a PING while it sat idle, gets a fresh one rather than a reused one.
  std::string connected_to;
  static bool connection_alive(CURL* c) {
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD)
      return false;
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) == 0;
  }

  void note_cluster(const grpc::Header& h) {
    if (h.cluster_id) cluster_id = std::to_string(h.cluster_id);
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
  impl_->setup_grpc();
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

void EtcdClient::prefer_endpoint(size_t i) noexcept {
  impl_->current = i % impl_->endpoints.size();
}

void EtcdClient::set_limits(long per_endpoint_ms, long budget_ms) noexcept {
  impl_->per_endpoint_ms = std::max(50L, per_endpoint_ms);
  impl_->budget_ms = std::max(0L, budget_ms);
}

bool EtcdClient::range(std::string_view key, std::string_view range_end, int64_t revision,
                       int64_t limit, RangeResult& out, std::string& error) {
  std::string answer;
  std::string_view reply;
  if (!impl_->call_grpc("/etcdserverpb.KV/Range",
                        grpc::encode_range(key, range_end, revision, limit, false), answer, reply,
                        error))
    return false;
  grpc::Header header;
  int64_t count = 0;
  if (!grpc::decode_range(reply, header, out, count)) {
    error = "etcd answered a range with a message that is not a RangeResponse";
    return false;
  }
  impl_->note_cluster(header);
  return true;
}

bool EtcdClient::count(std::string_view key, std::string_view range_end, int64_t revision,
                       int64_t& out, int64_t& store_revision, std::string& error) {
  std::string answer;
  std::string_view reply;
  if (!impl_->call_grpc("/etcdserverpb.KV/Range",
                        grpc::encode_range(key, range_end, revision, 0, true), answer, reply,
                        error))
    return false;
  grpc::Header header;
  RangeResult unused;
  if (!grpc::decode_range(reply, header, unused, out)) {
    error = "etcd answered a count with a message that is not a RangeResponse";
    return false;
  }
  impl_->note_cluster(header);
  store_revision = header.revision;
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

bool EtcdClient::leadership(std::string& member, std::string& leader, std::string& error) {
  simdjson::dom::element doc;
  std::string response;
  if (!impl_->call("/v3/maintenance/status", "{}", doc, error, response)) return false;
  std::string_view m, l;
  if (doc["header"]["member_id"].get(m) != simdjson::SUCCESS) m = {};
  if (doc["leader"].get(l) != simdjson::SUCCESS) l = {};
  member = m;
  leader = l;
  return true;
}

bool EtcdClient::txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                     TxnResult& out, std::string& error) {
  std::string answer;
  std::string_view reply;
  if (!impl_->call_grpc("/etcdserverpb.KV/Txn", grpc::encode_txn(compares, success), answer, reply,
                        error))
    return false;
  grpc::Header header;
  if (!grpc::decode_txn(reply, compares, header, out)) {
    error = "etcd answered a transaction with a message that is not a TxnResponse";
    return false;
  }
  impl_->note_cluster(header);
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
  std::string pending;  // bytes of a message not yet whole
  const std::function<bool(const WatchBatch&)>* on_batch;
  const std::function<bool()>* keep_going;
  bool stopped = false;
  std::string error;
};

// The watch's answers: a stream of gRPC messages (WatchResponse), split anywhere.
size_t on_watch_bytes(char* data, size_t size, size_t count, void* p) {
  auto* st = static_cast<WatchState*>(p);
  st->pending.append(data, size * count);
  size_t consumed = 0;
  std::string_view message;
  WatchBatch batch;
  grpc::Next next;
  while ((next = grpc::next_message(st->pending, consumed, message)) == grpc::Next::message) {
    bool created = false;
    if (!grpc::decode_watch(message, batch, created)) {
      st->error = "etcd's watch stream sent a message that is not a WatchResponse";
      return 0;  // ends the transfer
    }
    if (created && batch.events.empty()) continue;
    if (!(*st->on_batch)(batch)) {
      st->stopped = true;
      return 0;
    }
  }
  if (next == grpc::Next::bad) {
    st->error = "etcd's watch stream sent a compressed message or one over " +
                std::to_string(grpc::kMaxMessage) + " bytes";
    return 0;
  }
  st->pending.erase(0, consumed);
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
  // Watch.Watch is a stream both ways; keygate sends its one create request and closes its
  // side, which etcd takes as "no more requests", not as the end of the watch (as its JSON
  // gateway does).
  const std::string body = grpc::frame(grpc::encode_watch_create(key, range_end, start_revision));
  WatchState st;
  st.on_batch = &on_batch;
  st.keep_going = &keep_going;
  CURL* curl = impl_->curl;
  const std::string url = endpoint() + "/etcdserverpb.Watch/Watch";
  curl_easy_reset(curl);
  impl_->set_tls();
  char message[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(
      curl, CURLOPT_HTTP_VERSION,
      url.starts_with("https:") ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
  // Its own connection, closed after: the handle's other calls are HTTP/1.1 (the gateway).
  curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, kReceiveBuffer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_watch_bytes);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &st);
  GrpcStatus status;
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_grpc_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &status);
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
  // A member that loses its leader ends the watch (etcd-io/etcd#10819: the "hasleader"
  // metadata), instead of serving a stream that no longer moves. A member that hangs ends
  // nothing: the committer's freshness probe notices it and moves the watch
  // (EtcdCommitter::probe_loop).
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/grpc");
  headers = curl_slist_append(headers, "TE: trailers");
  headers = curl_slist_append(headers, "hasleader: true");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  if (st.stopped) return true;
  long http = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http);
  if (!st.error.empty())
    error = st.error;
  else if (rc != CURLE_OK)
    error = url + ": " + (message[0] ? message : curl_easy_strerror(rc));
  else
    error =
        url + ": the watch stream ended (HTTP " + std::to_string(http) +
        (status.code >= 0 ? ", gRPC status " + std::to_string(status.code) + " " + status.message
                          : "") +
        ")";
  impl_->current = (impl_->current + 1) % impl_->endpoints.size();  // the next try goes elsewhere
  return false;
}

}  // namespace keygate::cluster
