// The records keygate keeps: organizations and API keys. A published record is immutable:
// the writer replaces it with a new version (see core/index.hpp); readers never see one
// change under them. Times are Unix milliseconds; 0 means "none" (null on the wire).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/compact_string.hpp"
#include "core/ids.hpp"
#include "core/key_format.hpp"
#include "core/scopes.hpp"

namespace keygate::core {

enum class OrgStatus : uint8_t { active = 0, suspended = 1 };
std::string_view to_string(OrgStatus s) noexcept;

struct Organization {
  Id id;
  std::string name;
  std::string slug;
  OrgStatus status = OrgStatus::active;
  uint64_t created_ms = 0;
  uint64_t updated_ms = 0;
};

struct RateLimit {
  uint32_t requests_per_second = 0;  // 0: unlimited
  uint32_t burst = 0;
  bool operator==(const RateLimit&) const = default;
};

// What a key's status reads as, derived from its times at the moment of reading.
enum class KeyStatus : uint8_t { active, rotating, expired, revoked };
std::string_view to_string(KeyStatus s) noexcept;

// What only some keys carry, behind one pointer that a key's versions share (a change
// makes a new one): a publishable key's value and allowed origins, and the links of a key
// that was rotated or came from a rotation. Most keys (secret, never rotated) have none,
// which keeps the record in a smaller allocation class.
struct KeyExtras {
  std::string value;                         // publishable keys: the whole value, public by design
  std::vector<std::string> allowed_origins;  // publishable keys; empty: any origin
  Id replaced_by;
  Id rotated_from;

  bool empty() const noexcept {
    return value.empty() && allowed_origins.empty() && replaced_by.empty() && rotated_from.empty();
  }
};

// 128 bytes (mimalloc's 128-byte class), laid out for verification: the first cache line
// holds what every check reads (type, scopes, rate limit, revocation and expiry times), the
// second the ids a verification returns; the name only the admin API reads comes last.
// The hash of the value is not here: it never changes, so the key's slot holds it
// (core/index.hpp) and a record version does not repeat it.
struct ApiKey {
  KeyType type = KeyType::secret;
  Environment environment = Environment::live;
  // The project the key belongs to, by its number in the organization (Project::number);
  // 0: none. Two bytes that were padding: the record stays 128 bytes.
  uint16_t project = 0;
  ScopeSet scopes = 0;
  char preview[4] = {};                 // last four characters of the value
  std::optional<RateLimit> rate_limit;  // set by the root key; else the operator's default
  uint64_t revoked_ms = 0;
  uint64_t expires_ms = 0;
  uint64_t rotated_ms = 0;
  uint64_t grace_expires_ms = 0;
  uint64_t created_ms = 0;
  Id id;
  Id organization_id;
  std::shared_ptr<const KeyExtras> extras;  // null: none (a secret key never rotated)
  CompactString name;

  std::string_view public_value() const noexcept {
    return extras ? std::string_view(extras->value) : std::string_view();
  }
  const std::vector<std::string>& allowed_origins() const noexcept {
    static const std::vector<std::string> none;
    return extras ? extras->allowed_origins : none;
  }
  Id replaced_by() const noexcept { return extras ? extras->replaced_by : Id{}; }
  Id rotated_from() const noexcept { return extras ? extras->rotated_from : Id{}; }

  // The writer's way to change them: earlier versions share the current object, so a
  // change builds a new one (or none, when nothing is left).
  template <class Edit>
  void edit_extras(Edit&& edit) {
    KeyExtras e = extras ? *extras : KeyExtras{};
    edit(e);
    extras = e.empty() ? nullptr : std::make_shared<const KeyExtras>(std::move(e));
  }

  KeyStatus status_at(uint64_t now_ms) const noexcept {
    if (revoked_ms) return KeyStatus::revoked;
    if (expires_ms && now_ms >= expires_ms) return KeyStatus::expired;
    if (rotated_ms) return now_ms >= grace_expires_ms ? KeyStatus::expired : KeyStatus::rotating;
    return KeyStatus::active;
  }
};

// An X.509 certificate uploaded to an organization (docs/api.md §6). Times of the
// certificate itself are Unix seconds, as the OpenAI Admin API has them.
struct Certificate {
  Id id;
  Id organization_id;
  std::optional<std::string> name;
  std::string pem;
  std::array<uint8_t, 32> fingerprint{};  // SHA-256 of the DER encoding
  int64_t valid_at = 0;                   // notBefore
  int64_t expires_at = 0;                 // notAfter
  uint64_t created_ms = 0;
  bool active = false;  // for the whole organization
  // The projects (Project::number) it is active for, ascending (docs/api.md §7).
  std::vector<uint16_t> active_projects;

  bool active_in(uint16_t project) const noexcept {
    return std::binary_search(active_projects.begin(), active_projects.end(), project);
  }
};

inline constexpr size_t kMaxCertificatesPerOrganization = 50;

// A project of an organization (docs/api.md §7): keys can live in one. Projects are
// archived, never deleted, so an organization numbers them 1, 2, ... in creation order and
// a key names its project by that number (two bytes in the key's record).
struct Project {
  Id id;
  Id organization_id;
  std::string name;
  uint16_t number = 0;
  uint64_t created_ms = 0;
  uint64_t archived_ms = 0;  // 0: active
};

inline constexpr size_t kMaxProjectsPerOrganization = 1000;

}  // namespace keygate::core
