// TLS on keygate's own listener (docs/operations.md, "TLS"), with certificates the tests
// make with OpenSSL: HTTPS end to end with keep-alive and pipelining, mutual TLS and the
// certificate binding, bad input (plain HTTP to the TLS port, a stalled handshake, bad
// files), session resumption, and a SIGHUP reload under load.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/certs.hpp"
#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

// A CA, a server certificate it signed, written to `dir`; and the client settings that
// trust it.
struct Pki {
  std::string dir = make_temp_dir();
  TestCert ca = make_cert("keygate test CA");
  TestCert server = make_cert("127.0.0.1", -3600, 86400, &ca);
  TlsClient client;
  Pki() {
    write_file(dir + "/ca.pem", ca.pem);
    write_file(dir + "/server.pem", server.pem);
    write_file(dir + "/server.key", server.key_pem);
    client.ca_file = dir + "/ca.pem";
  }
  ~Pki() { remove_tree(dir); }
  std::vector<std::string> args(std::vector<std::string> more = {}) const {
    std::vector<std::string> a = {"--tls-cert", dir + "/server.pem", "--tls-key",
                                  dir + "/server.key"};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  // A client presenting `cert` (written next to the others under `name`).
  TlsClient with(const TestCert& cert, const std::string& name) const {
    write_file(dir + "/" + name + ".pem", cert.pem);
    write_file(dir + "/" + name + ".key", cert.key_pem);
    TlsClient c = client;
    c.cert_file = dir + "/" + name + ".pem";
    c.key_file = dir + "/" + name + ".key";
    c.fresh_connection = true;
    return c;
  }
};

HttpResponse call(const ServerProcess& s, const TlsClient& tls, const std::string& method,
                  const std::string& path, const std::string& body, const std::string& key) {
  return https(s.port(), method, path, body, {"Authorization: Bearer " + key}, &tls);
}

Tenant tenant(const ServerProcess& s, const TlsClient& tls, const std::string& name) {
  auto r = call(s, tls, "POST", "/v1/organizations", R"({"name":")" + name + "\"}", s.root_key());
  EXPECT_EQ(r.status, 201) << r.body;
  auto j = parse_json(r.body);
  return {str(j, "/data/id"), str(j, "/data/api_key/revealed_key")};
}

// Uploads `cert` to the tenant's organization and activates it.
void bind(const ServerProcess& s, const TlsClient& tls, const Tenant& t, const TestCert& cert) {
  auto up = call(s, tls, "POST", "/v1/organization/certificates",
                 R"({"certificate":")" + pem_json(cert.pem) + "\"}", t.key);
  ASSERT_EQ(up.status, 200) << up.body;
  auto act = call(s, tls, "POST", "/v1/organization/certificates/activate",
                  R"({"certificate_ids":[")" + str(parse_json(up.body), "/id") + "\"]}", t.key);
  ASSERT_EQ(act.status, 200) << act.body;
}

// /v1/auth for `key` over `tls`: "200" or the X-Keygate-Code.
std::string auth(const ServerProcess& s, const TlsClient& tls, const std::string& key,
                 std::vector<std::string> headers = {}) {
  headers.push_back("Authorization: Bearer " + key);
  auto r = https(s.port(), "GET", "/v1/auth", "", headers, &tls);
  if (r.status == 200) return "200";
  return r.status < 0 ? "error: " + r.body : r.header("x-keygate-code");
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(Tls, ServesHttpsWithKeepAliveAndPipelining) {
  Pki pki;
  ServerProcess s(pki.args());
  Tenant t = tenant(s, pki.client, "Over TLS");
  for (int i = 0; i < 20; ++i) ASSERT_EQ(auth(s, pki.client, t.key), "200");  // one connection
  auto keys = call(s, pki.client, "GET", "/v1/organizations/" + t.id + "/api-keys", "", t.key);
  EXPECT_EQ(keys.status, 200);
  // Three requests in one write, answered in order on one TLS connection.
  const std::string one =
      "GET /v1/auth HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + t.key + "\r\n";
  int status = 0;
  write_file(pki.dir + "/pipelined",
             one + "\r\n" + one + "\r\n" + one + "Connection: close\r\n\r\n");
  const std::string out = run_command(
      "timeout 10 openssl s_client -quiet -ign_eof -connect 127.0.0.1:" + std::to_string(s.port()) +
          " -CAfile " + pki.dir + "/ca.pem < " + pki.dir +
          "/pipelined 2>/dev/null | head -c 100000",
      status);
  EXPECT_EQ(count(out, "HTTP/1.1 200 OK"), 3) << out;
  // Plain HTTP on the TLS port: no HTTP answer, the connection is closed, and TLS goes on.
  const std::string plain = send_raw(s.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(plain.find("HTTP/1.1"), std::string::npos) << plain;
  EXPECT_EQ(auth(s, pki.client, t.key), "200");
  // The operator CLI over HTTPS.
  const std::string listed = run_command(
      std::string(KEYGATE_BINARY) +
          " orgs list --server https://127.0.0.1:" + std::to_string(s.port()) + " --cacert " +
          pki.dir + "/ca.pem" + " --root-key-file " + s.data_dir() + "/root.key",
      status);
  EXPECT_EQ(status, 0) << listed;
  EXPECT_NE(listed.find(t.id), std::string::npos) << listed;
}

TEST(Tls, MutualTlsBindsKeysToThePresentedCertificateOnly) {
  Pki pki;
  ServerProcess s(pki.args({"--tls-client-auth", "request"}));
  const TestCert mine = make_cert("client A"), other = make_cert("client B"),
                 old = make_cert("client old", -7200, -3600);  // self-signed, any CA will do
  const TlsClient with_mine = pki.with(mine, "a"), with_other = pki.with(other, "b"),
                  with_old = pki.with(old, "old");
  TlsClient none = pki.client;
  none.fresh_connection = true;
  Tenant t = tenant(s, pki.client, "Bound over TLS");
  EXPECT_EQ(auth(s, none, t.key), "200") << "no certificate active: none needed";
  bind(s, pki.client, t, mine);
  EXPECT_EQ(auth(s, with_mine, t.key), "200");
  EXPECT_EQ(auth(s, with_other, t.key), "CERTIFICATE_REQUIRED");
  EXPECT_EQ(auth(s, none, t.key), "CERTIFICATE_REQUIRED");
  // The header cannot stand in for a certificate the connection did not present.
  EXPECT_EQ(auth(s, none, t.key, {"X-Client-Cert-Sha256: " + mine.sha256_hex}),
            "CERTIFICATE_REQUIRED");
  EXPECT_EQ(auth(s, with_other, t.key, {"X-Client-Cert-Sha256: " + mine.sha256_hex}),
            "CERTIFICATE_REQUIRED");
  // A bound certificate past its notAfter: refused with its own code.
  bind(s, pki.client, t, old);
  EXPECT_EQ(auth(s, with_old, t.key), "CERTIFICATE_EXPIRED");
  // One before its notBefore: the same.
  const TestCert early = make_cert("client early", 3600, 7200);
  bind(s, pki.client, t, early);
  EXPECT_EQ(auth(s, pki.with(early, "early"), t.key), "CERTIFICATE_EXPIRED");
  EXPECT_EQ(auth(s, with_mine, t.key), "200");
}

TEST(Tls, AClientCaRequiresCertificatesItSigned) {
  Pki pki;
  ServerProcess s(pki.args({"--tls-client-ca", pki.dir + "/ca.pem"}));
  const TestCert signed_by_ca = make_cert("gateway", -3600, 86400, &pki.ca);
  TlsClient none = pki.client;
  none.fresh_connection = true;
  const TlsClient gateway = pki.with(signed_by_ca, "gw"), stranger = pki.with(make_cert("x"), "x");
  EXPECT_EQ(https(s.port(), "GET", "/healthz", "", {}, &gateway).status, 200);
  EXPECT_LT(https(s.port(), "GET", "/healthz", "", {}, &none).status, 0) << "no certificate";
  EXPECT_LT(https(s.port(), "GET", "/healthz", "", {}, &stranger).status, 0)
      << "one the CA did not sign";
}

TEST(Tls, AStalledHandshakeIsTimedOutLikeASlowHeader) {
  Pki pki;
  ServerProcess s(pki.args({"--header-timeout-ms", "500"}));
  const int fd = connect_to(s.port());
  const char partial[] = "\x16\x03\x01\x02\x00\x01";  // the start of a ClientHello, then nothing
  ASSERT_EQ(::write(fd, partial, sizeof partial - 1), static_cast<ssize_t>(sizeof partial - 1));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string got = read_some(fd, 5000);  // returns when the server closes
  const auto waited = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  EXPECT_LT(waited, std::chrono::milliseconds(3000)) << "closed by the header timeout";
  EXPECT_EQ(https(s.port(), "GET", "/healthz", "", {}, &pki.client).status, 200);
}

TEST(Tls, SessionsResumeWithoutAFullHandshake) {
  Pki pki;
  ServerProcess s(pki.args());
  // The sleep lets a TLS 1.3 ticket (sent after the handshake) arrive before the client ends.
  const std::string base = "(sleep 0.3; echo) | timeout 10 openssl s_client -connect 127.0.0.1:" +
                           std::to_string(s.port()) + " -CAfile " + pki.dir + "/ca.pem ";
  int status = 0;
  for (const char* version : {"-tls1_2", "-tls1_3"}) {
    const std::string first =
        run_command(base + version + " -sess_out " + pki.dir + "/session 2>&1", status);
    EXPECT_NE(first.find("New, "), std::string::npos) << first;
    const std::string again =
        run_command(base + version + " -sess_in " + pki.dir + "/session 2>&1", status);
    EXPECT_NE(again.find("Reused, "), std::string::npos) << version << ": " << again;
  }
  // Old protocols are refused.
  const std::string tls11 = run_command(base + "-tls1_1 2>&1", status);
  EXPECT_EQ(tls11.find("Reused, "), std::string::npos);
  EXPECT_EQ(tls11.find("New, TLS"), std::string::npos) << tls11;
}

TEST(Tls, SighupReloadsTheCertificateWithoutFailingARequest) {
  Pki pki;
  ServerProcess s(pki.args());
  Tenant t = tenant(s, pki.client, "Reloaded");
  // The certificate to come, from another CA. The load's client trusts both CAs, as a
  // gateway does across a CA change; its kept-alive connection spans the reloads.
  const TestCert ca2 = make_cert("second CA"), server2 = make_cert("127.0.0.1", -60, 86400, &ca2);
  write_file(pki.dir + "/ca2.pem", ca2.pem);
  write_file(pki.dir + "/both.pem", pki.ca.pem + ca2.pem);
  TlsClient both = pki.client;
  both.ca_file = pki.dir + "/both.pem";
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string first_failure;
  std::thread load([&] {
    while (!stop) {
      const std::string r = auth(s, both, t.key);
      if (r == "200") {
        ++ok;
      } else if (failed++ == 0) {
        first_failure = r;
      }
    }
  });
  for (int i = 0; i < 200 && ok < 5; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  write_file(pki.dir + "/server.pem", server2.pem);
  write_file(pki.dir + "/server.key", server2.key_pem);
  ASSERT_EQ(::kill(s.pid(), SIGHUP), 0);
  TlsClient second = pki.client;
  second.ca_file = pki.dir + "/ca2.pem";
  second.fresh_connection = true;
  bool reloaded = false;
  for (int i = 0; i < 100 && !reloaded; ++i) {
    reloaded = https(s.port(), "GET", "/healthz", "", {}, &second).status == 200;
    if (!reloaded) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(reloaded) << "new connections get the new certificate";
  // A bad file on reload: the previous certificate stays.
  write_file(pki.dir + "/server.key", "not a key");
  ASSERT_EQ(::kill(s.pid(), SIGHUP), 0);
  for (int i = 0; i < 100 && s.log().find("tls.reload_failed") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(s.log().find("tls.reload_failed"), std::string::npos);
  EXPECT_EQ(https(s.port(), "GET", "/healthz", "", {}, &second).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  load.join();
  EXPECT_GT(ok.load(), 20);
  EXPECT_EQ(failed.load(), 0) << "the kept-alive connection went on through both reloads: "
                              << first_failure;
}

TEST(Tls, BadFilesStopTheStartNamingTheFile) {
  Pki pki;
  const TestCert other = make_cert("other");
  write_file(pki.dir + "/other.key", other.key_pem);
  int status = 0;
  const std::string bin =
      std::string(KEYGATE_BINARY) + " serve --listen 127.0.0.1:0 --data-dir " + pki.dir + "/data ";
  std::string out = run_command(
      bin + "--tls-cert " + pki.dir + "/server.pem --tls-key " + pki.dir + "/other.key 2>&1",
      status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find(pki.dir + "/other.key: this key does not match the certificate"),
            std::string::npos)
      << out;
  out = run_command(
      bin + "--tls-cert " + pki.dir + "/missing.pem --tls-key " + pki.dir + "/server.key 2>&1",
      status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find(pki.dir + "/missing.pem: cannot read the TLS certificate"), std::string::npos)
      << out;
  out = run_command(bin + "--tls-cert " + pki.dir + "/server.pem 2>&1", status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("--tls-cert and --tls-key go together"), std::string::npos) << out;
}

// Plain HTTP: the gateway's header counts only when the operator says a gateway sets it.
TEST(Tls, TheForwardedCertificateHeaderIsIgnoredUnlessTrusted) {
  const TestCert cert = make_cert("forwarded");
  for (const bool trusted : {false, true}) {
    ServerProcess s(trusted ? std::vector<std::string>{"--trust-forwarded-client-cert"}
                            : std::vector<std::string>{});
    Tenant t = make_tenant(s, "Forwarded");
    activate_certificate(s, t, cert.pem);
    auto r = http(s.port(), "GET", "/v1/auth", "",
                  {"Authorization: Bearer " + t.key, "X-Client-Cert-Sha256: " + cert.sha256_hex});
    EXPECT_EQ(r.status, trusted ? 200 : 403) << "trusted=" << trusted;
  }
}

// Listening beyond loopback without TLS is worth one warning at start; on loopback or with
// TLS, none.
TEST(Tls, ANonLoopbackListenerWithoutTlsIsWarnedAbout) {
  {
    ServerProcess s({"--listen", "0.0.0.0:0"});
    EXPECT_NE(s.log().find("\"event\":\"listening.without_tls\""), std::string::npos) << s.log();
  }
  Pki pki;
  ServerProcess quiet;
  ServerProcess tls(pki.args({"--listen", "0.0.0.0:0"}));
  EXPECT_EQ(quiet.log().find("listening.without_tls"), std::string::npos);
  EXPECT_EQ(tls.log().find("listening.without_tls"), std::string::npos);
}
