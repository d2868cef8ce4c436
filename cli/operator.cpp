#include "cli/operator.hpp"

#include <curl/curl.h>
#include <simdjson.h>

#include <cstdio>
#include <fstream>
#include <memory>
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

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// The message of keygate's error envelope ({"error": {"code", "message"}}), or the body.
std::string error_text(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view code, message;
  if (parser.parse(body).get(doc) == simdjson::SUCCESS &&
      doc["error"]["code"].get(code) == simdjson::SUCCESS &&
      doc["error"]["message"].get(message) == simdjson::SUCCESS)
    return std::string(code) + ": " + std::string(message);
  return body.empty() ? "(no body)" : body;
}

int report(const HttpResult& r) {
  if (r.status >= 200 && r.status < 300) {
    std::printf("%s\n", r.body.c_str());
    return 0;
  }
  std::fprintf(stderr, "keygate: the server answered %d %s\n", r.status,
               error_text(r.body).c_str());
  return 1;
}

// Where a listing says whether there is more and where the next page starts: the native
// API's {"pagination": {"has_more", "next_cursor"}} paged with `cursor`, or OpenAI's
// {"has_more", "last_id"} paged with `after`.
struct Paging {
  const char* has_more;
  const char* next;
  const char* param;
};
constexpr Paging kNative{"/pagination/has_more", "/pagination/next_cursor", "cursor"};
constexpr Paging kOpenAi{"/has_more", "/last_id", "after"};

// GET `path` page after page (limit=100) and prints every item as one JSON document:
// {"data": [...]}. A listing is never cut short.
int report_all(const Target& t, const std::string& path, const Paging& paging = kNative,
               const std::string& org = {}) {
  std::string out = "{\"data\":[";
  bool first = true;
  std::string cursor;
  simdjson::dom::parser parser;
  const char sep = path.find('?') == std::string::npos ? '?' : '&';
  for (;;) {
    const HttpResult r =
        call(t, "GET",
             path + sep + "limit=100" +
                 (cursor.empty() ? "" : "&" + std::string(paging.param) + "=" + cursor),
             {}, org);
    if (r.status != 200) return report(r);
    simdjson::dom::element doc;
    simdjson::dom::array items;
    bool more = false;
    if (parser.parse(r.body).get(doc) != simdjson::SUCCESS ||
        doc["data"].get(items) != simdjson::SUCCESS ||
        doc.at_pointer(paging.has_more).get(more) != simdjson::SUCCESS)
      throw std::runtime_error("the server's listing is not the JSON keygate sends: " + r.body);
    for (simdjson::dom::element item : items) {
      if (!first) out += ',';
      out += simdjson::minify(item);
      first = false;
    }
    std::string_view next;
    if (!more) break;
    if (doc.at_pointer(paging.next).get(next) != simdjson::SUCCESS || next.empty())
      throw std::runtime_error("the server says there is more but gives no " +
                               std::string(paging.next + 1));
    cursor = next;
  }
  out += "]}";
  std::printf("%s\n", out.c_str());
  return 0;
}

struct CurlSlist {
  curl_slist* list = nullptr;
  ~CurlSlist() { curl_slist_free_all(list); }
  void add(const std::string& line) {
    curl_slist* next = curl_slist_append(list, line.c_str());
    if (!next) throw std::bad_alloc();
    list = next;
  }
};

}  // namespace

HttpResult call(const Target& target, const std::string& method, const std::string& path,
                const std::string& body, const std::string& organization) {
  std::string base = target.server;
  if (!base.starts_with("http://") && !base.starts_with("https://"))
    throw std::runtime_error(
        "--server must be an http:// or https:// URL, such as http://127.0.0.1:8080 or "
        "http://[::1]:8080: " +
        target.server);
  while (base.ends_with('/')) base.pop_back();
  const std::string key = read_root_key(target.root_key_file);

  static const bool initialised = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!initialised) throw std::runtime_error("libcurl could not be initialised");
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) throw std::runtime_error("libcurl could not be initialised");
  CurlSlist headers;
  headers.add("Authorization: Bearer " + key);
  if (!organization.empty()) headers.add("OpenAI-Organization: " + organization);
  if (!body.empty() || method == "POST" || method == "PATCH")
    headers.add("Content-Type: application/json");
  HttpResult r;
  char error[CURL_ERROR_SIZE] = {};
  const std::string url = base + path;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.list);
  if (method == "POST" || method == "PATCH" || !body.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10'000L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60'000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!target.cacert.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, target.cacert.c_str());
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK)
    throw std::runtime_error("cannot reach " + target.server + ": " +
                             (error[0] ? error : curl_easy_strerror(rc)));
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  r.status = static_cast<int>(status);
  return r;
}

int orgs(const Target& t, const std::string& action, const std::string& name,
         const std::string& slug) {
  if (action == "list") return report_all(t, "/v1/organizations");
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
         const std::vector<std::string>& scopes, long grace_seconds, const std::string& project) {
  const std::string base = "/v1/organizations/" + org + "/api-keys";
  if (action == "list") return report_all(t, base);
  if (action == "create") {
    std::string body;
    core::JsonWriter w(body);
    w.begin_object().field("name", std::string_view(name));
    if (!type.empty()) w.field("type", std::string_view(type));
    if (!environment.empty()) w.field("environment", std::string_view(environment));
    if (!project.empty()) w.field("project_id", std::string_view(project));
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
    core::JsonWriter w(body);
    w.begin_object();
    if (grace_seconds >= 0) w.field("grace_period_seconds", static_cast<int64_t>(grace_seconds));
    w.end_object();
    return report(call(t, "POST", base + "/" + key + "/rotations", body));
  }
  std::fprintf(stderr, "keygate keys: unknown action '%s' (create, list, revoke, rotate)\n",
               action.c_str());
  return 2;
}

int audit(const Target& t, const std::string& org, const std::vector<std::string>& types,
          long since) {
  std::string query;
  for (const auto& type : types)
    query += (query.empty() ? "?" : "&") + ("event_types%5B%5D=" + type);
  if (since >= 0)
    query += (query.empty() ? "?" : "&") + ("effective_at%5Bgte%5D=" + std::to_string(since));
  return report_all(t, "/v1/organizations/" + org + "/audit-events" + query);
}

int projects(const Target& t, const std::string& action, const std::string& org,
             const std::string& project, const std::string& name, bool include_archived) {
  const std::string base = "/v1/organization/projects";
  auto named = [&] {
    std::string body;
    core::JsonWriter w(body);
    w.begin_object().field("name", std::string_view(name)).end_object();
    return body;
  };
  if (action == "list")
    return report_all(t, base + (include_archived ? "?include_archived=true" : ""), kOpenAi, org);
  if (action == "create") return report(call(t, "POST", base, named(), org));
  if (project.empty()) {
    std::fprintf(stderr, "keygate projects %s: --project PROJECT_ID is required\n", action.c_str());
    return 2;
  }
  if (action == "rename") return report(call(t, "POST", base + "/" + project, named(), org));
  if (action == "archive")
    return report(call(t, "POST", base + "/" + project + "/archive", {}, org));
  std::fprintf(stderr, "keygate projects: unknown action '%s' (create, list, rename, archive)\n",
               action.c_str());
  return 2;
}

}  // namespace keygate::cli
