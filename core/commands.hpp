// Commands: requests for change, each executed by the one writer (core/state_machine.hpp).
// Their fields are already well-formed (handlers check shapes); the writer checks them
// against the current state: existence, tenancy, uniqueness, lifecycle.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/errors.hpp"
#include "core/model.hpp"

namespace keygate::core {

struct CreateOrganization {
  std::string name;
  std::string slug;  // already derived from the name when none was given
};

struct UpdateOrganization {
  Id org;
  std::optional<std::string> name;
  std::optional<std::string> slug;
  std::optional<OrgStatus> status;
};

struct CreateApiKey {
  Id org;
  std::string name;
  KeyType type = KeyType::secret;
  Environment environment = Environment::live;
  std::vector<std::string> allowed_origins;
  // None: every scope when the caller holds every scope, else the caller's own (scopes only
  // narrow: docs/security.md).
  std::optional<ScopeSet> scopes;
  uint64_t expires_ms = 0;
  std::optional<RateLimit> rate_limit;
  Id project;  // empty: none
};

struct UpdateApiKey {
  Id org;
  Id key;
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> allowed_origins;
  std::optional<ScopeSet> scopes;
  std::optional<RateLimit> rate_limit;
};

struct RevokeApiKey {
  Id org;
  Id key;
};

struct RotateApiKey {
  Id org;
  Id key;
  uint64_t grace_period_seconds = 86'400;
};

struct CreateCertificate {
  Id org;
  std::optional<std::string> name;
  std::string pem;  // already parsed and checked by the handler
  std::array<uint8_t, 32> fingerprint{};
  int64_t valid_at = 0;
  int64_t expires_at = 0;
};

struct UpdateCertificate {
  Id org;
  Id certificate;
  std::optional<std::string> name;
};

struct DeleteCertificate {
  Id org;
  Id certificate;
};

// All of them or none: one unknown id fails the whole command. For the organization, or
// for one of its projects when `project` is set.
struct SetCertificatesActive {
  Id org;
  std::vector<Id> certificates;
  bool active = true;
  Id project;
};

struct CreateProject {
  Id org;
  std::string name;
};

struct UpdateProject {
  Id org;
  Id project;
  std::string name;
};

// Archiving is final and idempotent: an archived project takes no new keys, and its keys
// verify as PROJECT_ARCHIVED.
struct ArchiveProject {
  Id org;
  Id project;
};

using Command =
    std::variant<CreateOrganization, UpdateOrganization, CreateApiKey, UpdateApiKey, RevokeApiKey,
                 RotateApiKey, CreateCertificate, UpdateCertificate, DeleteCertificate,
                 SetCertificatesActive, CreateProject, UpdateProject, ArchiveProject>;

// What executing a command produced: the records as they now are (copies: they outlive the
// read section), or the error that left everything unchanged.
struct Outcome {
  Error error;
  std::optional<Organization> org;
  std::optional<ApiKey> key;              // for a rotation: the new key
  std::string revealed_key;               // the value of a key just created: shown once
  std::vector<Certificate> certificates;  // as they now are, in the order asked
  std::optional<Project> project;
};

}  // namespace keygate::core
