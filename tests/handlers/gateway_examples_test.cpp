// The gateway examples no test can run (Traefik and Envoy are not in Debian): what they
// forward to keygate must be nothing a client controls (docs/security.md, "Gateways").
// nginx.conf and the Caddyfile run for real in tests/integration/gateway_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string read(const std::string& name) {
  std::ifstream in(std::string(KEYGATE_SOURCE_DIR) + "/scripts/gateways/" + name);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The lines of the YAML block that follows `key:` (more indented than it), lower-cased.
std::string block(const std::string& yaml, const std::string& key) {
  const size_t at = yaml.find(key + ":");
  if (at == std::string::npos) return {};
  const size_t line_start = yaml.rfind('\n', at) + 1;
  const size_t indent = at - line_start;
  std::string out = yaml.substr(at, yaml.find('\n', at) - at) + "\n";
  for (size_t pos = yaml.find('\n', at) + 1; pos < yaml.size();) {
    const size_t end = std::min(yaml.find('\n', pos), yaml.size());
    const std::string line = yaml.substr(pos, end - pos);
    const size_t first = line.find_first_not_of(' ');
    if (first != std::string::npos && first <= indent && line[first] != '#') break;
    out += line + "\n";
    pos = end + 1;
  }
  return lower(out);
}

// Headers a client could set to change keygate's answer or what the API sees.
const std::vector<std::string> kClientControlled = {
    "x-required-scopes", "x-client-cert-sha256", "x-client-cert\n", "x-client-cert ", "x-keygate-"};

const std::vector<std::string> kKeygateHeaders = {"x-keygate-organization-id", "x-keygate-key-id",
                                                  "x-keygate-project-id",      "x-keygate-key-type",
                                                  "x-keygate-environment",     "x-keygate-scopes"};

}  // namespace

TEST(GatewayExamples, TraefikForwardsNothingAClientControls) {
  const std::string yml = read("traefik.yml");
  ASSERT_FALSE(yml.empty());
  EXPECT_NE(yml.find("UNTESTED"), std::string::npos) << "say that no test runs it";
  const std::string asked = block(yml, "authRequestHeaders");
  ASSERT_FALSE(asked.empty());
  for (const std::string& h : kClientControlled)
    EXPECT_EQ(asked.find(h), std::string::npos) << h << " in authRequestHeaders";
  EXPECT_EQ(asked.find("x-client-cert-sha256"), std::string::npos);
  // The certificate header it does forward is Traefik's own, set by passTLSClientCert.
  if (asked.find("x-forwarded-tls-client-cert") != std::string::npos) {
    EXPECT_NE(block(yml, "passTLSClientCert").find("pem: true"), std::string::npos);
  }
  // The scopes come from the configuration, in the address.
  EXPECT_NE(block(yml, "forwardAuth").find("/v1/auth?scopes="), std::string::npos);
  EXPECT_NE(block(yml, "forwardAuth").find("trustforwardheader: false"), std::string::npos);
  // Every X-Keygate-* header is copied, so a client's is overwritten.
  const std::string copied = block(yml, "authResponseHeaders");
  for (const std::string& h : kKeygateHeaders)
    EXPECT_NE(copied.find(h), std::string::npos) << h << " not in authResponseHeaders";
}

TEST(GatewayExamples, EnvoyForwardsNothingAClientControls) {
  const std::string yaml = read("envoy.yaml");
  ASSERT_FALSE(yaml.empty());
  EXPECT_NE(yaml.find("UNTESTED"), std::string::npos) << "say that no test runs it";
  const std::string allowed = block(yaml, "allowed_headers");
  ASSERT_FALSE(allowed.empty());
  for (const std::string& h : kClientControlled)
    EXPECT_EQ(allowed.find(h), std::string::npos) << h << " in allowed_headers";
  // x-forwarded-client-cert reaches keygate only as Envoy's own: sanitized, then set.
  if (allowed.find("x-forwarded-client-cert") != std::string::npos) {
    EXPECT_NE(yaml.find("forward_client_cert_details: SANITIZE_SET"), std::string::npos);
  }
  // The scopes come from the configuration.
  EXPECT_NE(block(yaml, "headers_to_add").find("key: x-required-scopes"), std::string::npos);
  // Every x-keygate-* header of keygate's answer is set on the request to the API.
  EXPECT_NE(block(yaml, "allowed_upstream_headers").find("prefix: x-keygate-"), std::string::npos);
}

// The examples that do run must not forward the client's scope header either.
TEST(GatewayExamples, NginxAndCaddyTakeNoScopesFromTheClient) {
  const std::string nginx = lower(read("nginx.conf"));
  EXPECT_EQ(nginx.find("$http_x_required_scopes"), std::string::npos);
  EXPECT_NE(nginx.find("proxy_pass_request_headers off"), std::string::npos);
  for (size_t at = nginx.find("proxy_set_header"); at != std::string::npos;
       at = nginx.find("proxy_set_header", at + 1)) {
    const std::string line = nginx.substr(at, nginx.find('\n', at) - at);
    EXPECT_EQ(line.find("$ssl_client_fingerprint"), std::string::npos) << "SHA-1: never matches";
    EXPECT_EQ(line.find("$http_x_client_cert"), std::string::npos) << line;
  }
  const std::string caddy = lower(read("Caddyfile"));
  EXPECT_NE(caddy.find("header_up -x-required-scopes"), std::string::npos);
}
