// Test helpers, not tests: the server process, HTTP and JSON for the integration tests. They make
// no assertions of their own; when one cannot deliver what it promised it fails the running test
// through helper_failed (check.hpp), at its own line and with the reason. Their behaviour, failures
// included, is tested in harness_test.cpp.
#include "support/harness.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "support/certs.hpp"
#include "support/check.hpp"

extern char** environ;

namespace keygate::testing {

std::string make_temp_dir() {
  char tmpl[] = "/tmp/keygate-test-XXXXXX";
  if (!mkdtemp(tmpl)) helper_failed(std::string("make_temp_dir: mkdtemp: ") + std::strerror(errno));
  return tmpl;
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

ServerProcess::ServerProcess(std::vector<std::string> a, std::string data_dir,
                             std::function<void(pid_t)> hook, std::vector<std::string> environment,
                             int listen)
    : args(std::move(a)),
      env(std::move(environment)),
      at_ready(std::move(hook)),
      listen_fd(listen),
      data_dir_(std::move(data_dir)) {
  if (data_dir_.empty()) {
    data_dir_ = make_temp_dir() + "/data";
    own_dir_ = true;
  }
  start();
}

ServerProcess::ServerProcess(Deferred, std::vector<std::string> a) : args(std::move(a)) {
  data_dir_ = make_temp_dir() + "/data";
  own_dir_ = true;
}

std::unique_ptr<ServerProcess> ServerProcess::with_prefix(std::vector<std::string> prefix,
                                                          std::vector<std::string> args) {
  std::unique_ptr<ServerProcess> s(new ServerProcess(Deferred{}, std::move(args)));
  s->exec_prefix = std::move(prefix);
  s->start();
  return s;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) stop();
  if (own_dir_) remove_tree(std::filesystem::path(data_dir_).parent_path());
}

std::string ServerProcess::log() const {
  std::lock_guard lock(log_mutex_);
  return log_;
}

void ServerProcess::start() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    helper_failed(std::string("ServerProcess: pipe2: ") + std::strerror(errno));
  std::vector<std::string> argv_s = {KEYGATE_BINARY, "serve", "--data-dir", data_dir_};
  bool has_threads = false, has_listen = false;
  for (const auto& a : args) {
    has_threads = has_threads || a == "--threads";
    has_listen = has_listen || a == "--listen";
  }
  if (!has_threads) argv_s.insert(argv_s.end(), {"--threads", "2"});
  if (!has_listen) argv_s.insert(argv_s.end(), {"--listen", "127.0.0.1:0"});
  if (const TlsClient* tls = tls_mode()) {
    const std::string dir = std::filesystem::path(tls->ca_file).parent_path();
    argv_s.insert(argv_s.end(),
                  {"--tls-cert", dir + "/server.pem", "--tls-key", dir + "/server.key"});
  }
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  argv_s.insert(argv_s.begin(), exec_prefix.begin(), exec_prefix.end());
  if (listen_fd >= 0)  // LISTEN_PID must be the server's own pid: a shell sets it, then execs
    argv_s.insert(argv_s.begin(),
                  {"/bin/sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\""});
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  if (posix_spawn_file_actions_init(&fa) != 0 ||
      posix_spawn_file_actions_adddup2(&fa, fds[1], 1) != 0 ||
      posix_spawn_file_actions_adddup2(&fa, fds[1], 2) != 0 ||
      (listen_fd >= 0 && posix_spawn_file_actions_adddup2(&fa, listen_fd, 3) != 0))
    helper_failed("ServerProcess: cannot set up the child's output");
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  for (char** e = environ; *e; ++e) {
    const std::string_view var(*e);
    bool overridden = false;
    for (const auto& x : env)
      overridden = overridden || var.substr(0, var.find('=') + 1) == x.substr(0, x.find('=') + 1);
    if (!overridden) envp.push_back(*e);
  }
  envp.push_back(nullptr);
  const int spawned = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (spawned != 0)
    helper_failed("ServerProcess: cannot start " KEYGATE_BINARY ": " +
                  std::string(std::strerror(spawned)));
  ::close(fds[1]);
  out_fd_ = fds[0];
  {
    std::lock_guard lock(log_mutex_);
    log_.clear();
  }
  if (reader_.joinable()) reader_.join();
  reader_ = std::thread([this, fd = out_fd_, pid = pid_, at_ready = at_ready] {
    char buf[4096];
    ssize_t n;
    bool ready = false;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
      std::lock_guard lock(log_mutex_);
      log_.append(buf, static_cast<size_t>(n));
      if (!ready && log_.find("\"event\":\"ready\"") != std::string::npos) {
        ready = true;
        if (at_ready) at_ready(pid);
      }
    }
    ::close(fd);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    std::string l = log();
    size_t at = l.find("\"event\":\"ready\"");
    if (at != std::string::npos) {
      // "address":"127.0.0.1:PORT" or "[::1]:PORT": the port follows the last colon.
      const std::string_view field = "\"address\":\"";
      const size_t addr = l.find(field, at);
      const size_t end = addr == std::string::npos ? addr : l.find('"', addr + field.size());
      const size_t colon = end == std::string::npos ? end : l.rfind(':', end);
      if (colon == std::string::npos || colon < addr)
        helper_failed("ServerProcess: keygate's ready line names no address: " + l);
      port_ = static_cast<uint16_t>(std::stoi(l.substr(colon + 1)));
      break;
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (reader_.joinable()) reader_.join();
      throw std::runtime_error("keygate exited at start: " + log());
    }
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("keygate did not become ready: " + l);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The root key: the file given with --root-key-file, else the one keygate generated in
  // the data directory on its first start. Every test server has one, and the helpers that
  // act as the operator use it.
  std::string key_file = data_dir_ + "/root.key";
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--root-key-file") key_file = args[i + 1];
  std::ifstream rk(key_file);
  if (!std::getline(rk, root_key_) || root_key_.size() < 32)
    helper_failed("ServerProcess: no root key in " + key_file);
}

int ServerProcess::wait_exit() {
  int status = 0;
  pid_t waited;
  while ((waited = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  const pid_t pid = std::exchange(pid_, -1);
  if (reader_.joinable()) reader_.join();
  // Without this, a failed wait would read as "exited with 0" to a test that expects a
  // clean stop.
  if (waited != pid)
    helper_failed("ServerProcess: waitpid(" + std::to_string(pid) + "): " + std::strerror(errno));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

int ServerProcess::stop() {
  if (pid_ <= 0) return 0;
  ::kill(pid_, SIGTERM);
  return wait_exit();
}

void ServerProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  wait_exit();
}

namespace {

size_t on_body(char* p, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(p, size * n);
  return size * n;
}

size_t on_header(char* p, size_t size, size_t n, void* user) {
  std::string line(p, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
    (*static_cast<std::map<std::string, std::string>*>(user))[name] = value;
  }
  return size * n;
}

}  // namespace

HttpResponse http(uint16_t port, const std::string& method, const std::string& path,
                  const std::string& body, const std::vector<std::string>& headers) {
  return https(port, method, path, body, headers, tls_mode());
}

const TlsClient* tls_mode() {
  static const TlsClient* mode = []() -> const TlsClient* {
    const char* on = std::getenv("KEYGATE_TEST_TLS");
    if (!on || std::string_view(on) != "1") return nullptr;
    // One CA and server certificate for the whole test process, removed when it exits.
    static const struct Dir {
      std::string path = make_temp_dir();
      ~Dir() { remove_tree(path); }
    } scratch;
    const std::string& dir = scratch.path;
    const TestCert ca = make_cert("keygate test CA");
    const TestCert server = make_cert("127.0.0.1", -3600, 86400, &ca);
    for (const auto& [name, text] : {std::pair<const char*, const std::string&>{"ca.pem", ca.pem},
                                     {"server.pem", server.pem},
                                     {"server.key", server.key_pem}})
      std::ofstream(dir + "/" + name) << text;
    static TlsClient client;
    client.ca_file = dir + "/ca.pem";
    return &client;
  }();
  return mode;
}

HttpResponse https(uint16_t port, const std::string& method, const std::string& path,
                   const std::string& body, const std::vector<std::string>& headers,
                   const TlsClient* tls) {
  struct Handle {  // one connection per thread, kept alive, cleaned up when the thread ends
    CURL* curl = curl_easy_init();
    ~Handle() { curl_easy_cleanup(curl); }
  };
  thread_local Handle handle;
  CURL* curl = handle.curl;
  if (!curl) helper_failed("http: curl_easy_init failed");
  HttpResponse r;
  curl_easy_reset(curl);
  const std::string host = tls && !tls->host.empty() ? tls->host : "127.0.0.1";
  std::string url = (tls ? "https://" : "http://") + host + ":" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_slist* resolve = nullptr;  // a name, sent as SNI, that reaches 127.0.0.1
  if (host != "127.0.0.1") {
    resolve =
        curl_slist_append(nullptr, (host + ":" + std::to_string(port) + ":127.0.0.1").c_str());
    curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
  }
  if (tls) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, tls->ca_file.c_str());
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);  // the test certificate names no host
    if (!tls->cert_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_SSLCERT, tls->cert_file.c_str());
      curl_easy_setopt(curl, CURLOPT_SSLKEY, tls->key_file.c_str());
    }
    if (tls->fresh_connection) {  // a new connection, and a full handshake on it
      curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L);
      curl_easy_setopt(curl, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    }
  }
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  if (!body.empty() || method == "POST" || method == "PATCH") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_slist* list = nullptr;
  list = curl_slist_append(list, "Content-Type: application/json");
  list = curl_slist_append(list, "Expect:");
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(list);
  curl_slist_free_all(resolve);
  if (rc != CURLE_OK) {
    r.status = -1;
    r.body = curl_easy_strerror(rc);
    return r;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

HttpResponse http(uint16_t port, const std::string& method, const std::string& path,
                  const std::string& body, const std::string& bearer) {
  return http(port, method, path, body,
              std::vector<std::string>{"Authorization: Bearer " + bearer});
}

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) helper_failed(std::string("connect_to: socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int err = errno;
    ::close(fd);
    helper_failed("connect_to: 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(err));
  }
  return fd;
}

int listen_loopback(uint16_t& port, int backlog) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const int one = 1;
  if (fd >= 0 && port != 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(fd, backlog) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    helper_failed(std::string("listen_loopback: ") + std::strerror(errno));
  port = ntohs(a.sin_port);
  return fd;
}

std::string read_some(int fd, int timeout_ms) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string send_raw(uint16_t port, const std::string& bytes, int timeout_ms, bool half_close) {
  int fd = connect_to(port);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close first (413, 431): its answer is what counts
    done += static_cast<size_t>(n);
  }
  if (half_close) ::shutdown(fd, SHUT_WR);
  std::string out = read_some(fd, timeout_ms);
  ::close(fd);
  return out;
}

std::string run_command(const std::string& command, int& status) {
  FILE* p = popen(("(" + command + ") 2>&1").c_str(), "r");
  if (!p) helper_failed("run_command: popen: " + std::string(std::strerror(errno)));
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  status = pclose(p);
  return out;
}

simdjson::dom::element parse_json(const std::string& body) {
  thread_local std::vector<std::unique_ptr<simdjson::dom::parser>>
      keep;  // elements outlive the next parse
  keep.push_back(std::make_unique<simdjson::dom::parser>());
  simdjson::dom::element e;
  if (keep.back()->parse(body).get(e)) helper_failed("parse_json: not JSON: " + body);
  return e;
}

std::string str(simdjson::dom::element e, const char* path) {
  simdjson::dom::element v;
  if (e.at_pointer(path).get(v)) return "<missing>";
  if (v.is_null()) return "null";
  std::string_view s;
  if (!v.get_string().get(s)) return std::string(s);
  return simdjson::to_string(v);
}

namespace {

// A fixture a test builds on must exist: a helper that got anything but a 201 with both
// fields stops the test with the server's answer, instead of handing it "<missing>".
std::pair<std::string, std::string> created(const HttpResponse& r, const char* id_path,
                                            const char* key_path, const char* what) {
  if (r.status != 201)
    helper_failed(std::string(what) + ": HTTP " + std::to_string(r.status) + ": " + r.body);
  auto j = parse_json(r.body);
  std::string id = str(j, id_path), key = str(j, key_path);
  if (id == "<missing>" || key == "<missing>")
    helper_failed(std::string(what) + ": no id or key in " + r.body);
  return {std::move(id), std::move(key)};
}

}  // namespace

Tenant make_tenant(const ServerProcess& s, const std::string& name) {
  auto [id, key] = created(
      http(s.port(), "POST", "/v1/organizations", R"({"name":")" + name + "\"}", s.root_key()),
      "/data/id", "/data/api_key/revealed_key", "make_tenant");
  return {std::move(id), std::move(key)};
}

std::string activate_certificate(const ServerProcess& s, const Tenant& t, const std::string& pem) {
  const HttpResponse up = http(s.port(), "POST", "/v1/organization/certificates",
                               R"({"certificate":")" + pem_json(pem) + "\"}", t.key);
  if (up.status != 200) helper_failed("activate_certificate: upload: " + up.body);
  const std::string id = str(parse_json(up.body), "/id");
  const HttpResponse on = http(s.port(), "POST", "/v1/organization/certificates/activate",
                               R"({"certificate_ids":[")" + id + "\"]}", t.key);
  if (on.status != 200) helper_failed("activate_certificate: activate: " + on.body);
  return id;
}

CreatedKey make_key(const ServerProcess& s, const Tenant& t, const std::string& body) {
  auto [id, value] =
      created(http(s.port(), "POST", "/v1/organizations/" + t.id + "/api-keys", body, t.key),
              "/data/id", "/data/revealed_key", "make_key");
  return {std::move(id), std::move(value)};
}

}  // namespace keygate::testing
