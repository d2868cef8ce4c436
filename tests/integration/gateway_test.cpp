// The gateway examples that ship in scripts/gateways/, run as they are by a real nginx
// (Debian nginx-light, auth_request) and a real Caddy (Debian caddy 2.6, forward_auth) in
// front of keygate: allow, deny (401, 403), rate limits, spoofed headers and certificate
// binding through the gateway's own TLS, end to end. And the load-test tool for users
// (scripts/loadtest, wrk) against a real server.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/certs.hpp"
#include "support/etcd_cluster.hpp"  // free_port()
#include "support/harness.hpp"

extern char** environ;

using namespace keygate::testing;

namespace {

// The rest of the line after the first `marker` in `text`, or "" when it is absent.
std::string after(const std::string& text, const std::string& marker) {
  const size_t at = text.find(marker);
  if (at == std::string::npos) return {};
  const size_t from = at + marker.size();
  return text.substr(from, text.find('\n', from) - from);
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

// A real gateway running the example file that ships in scripts/gateways/ as it is, with
// its addresses and file names replaced (the comment at the top of each file lists them):
// keygate at 127.0.0.1:8080, the API at 127.0.0.1:9000, the gateway's TLS port 8443 and
// its certificate files. The API is a site of the same gateway that answers what reached
// it: the X-Keygate-* headers, a forwarded fingerprint and the credential, if any.
class Gateway {
 public:
  enum class Kind { nginx, caddy, nginx_console };
  Gateway(Kind kind, uint16_t keygate_port)
      : dir_(make_temp_dir()), port_(free_port()), upstream_(free_port()) {
    write_file(dir_ + "/ca.pem", ca_.pem);
    write_file(dir_ + "/server.pem", server_.pem);
    write_file(dir_ + "/server.key", server_.key_pem);
    tls_.ca_file = dir_ + "/ca.pem";
    tls_.fresh_connection = true;
    tls_.host = kind == Kind::caddy ? "localhost" : "";  // the name Caddy's site answers
    const std::string example = std::string(KEYGATE_SOURCE_DIR) + "/scripts/gateways/" +
                                (kind == Kind::nginx           ? "nginx.conf"
                                 : kind == Kind::nginx_console ? "nginx-console.conf"
                                                               : "Caddyfile");
    std::ifstream in(example);
    std::string conf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (conf.empty()) throw std::runtime_error("cannot read " + example);
    replace_all(conf, "127.0.0.1:8080", "127.0.0.1:" + std::to_string(keygate_port));
    replace_all(conf, "127.0.0.1:9000", "127.0.0.1:" + std::to_string(upstream_));
    replace_all(conf, "8443", std::to_string(port_));
    replace_all(conf, "/etc/ssl/certs/api.pem", dir_ + "/server.pem");
    replace_all(conf, "/etc/ssl/private/api.key", dir_ + "/server.key");
    std::string echo = "org=<$1> key=<$2> proj=<$3> scopes=<$4> cert=<$5> auth=<$6>";
    const bool nginx = kind != Kind::caddy;
    const char* names[] = {"X-Keygate-Organization-Id", "X-Keygate-Key-Id",
                           "X-Keygate-Project-Id",      "X-Keygate-Scopes",
                           "X-Client-Cert-Sha256",      "Authorization"};
    for (int i = 0; i < 6; ++i) {
      std::string var(names[i]);
      if (nginx) {
        for (char& c : var) c = c == '-' ? '_' : static_cast<char>(std::tolower(c));
        var = "$http_" + var;
      } else {
        var = "{header." + var + "}";
      }
      replace_all(echo, "$" + std::to_string(i + 1), var);
    }
    std::vector<std::string> args;
    if (nginx) {
      replace_all(conf, "http {",
                  "http {\n  access_log off;\n  client_body_temp_path " + dir_ +
                      "; proxy_temp_path " + dir_ + ";\n  server { listen 127.0.0.1:" +
                      std::to_string(upstream_) + "; location / { return 200 '" + echo + "'; } }");
      conf = "daemon off;\nworker_processes 1;\npid " + dir_ + "/nginx.pid;\nerror_log " + dir_ +
             "/error.log;\n" + conf;
      write_file(dir_ + "/nginx.conf", conf);
      args = {"/usr/sbin/nginx", "-c", dir_ + "/nginx.conf", "-p", dir_};
    } else {
      conf += "\nhttp://:" + std::to_string(upstream_) + " {\n\tbind 127.0.0.1\n\trespond \"" +
              echo + "\" 200\n}\n";
      write_file(dir_ + "/Caddyfile", conf);
      args = {"/usr/bin/caddy", "run", "--config", dir_ + "/Caddyfile", "--adapter", "caddyfile"};
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Caddy keeps its state under $HOME and XDG's directories: the test's own.
    std::vector<std::string> env_s = {"HOME=" + dir_, "XDG_DATA_HOME=" + dir_,
                                      "XDG_CONFIG_HOME=" + dir_, "PATH=/usr/bin:/bin"};
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, (dir_ + "/out.log").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
    for (int i = 0; i < 200 && get("/", {}).status <= 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ~Gateway() {
    ::kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    remove_tree(dir_);
  }
  // GET over the gateway's TLS, presenting `client` when given.
  HttpResponse get(const std::string& path, const std::vector<std::string>& headers,
                   const TestCert* client = nullptr) {
    TlsClient tls = tls_;
    if (client) {
      write_file(dir_ + "/client.pem", client->pem);
      write_file(dir_ + "/client.key", client->key_pem);
      tls.cert_file = dir_ + "/client.pem";
      tls.key_file = dir_ + "/client.key";
    }
    return https(port_, "GET", path, "", headers, &tls);
  }
  uint16_t port() const { return port_; }
  std::string ca_file() const { return tls_.ca_file; }
  std::string output() const {
    std::ifstream in(dir_ + "/out.log");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  std::string dir_;
  uint16_t port_, upstream_;
  pid_t pid_ = -1;
  TestCert ca_ = make_cert("gateway test CA");
  TestCert server_ = make_cert("127.0.0.1", -3600, 86400, &ca_);
  TlsClient tls_;
};

// What every shipped gateway example must do (docs/security.md, "Gateways"), end to end:
// allow, 401, 403 for a missing scope, 401 for a revoked key; the client's own
// X-Required-Scopes, X-Keygate-* and forwarded-certificate headers change nothing; and the
// certificate binding works through the gateway's TLS.
void gateway_keeps_its_promises(Gateway::Kind kind) {
  ServerProcess s({"--trust-forwarded-client-cert"});
  const Tenant t = make_tenant(s, "Behind a gateway");
  const CreatedKey reader = make_key(s, t, R"({"name":"reader","scopes":["api_keys:read"]})");
  const CreatedKey manager = make_key(s, t, R"({"name":"mgr","scopes":["api_keys:manage"]})");
  const CreatedKey revoked = make_key(s, t, R"({"name":"gone","scopes":["api_keys:read"]})");
  ASSERT_EQ(
      http(s.port(), "DELETE", "/v1/organizations/" + t.id + "/api-keys/" + revoked.id, "", t.key)
          .status,
      200);
  Gateway g(kind, s.port());
  auto bearer = [](const CreatedKey& k) { return "Authorization: Bearer " + k.value; };

  auto ok = g.get("/orders", {bearer(reader)});
  ASSERT_EQ(ok.status, 200) << ok.body << g.output();
  EXPECT_NE(ok.body.find("org=<" + t.id + ">"), std::string::npos) << ok.body;
  EXPECT_NE(ok.body.find("key=<" + reader.id + ">"), std::string::npos) << ok.body;
  EXPECT_NE(ok.body.find("proj=<>"), std::string::npos) << ok.body;
  EXPECT_NE(ok.body.find("auth=<>"), std::string::npos) << "the key stops at the gateway";

  EXPECT_EQ(g.get("/orders", {}).status, 401);
  EXPECT_EQ(g.get("/orders", {"Authorization: Bearer sk_live_wrong"}).status, 401);
  EXPECT_EQ(g.get("/orders", {bearer(revoked)}).status, 401);
  EXPECT_EQ(g.get("/orders", {bearer(manager)}).status, 403) << "the route needs api_keys:read";

  // The client's own scope header neither lowers nor raises what the route needs.
  EXPECT_EQ(g.get("/orders", {bearer(manager), "X-Required-Scopes: api_keys:manage"}).status, 403);
  EXPECT_EQ(g.get("/orders", {bearer(reader), "X-Required-Scopes: certificates:manage"}).status,
            200);
  // Spoofed identity headers: the API sees keygate's.
  auto spoofed =
      g.get("/orders", {bearer(reader), "X-Keygate-Organization-Id: org_evil",
                        "X-Keygate-Project-Id: proj_evil", "X-Keygate-Scopes: certificates:manage",
                        "X-Client-Cert-Sha256: spoofed"});
  ASSERT_EQ(spoofed.status, 200);
  EXPECT_NE(spoofed.body.find("org=<" + t.id + ">"), std::string::npos) << spoofed.body;
  EXPECT_NE(spoofed.body.find("proj=<>"), std::string::npos) << spoofed.body;
  EXPECT_EQ(spoofed.body.find("evil"), std::string::npos) << spoofed.body;
  EXPECT_EQ(spoofed.body.find("certificates:manage"), std::string::npos) << spoofed.body;

  // Certificate binding: the organization activates a certificate; a client that shows its
  // fingerprint or its text in a header, without presenting it over TLS, gets nothing.
  const TestCert client = make_cert("client of the gateway");
  activate_certificate(s, t, client.pem);
  const std::string der = der_base64(client.pem);
  for (const std::string& spoof : {"X-Client-Cert-Sha256: " + client.sha256_hex,
                                   "X-Client-Cert: " + der, "X-Forwarded-Tls-Client-Cert: " + der,
                                   "X-Forwarded-Client-Cert: Hash=" + client.sha256_hex}) {
    auto r = g.get("/orders", {bearer(reader), spoof});
    EXPECT_EQ(r.status, 403) << spoof << ": " << r.body;
  }
  const TestCert stranger = make_cert("someone else");
  EXPECT_EQ(g.get("/orders", {bearer(reader)}, &stranger).status, 403);
  auto bound = g.get("/orders", {bearer(reader)}, &client);
  EXPECT_EQ(bound.status, 200) << bound.body << g.output();
}

}  // namespace

TEST(Gateway, TheNginxExampleDecidesWhatKeygateIsTold) {
  ASSERT_TRUE(std::filesystem::exists("/usr/sbin/nginx")) << "scripts/setup installs nginx-light";
  gateway_keeps_its_promises(Gateway::Kind::nginx);
}

TEST(Gateway, TheCaddyExampleDecidesWhatKeygateIsTold) {
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/caddy")) << "scripts/setup test installs caddy";
  gateway_keeps_its_promises(Gateway::Kind::caddy);
}

// The console behind nginx on one HTTPS origin (scripts/gateways/nginx-console.conf), in
// front of the admin listener: the page, its scripts and the API it calls all reach keygate,
// and keygate's security headers arrive as keygate sent them.
TEST(Gateway, TheConsoleExampleServesThePageAndItsApiOnOneOrigin) {
  ASSERT_TRUE(std::filesystem::exists("/usr/sbin/nginx")) << "scripts/setup installs nginx-light";
  const uint16_t admin = free_port();
  ServerProcess s({"--admin-listen", "127.0.0.1:" + std::to_string(admin)});
  Gateway g(Gateway::Kind::nginx_console, admin);
  auto page = g.get("/console/", {});
  ASSERT_EQ(page.status, 200) << page.body << g.output();
  EXPECT_NE(page.body.find("app.js"), std::string::npos);
  EXPECT_NE(page.header("content-security-policy").find("frame-ancestors 'none'"),
            std::string::npos);
  EXPECT_EQ(page.header("x-frame-options"), "DENY");
  EXPECT_EQ(page.header("x-content-type-options"), "nosniff");
  for (const char* file : {"app.js", "api.js", "dom.js", "chart.js", "style.css"})
    EXPECT_EQ(g.get(std::string("/console/") + file, {}).status, 200) << file;
  // What the console calls: the API with the signed-in key, readiness and metrics.
  const std::string root = "Authorization: Bearer " + s.root_key();
  EXPECT_EQ(g.get("/v1/organizations", {root}).status, 200);
  EXPECT_EQ(g.get("/v1/auth", {root}).header("x-keygate-code"), "NOT_FOUND");
  EXPECT_EQ(g.get("/readyz", {}).status, 200);
  EXPECT_NE(g.get("/metrics", {}).body.find("keygate_build_info"), std::string::npos);
  EXPECT_TRUE(g.get("/", {}).header("location").ends_with("/console/"));
  EXPECT_EQ(g.get("/elsewhere", {}).status, 404);
}

// nginx's auth_request turns keygate's 429 into a 500 unless mapped; the example maps it.
TEST(Gateway, TheNginxExamplePassesTheRateLimitOn) {
  ServerProcess s({"--secret-rate", "1", "--secret-burst", "3"});
  const Tenant t = make_tenant(s, "Limited");
  const CreatedKey key = make_key(s, t, R"({"name":"svc","scopes":["api_keys:read"]})");
  Gateway g(Gateway::Kind::nginx, s.port());
  int limited = 0;
  for (int i = 0; i < 6; ++i)
    limited += g.get("/orders", {"Authorization: Bearer " + key.value}).status == 429;
  EXPECT_GE(limited, 2);  // burst 3 (the key's creation spent none): the rest are refused
}

// scripts/loadtest drives real verifications and reports what it says it does: the rate,
// how busy wrk kept its thread, the server's CPU per request; and every request it counts
// reached the server as a valid verification.
TEST(LoadTest, DrivesVerificationsAndReportsRateLoadGeneratorAndServerCpu) {
  ServerProcess s({"--secret-rate", "0"});  // unlimited: a rate limit would answer 429s
  const Tenant t = make_tenant(s, "Load");
  const std::string dir = make_temp_dir();
  const std::string keys = dir + "/keys.txt";
  {
    std::ofstream out(keys);
    for (int i = 0; i < 8; ++i) out << make_key(s, t, R"({"name":"load"})").value << "\n";
  }
  const std::string cmd = std::string(KEYGATE_SOURCE_DIR) + "/scripts/loadtest --keys " + keys +
                          " --url http://127.0.0.1:" + std::to_string(s.port()) +
                          " --duration 2s --connections 4 --pid " + std::to_string(s.pid());
  int exit_status = -1;
  const std::string out = run_command(cmd, exit_status);
  EXPECT_EQ(exit_status, 0) << out;
  remove_tree(dir);

  // "  51234 requests in 2.00s, ...": the number before the marker, at its line's start.
  const size_t in = out.find(" requests in ");
  ASSERT_NE(in, std::string::npos) << out;
  const size_t line = out.rfind('\n', in) + 1;
  const unsigned long long requests = std::stoull(out.substr(line, in - line));
  EXPECT_GT(requests, 100u) << out;
  EXPECT_GT(std::stod(after(out, "Requests/sec:")), 0.0) << out;
  EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
  const std::string busy = after(out, "wrk kept its 1 thread(s) ");
  ASSERT_FALSE(busy.empty()) << out;
  ASSERT_TRUE(std::isdigit(static_cast<unsigned char>(busy[0])))
      << out;  // "-" when sampling failed
  EXPECT_GT(std::stoi(busy), 0) << out;
  EXPECT_LE(std::stoi(busy), 105) << out;  // tick granularity over a 2 s run
  EXPECT_NE(busy.find("% busy"), std::string::npos) << out;
  const std::string cpu =
      after(out, "server (pid " + std::to_string(s.pid()) + ") CPU per request: ");
  ASSERT_FALSE(cpu.empty()) << out;
  EXPECT_GT(std::stod(cpu), 0.0) << out;
  EXPECT_NE(cpu.find(" us"), std::string::npos) << out;

  // wrk counts completed answers; the server counted at least as many valid verifications
  // (requests still in flight when wrk stopped may add a few).
  const std::string metrics = http(s.port(), "GET", "/metrics").body;
  const std::string valid = after(metrics, "keygate_verifications_total{code=\"VALID\"} ");
  ASSERT_FALSE(valid.empty()) << metrics;
  EXPECT_GE(std::stoull(valid), requests);
  EXPECT_LE(std::stoull(valid), requests + 64);
}
