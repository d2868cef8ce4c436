// The operator's commands: `keygate orgs create|list`, `keygate keys
// create|list|revoke|rotate` and `keygate projects create|list|rename|archive` talk to a
// running server over HTTP or HTTPS with the root key,
// for operators who would rather not write curl. The client is libcurl (URLs, IPv6,
// TLS, status and body framing done right); listings are paged through to the end.
#pragma once

#include <string>
#include <vector>

namespace keygate::cli {

struct Target {
  std::string server = "http://127.0.0.1:8080";
  std::string root_key_file = "./data/root.key";
  std::string cacert;  // CA bundle for an https:// server; empty: the system's
};

struct HttpResult {
  int status = 0;
  std::string body;
};

// Sends one request with the root key; throws std::runtime_error when the server cannot
// be reached, the URL is not http(s), or the key file cannot be read.
// `organization`: sent as OpenAI-Organization (the OpenAI-shaped endpoints' organization).
HttpResult call(const Target& target, const std::string& method, const std::string& path,
                const std::string& body = {}, const std::string& organization = {});

// Runs `keygate orgs ...` / `keygate keys ...` with the words after the command; prints
// the server's JSON answer (for list, every page as one {"data": [...]}), or on an error
// status the error's code and message on stderr; returns the process exit status.
int orgs(const Target& target, const std::string& action, const std::string& name,
         const std::string& slug);
int keys(const Target& target, const std::string& action, const std::string& org,
         const std::string& key, const std::string& name, const std::string& type,
         const std::string& environment, const std::vector<std::string>& scopes, long grace_seconds,
         const std::string& project = {});
int projects(const Target& target, const std::string& action, const std::string& org,
             const std::string& project, const std::string& name, bool include_archived);
// `keygate audit --org ORG [--type T ...] [--since UNIX_SECONDS]`: every matching event,
// newest first, as one {"data": [...]}.
int audit(const Target& target, const std::string& org, const std::vector<std::string>& types,
          long since);

}  // namespace keygate::cli
