#include "cli/operator.hpp"

#include <asio.hpp>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "core/json_writer.hpp"

namespace keygate::cli {

namespace {

std::string read_root_key(const std::string& file) {
  std::ifstream in(file);
  std::string key;
  if (!in || !std::getline(in, key) || key.empty())
    throw std::runtime_error("cannot read the root key from " + file +
                             " (set --root-key-file or KEYGATE_ROOT_KEY_FILE)");
  return key;
}

int report(const HttpResult& r) {
  std::printf("%s\n", r.body.c_str());
  if (r.status >= 200 && r.status < 300) return 0;
  std::fprintf(stderr, "keygate: the server answered %d\n", r.status);
  return 1;
}

}  // namespace

HttpResult call(const Target& target, const std::string& method, const std::string& path, const std::string& body) {
  std::string rest = target.server;
  if (rest.starts_with("http://")) rest = rest.substr(7);
  else if (rest.find("://") != std::string::npos)
    throw std::runtime_error("only http:// servers are supported: " + target.server);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const auto colon = rest.rfind(':');
  const std::string host = colon == std::string::npos ? rest : rest.substr(0, colon);
  const std::string port = colon == std::string::npos ? "80" : rest.substr(colon + 1);
  const std::string key = read_root_key(target.root_key_file);

  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  asio::error_code ec;
  asio::connect(socket, asio::ip::tcp::resolver(io).resolve(host, port, ec), ec);
  if (ec) throw std::runtime_error("cannot reach " + target.server + ": " + ec.message());
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + key +
                        "\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST" || method == "PATCH")
    request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  request += "\r\n" + body;
  asio::write(socket, asio::buffer(request), ec);
  std::string response;
  asio::read(socket, asio::dynamic_buffer(response), ec);  // until the server closes
  if (ec && ec != asio::error::eof) throw std::runtime_error("reading the answer failed: " + ec.message());
  HttpResult r;
  if (response.size() < 12 || !response.starts_with("HTTP/1.1 ")) throw std::runtime_error("not an HTTP answer");
  r.status = std::stoi(response.substr(9, 3));
  const auto end = response.find("\r\n\r\n");
  r.body = end == std::string::npos ? std::string() : response.substr(end + 4);
  return r;
}

int orgs(const Target& t, const std::string& action, const std::string& name, const std::string& slug) {
  if (action == "list") return report(call(t, "GET", "/v1/organizations?limit=200"));
  if (action == "create") {
    std::string body;
    core::JsonWriter w(body);
    w.begin_object().field("name", std::string_view(name));
    if (!slug.empty()) w.field("slug", std::string_view(slug));
    w.end_object();
    return report(call(t, "POST", "/v1/organizations", body));
  }
  std::fprintf(stderr, "keygate orgs: unknown action '%s' (create, list)\n", action.c_str());
  return 2;
}

int keys(const Target& t, const std::string& action, const std::string& org, const std::string& key,
         const std::string& name, const std::string& type, const std::string& environment,
         const std::vector<std::string>& scopes, long grace_seconds) {
  const std::string base = "/v1/organizations/" + org + "/api-keys";
  if (action == "list") return report(call(t, "GET", base + "?limit=200"));
  if (action == "create") {
    std::string body;
    core::JsonWriter w(body);
    w.begin_object().field("name", std::string_view(name));
    if (!type.empty()) w.field("type", std::string_view(type));
    if (!environment.empty()) w.field("environment", std::string_view(environment));
    if (!scopes.empty()) {
      w.key("scopes").begin_array();
      for (const auto& s : scopes) w.string(s);
      w.end_array();
    }
    w.end_object();
    return report(call(t, "POST", base, body));
  }
  if (key.empty()) {
    std::fprintf(stderr, "keygate keys %s: --key KEY_ID is required\n", action.c_str());
    return 2;
  }
  if (action == "revoke") return report(call(t, "DELETE", base + "/" + key));
  if (action == "rotate") {
    std::string body;
    if (grace_seconds >= 0) body = "{\"grace_period_seconds\":" + std::to_string(grace_seconds) + "}";
    return report(call(t, "POST", base + "/" + key + "/rotations", body));
  }
  std::fprintf(stderr, "keygate keys: unknown action '%s' (create, list, revoke, rotate)\n", action.c_str());
  return 2;
}

}  // namespace keygate::cli
