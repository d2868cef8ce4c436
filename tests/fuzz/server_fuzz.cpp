// Fuzz target: the whole server, in process: the reactor, the connection state machine,
// the router and every handler family, the writer and the log (in a scratch directory),
// reached over a loopback socket as a client reaches them. The first byte of an input picks
// what to send:
// - a request with the rest of the input as its JSON body, to one of the endpoints that
//   take a body (organizations, API keys, rotations, verification, certificates, projects,
//   project certificates; $P and $C in it name a fixture project and certificate), with
//   credentials that are allowed there, optionally chunked and with an Idempotency-Key;
// - the rest of the input as a query string (lists, the audit log's filters) or as the
//   headers a verification reads;
// - the rest of the input as raw bytes on a fresh connection (pipelining, chunked bodies,
//   Expect, limits, garbage), half-closed after.
// Whatever is sent, every answer must be a well-formed HTTP response, none may be a 5xx,
// and an error must carry its envelope (`error.message`). A crash, a hang (5 s), or an
// allocation beyond libFuzzer's limit is a finding, like a broken answer (abort()).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/index.hpp"
#include "core/state_machine.hpp"
#include "handlers/app.hpp"
#include "handlers/idempotency.hpp"
#include "handlers/metrics.hpp"
#include "net/server.hpp"
#include "persistence/data_dir.hpp"
#include "persistence/journal.hpp"
#include "persistence/recovery.hpp"
#include "persistence/root_key.hpp"

namespace {

using namespace keygate;

[[noreturn]] void finding(const char* what, std::string_view detail) {
  std::fprintf(stderr, "server fuzz: %s\n%.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

thread_local std::optional<core::RcuThread> t_rcu;

// One HTTP response read off a byte stream; false when the bytes end before one does.
struct Response {
  int status = 0;
  std::string content_type;
  std::string body;
};

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  return true;
}

// Parses the response at the front of `stream` and removes it; nullopt if it is not whole
// yet. A response that is not HTTP/1.1 as keygate writes it is a finding.
std::optional<Response> take_response(std::string& stream) {
  const size_t end = stream.find("\r\n\r\n");
  if (end == std::string::npos) return std::nullopt;
  const std::string_view head(stream.data(), end);
  if (!head.starts_with("HTTP/1.1 ") || head.size() < 12)
    finding("not an HTTP/1.1 status line", head);
  Response r;
  r.status = std::atoi(std::string(head.substr(9, 3)).c_str());
  if (r.status < 100 || r.status > 599) finding("status out of range", head);
  size_t length = 0;
  for (size_t at = head.find("\r\n"); at != std::string_view::npos;) {
    const size_t next = head.find("\r\n", at + 2);
    const std::string_view line = head.substr(
        at + 2, next == std::string_view::npos ? std::string_view::npos : next - at - 2);
    if (iequals_prefix(line, "content-length:"))
      length = std::strtoull(std::string(line.substr(15)).c_str(), nullptr, 10);
    else if (iequals_prefix(line, "content-type:"))
      r.content_type = std::string(line.substr(line.find_first_not_of(' ', 13)));
    else if (iequals_prefix(line, "transfer-encoding:"))
      finding("keygate answers with Content-Length only", head);
    at = next;
  }
  if (r.status < 200) length = 0;  // 100 Continue
  if (stream.size() < end + 4 + length) return std::nullopt;
  r.body = stream.substr(end + 4, length);
  stream.erase(0, end + 4 + length);
  return r;
}

void judge(const Response& r, std::string_view request) {
  if (r.status >= 500) finding("a 5xx answer", std::string(request) + "\n--\n" + r.body);
  if (r.status < 200 || r.content_type.find("json") == std::string::npos || r.body.empty()) return;
  static thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(r.body).get(doc)) finding("an answer that is not JSON", r.body);
  if (r.status >= 400) {
    std::string_view message;
    if (doc["error"]["message"].get(message) || message.empty())
      finding("an error without its envelope", r.body);
  }
}

class Client {
 public:
  explicit Client(uint16_t port) : port_(port) {}
  ~Client() { close(); }

  // Sends `bytes` and reads one final answer, or every answer until the server closes
  // when `half_close`.
  void exchange(std::string_view bytes, bool half_close, std::vector<Response>& out) {
    // A keep-alive connection the server has closed since (after a 413, say) takes the
    // bytes and then reads as closed with nothing: once more on a fresh connection.
    for (int attempt = 0;; ++attempt) {
      if (fd_ < 0) connect();
      if (!send_all(bytes) && attempt == 0) {
        close();
        continue;
      }
      if (half_close) ::shutdown(fd_, SHUT_WR);
      if (read_answers(bytes, half_close, out) || half_close) return;
      if (attempt > 0) finding("a fresh connection closed without an answer", bytes);
    }
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  // False when the connection was closed before a single byte of an answer came.
  bool read_answers(std::string_view bytes, bool half_close, std::vector<Response>& out) {
    std::string stream;
    bool any = false;
    char buf[16384];
    for (;;) {
      while (auto r = take_response(stream)) {
        out.push_back(std::move(*r));
        if (!half_close && out.back().status >= 200) return true;
      }
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        stream.append(buf, static_cast<size_t>(n));
        any = true;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) finding("no answer in 5 s", bytes);
      close();
      if (!stream.empty()) finding("a response cut short", stream);
      if (half_close || !any) return any;
      finding("the connection closed without a final answer", bytes);
    }
  }

  void connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      finding("cannot connect", std::strerror(errno));
  }
  bool send_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  uint16_t port_;
  int fd_ = -1;
};

std::string self_signed_pem() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86'400L * 365);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("fuzz"), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_set_pubkey(x, key);
  X509_sign(x, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  X509_free(x);
  EVP_PKEY_free(key);
  return pem;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string field(std::string_view json, std::string_view name) {
  static simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc)) finding("fixture answer not JSON", json);
  std::string_view v;
  for (const char* path : {"/data/", "/"}) {
    if (!doc.at_pointer(std::string(path) + std::string(name)).get(v)) return std::string(v);
  }
  finding("fixture answer lacks a field", json);
}

struct Server {
  std::string dir_path;
  std::unique_ptr<persistence::DataDir> dir;
  core::RcuThread rcu;
  core::Index index;
  core::StateMachine state{index};
  handlers::Idempotency idempotency;
  handlers::Metrics metrics;
  std::unique_ptr<handlers::AppContext> ctx;
  std::unique_ptr<handlers::App> app;
  std::unique_ptr<persistence::Journal> journal;
  std::unique_ptr<net::Server> server;
  std::unique_ptr<Client> client;
  // Fixtures: A is the organization whose PATCHes are fuzzed; B holds the keys and the
  // certificate the other requests act on.
  std::string root, org_a, org_b, admin_b, key_t, cert, project;

  Server() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/keygate-fuzz-XXXXXX";
    if (!::mkdtemp(templ.data())) finding("mkdtemp", std::strerror(errno));
    dir_path = templ;
    dir = std::make_unique<persistence::DataDir>(dir_path + "/data");
    const persistence::RootKey rk = persistence::load_root_key("", dir->path());
    std::ifstream in(rk.path);
    std::getline(in, root);
    handlers::AppConfig config;
    config.root_hash = rk.hash;
    ctx.reset(new handlers::AppContext{index, idempotency, metrics, config});
    app = std::make_unique<handlers::App>(*ctx);
    const auto rep = persistence::recover(*dir, state, persistence::RecoverMode::start);
    journal =
        std::make_unique<persistence::Journal>(*dir, state, rep, persistence::JournalOptions{});
    journal->start();
    ctx->committer = journal.get();
    net::ReactorOptions ropts;
    ropts.header_timeout = std::chrono::milliseconds(1'000);
    ropts.thread_start = [] { t_rcu.emplace(); };
    ropts.thread_stop = [] { t_rcu.reset(); };
    server = std::make_unique<net::Server>(*app, ropts);
    net::Endpoint at;
    at.port = 0;
    server->start(at, 1);
    ctx->connection_count = [this] { return server->connections(); };
    ctx->buffers = &server->buffers();
    ctx->ready.store(true);
    client = std::make_unique<Client>(server->bound().port);

    org_a = field(call("POST", "/v1/organizations", root, R"({"name":"fuzz a"})"), "id");
    const std::string b = call("POST", "/v1/organizations", root, R"({"name":"fuzz b"})");
    org_b = field(b, "id");
    admin_b = field(b, "api_key/revealed_key");
    key_t = field(
        call("POST", "/v1/organizations/" + org_b + "/api-keys", root, R"({"name":"target"})"),
        "id");
    cert =
        field(call("POST", "/v1/organization/certificates", admin_b,
                   R"({"name":"fixture","certificate":")" + json_escape(self_signed_pem()) + "\"}"),
              "id");
    project =
        field(call("POST", "/v1/organization/projects", admin_b, R"({"name":"fixture"})"), "id");
  }

  void stop() {
    client.reset();
    server->stop();
    server->join();
    journal->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_path, ec);
  }

  // A fixture request: must succeed.
  std::string call(std::string_view method, const std::string& path, const std::string& key,
                   std::string_view body) {
    std::vector<Response> out;
    client->exchange(request(method, path, key, body, false, {}), false, out);
    if (out.empty() || out.back().status >= 300) finding("fixture request failed", path);
    return out.back().body;
  }

  static std::string request(std::string_view method, std::string_view target, std::string_view key,
                             std::string_view body, bool chunked, std::string_view extra_headers) {
    std::string r;
    r.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: fuzz\r\n");
    if (!key.empty()) r.append("Authorization: Bearer ").append(key).append("\r\n");
    r.append(extra_headers);
    if (method != "GET") {
      if (chunked) {
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", body.size());
        r.append("Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n");
        if (!body.empty()) r.append(size).append(body).append("\r\n");
        r.append("0\r\n\r\n");
        return r;
      }
      r.append("Content-Type: application/json\r\nContent-Length: ")
          .append(std::to_string(body.size()))
          .append("\r\n");
    }
    r.append("\r\n").append(body);
    return r;
  }
};

Server* g_server = nullptr;

// What may go into a request target or a header value as it is: the rest is
// percent-encoded (a query) or dropped (a header), as a client library would.
std::string encode_query(std::string_view raw) {
  std::string out;
  for (unsigned char c : raw) {
    if (c > 0x20 && c < 0x7f && c != '#' && c != '%') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

std::string header_value(std::string_view raw) {
  std::string out;
  for (unsigned char c : raw)
    if (c >= 0x20 && c != 0x7f) out += static_cast<char>(c);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_server) {
    g_server = new Server();
    std::atexit([] { g_server->stop(); });
  }
  Server& s = *g_server;
  if (size < 2) return 0;
  const uint8_t selector = data[0] % 21;
  const uint8_t flags = data[1];
  // In a JSON body, $P and $C stand for the fixture project's and certificate's ids, which
  // the fuzzer cannot know (json.dict has both).
  std::string body(reinterpret_cast<const char*>(data + 2), size - 2);
  for (const auto& [token, id] :
       {std::pair<std::string_view, const std::string&>{"$P", s.project}, {"$C", s.cert}})
    for (size_t at = body.find(token); at != std::string::npos;
         at = body.find(token, at + id.size()))
      body.replace(at, token.size(), id);
  const std::string_view rest(body);
  const bool chunked = flags & 1;
  std::string headers;
  if (flags & 2) headers += "Idempotency-Key: fuzz-" + std::to_string(flags >> 4) + "\r\n";

  const std::string b = "/v1/organizations/" + s.org_b;
  const std::string k = b + "/api-keys/" + s.key_t;
  std::string bytes;
  bool raw = false;
  switch (selector) {
    case 0:
      bytes = Server::request("POST", "/v1/organizations", s.root, rest, chunked, headers);
      break;
    case 1:
      bytes =
          Server::request("PATCH", "/v1/organizations/" + s.org_a, s.root, rest, chunked, headers);
      break;
    case 2:
      bytes = Server::request("POST", b + "/api-keys", s.root, rest, chunked, headers);
      break;
    case 3:
      bytes = Server::request("PATCH", k, s.root, rest, chunked, headers);
      break;
    case 4:
      bytes = Server::request("POST", k + "/rotations", s.root, rest, chunked, headers);
      break;
    case 5:
      bytes = Server::request("POST", "/v1/keys/verify", s.admin_b, rest, chunked, headers);
      break;
    case 6:
      bytes = Server::request("POST", "/v1/organization/certificates", s.admin_b, rest, chunked,
                              headers);
      break;
    case 7:
      bytes = Server::request("POST", "/v1/organization/certificates/" + s.cert, s.admin_b, rest,
                              chunked, headers);
      break;
    case 8:
      bytes = Server::request("POST", "/v1/organization/certificates/activate", s.admin_b, rest,
                              chunked, headers);
      break;
    case 9:
      bytes = Server::request("POST", "/v1/organization/certificates/deactivate", s.admin_b, rest,
                              chunked, headers);
      break;
    case 10:
      bytes = Server::request("GET", b + "/api-keys?" + encode_query(rest), s.admin_b, {}, false,
                              headers);
      break;
    case 11:
      bytes = Server::request("GET", "/v1/organizations?" + encode_query(rest), s.root, {}, false,
                              headers);
      break;
    case 12:
      bytes = Server::request("GET", "/v1/organization/certificates?" + encode_query(rest),
                              s.admin_b, {}, false, headers);
      break;
    case 13: {
      // The headers a verification reads, one per line of the input.
      std::string h;
      const char* names[] = {"Origin: ", "X-Client-Cert-Sha256: ", "Authorization: "};
      size_t i = 0;
      for (size_t at = 0; at <= rest.size() && i < 3; ++i) {
        const size_t nl = std::min(rest.find('\n', at), rest.size());
        h.append(names[i]).append(header_value(rest.substr(at, nl - at))).append("\r\n");
        at = nl + 1;
      }
      bytes = Server::request("GET", "/v1/auth?scopes=" + encode_query(rest.substr(0, 64)),
                              i < 3 ? s.admin_b : std::string(), {}, false, h);
      break;
    }
    case 16:
      bytes =
          Server::request("POST", "/v1/organization/projects", s.admin_b, rest, chunked, headers);
      break;
    case 17:
      bytes = Server::request("POST", "/v1/organization/projects/" + s.project, s.admin_b, rest,
                              chunked, headers);
      break;
    case 18:
      bytes = Server::request("POST",
                              "/v1/organization/projects/" + s.project + "/certificates/" +
                                  ((flags & 4) ? "deactivate" : "activate"),
                              s.admin_b, rest, chunked, headers);
      break;
    case 19:
      bytes = Server::request("GET",
                              "/v1/organization/projects" +
                                  ((flags & 4) ? "/" + s.project + "/api_keys?" : "?") +
                                  encode_query(rest),
                              s.admin_b, {}, false, headers);
      break;
    case 20:  // the audit log's filters, OpenAI's path or the native one
      bytes =
          Server::request("GET",
                          ((flags & 4) ? b + "/audit-events?" : "/v1/organization/audit_logs?") +
                              encode_query(rest),
                          s.admin_b, {}, false, headers);
      break;
    default:  // 14, 15
      bytes.assign(rest);
      raw = true;
      break;
  }
  std::vector<Response> answers;
  if (raw) {
    Client fresh(s.server->bound().port);
    fresh.exchange(bytes, true, answers);
  } else {
    s.client->exchange(bytes, false, answers);
  }
  static const bool verbose = std::getenv("KEYGATE_FUZZ_VERBOSE") != nullptr;
  for (const Response& r : answers) {
    if (verbose) std::fprintf(stderr, "selector %u: %d %s\n", selector, r.status, r.body.c_str());
    judge(r, bytes);
  }
  return 0;
}
