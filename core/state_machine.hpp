// StateMachine: the one writer's logic (docs/architecture.md rule 1). execute() validates a command
// against the published state plus what earlier commands of the same batch staged, and
// stages the new record versions (with ids, hashes and times decided). The journal logs
// the staged records, makes them durable, then calls publish(); if they could not be made
// durable it calls discard() and nothing happened. Replay feeds logged records to apply().
// Writer thread only.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/commands.hpp"
#include "core/index.hpp"

namespace keygate::core {

class StateMachine {
 public:
  struct Staged {
    std::unique_ptr<Organization> org;  // exactly one of org, key, cert, project, event is set
    std::unique_ptr<ApiKey> key;
    KeyHash key_hash{};  // with `key`: the hash of its value (the index keeps it in the slot)
    std::shared_ptr<Certificate> cert;
    bool cert_deleted = false;  // `cert` names the certificate that goes
    std::shared_ptr<Project> project;
    std::shared_ptr<AuditEvent> event;  // the audit event of the command that staged the above
  };

  explicit StateMachine(Index& index);

  // Stages the command's changes and, with auditing on, one audit event per change it
  // makes (none for a refusal or a request that changes nothing), made by `actor`, whose
  // scopes are `authority`: a key it creates, rotates, updates or revokes may hold no scope
  // beyond them (403 insufficient_scope; docs/security.md).
  Outcome execute(const Command& command, uint64_t now_ms, const Actor& actor = {},
                  ScopeSet authority = kEveryScope);
  // Off (--audit-retention 0): no events are staged.
  void set_auditing(bool on) noexcept { auditing_ = on; }
  // --max-keys-per-org: a creation or rotation that would give an organization more keys
  // is refused (400 key_limit_reached). Every key counts, revoked and expired ones too:
  // each holds a slot in the index.
  void set_max_keys_per_org(uint32_t n) noexcept { max_keys_per_org_ = n; }
  const std::vector<Staged>& staged() const noexcept { return staged_; }
  void publish();
  void discard();
  // Undoing the last command alone (cluster mode's transaction, which it does not fit):
  // the slug changes staged so far, and discard_from(), which drops the staged records from
  // the `records`th on and undoes the slug changes from the `slugs`th on. What was staged
  // before them stays staged.
  size_t slug_changes() const noexcept { return slug_undo_.size(); }
  void discard_from(size_t records, size_t slugs);

  // Recovery: a record read back from a snapshot or the log, published at once.
  void apply(std::unique_ptr<Organization> org);
  void apply(const KeyHash& hash, std::unique_ptr<ApiKey> key);
  // The same, false when the index refuses it (Index::try_put): for records read back.
  bool try_apply(const KeyHash& hash, std::unique_ptr<ApiKey> key, uint64_t last_used_ms);
  void apply(std::shared_ptr<Certificate> cert);
  void apply_certificate_deletion(Id org, Id cert);
  void apply(AuditEvent event);
  // False when the index refuses it (unknown organization, a number out of turn).
  bool apply(std::shared_ptr<Project> project);

  Index& index() noexcept { return index_; }

 private:
  Outcome run(const CreateOrganization& c, uint64_t now);
  Outcome run(const UpdateOrganization& c, uint64_t now);
  Outcome run(const CreateApiKey& c, uint64_t now);
  Outcome run(const UpdateApiKey& c, uint64_t now);
  Outcome run(const RevokeApiKey& c, uint64_t now);
  Outcome run(const RotateApiKey& c, uint64_t now);
  Outcome run(const CreateCertificate& c, uint64_t now);
  Outcome run(const UpdateCertificate& c, uint64_t now);
  Outcome run(const DeleteCertificate& c, uint64_t now);
  Outcome run(const SetCertificatesActive& c, uint64_t now);
  Outcome run(const CreateProject& c, uint64_t now);
  Outcome run(const UpdateProject& c, uint64_t now);
  Outcome run(const ArchiveProject& c, uint64_t now);
  // The organization's projects as this batch sees them, in number order.
  std::vector<const Project*> projects(Id org) const;
  // One of them by id; null if the organization has no such project.
  const Project* project(Id org, Id project) const;
  void stage(std::shared_ptr<Project> p);
  // The organization's certificates as this batch sees them, in creation order.
  std::vector<const Certificate*> certificates(Id org) const;
  void stage(std::shared_ptr<Certificate> c, bool deleted);

  const Organization* org(Id id) const;
  // The key as this batch sees it, and the hash of its value; null if the organization has
  // no such key.
  const ApiKey* key(Id org, Id key, KeyHash& hash) const;
  ApiKey& stage(std::unique_ptr<ApiKey> k, const KeyHash& hash);
  Organization& stage(std::unique_ptr<Organization> o);
  std::unique_ptr<ApiKey> new_key(Id org, KeyType type, Environment env, uint64_t now,
                                  std::string& value, KeyHash& hash);
  // Stages the audit event of a change (see execute()).
  void audit(AuditType type, Id org, Id project, std::vector<Id> resources, std::string payload);
  // The id of a key's project (empty for none) as this batch sees it.
  Id project_id(const ApiKey& k) const;
  // The 403 for acting on (or granting) `scopes` beyond the caller's authority, or no error.
  Error beyond_authority(ScopeSet scopes, std::string_view doing) const;
  // The 400 when organization `org` has no room for one more key, or no error.
  Error no_room_for_key(Id org) const;
  // The maps of staged records by id, again from staged_ (after part of it went).
  void reindex_staged();
  void clear_staged_maps();

  Index& index_;
  IdGenerator ids_;
  bool auditing_ = true;
  uint32_t max_keys_per_org_ = 100'000;
  const Actor* actor_ = nullptr;      // of the command being executed
  ScopeSet authority_ = kEveryScope;  // and its scopes
  uint64_t now_ms_ = 0;
  std::unordered_map<std::string, Id> slugs_;  // every organization's slug, staged ones too
  // What the batch being executed did to slugs_, to undo in discard(): each slug it touched
  // and the organization that held it before (none: it was free). O(batch), not
  // O(organizations): in cluster mode every transaction is discarded (the watch publishes).
  std::vector<std::pair<std::string, std::optional<Id>>> slug_undo_;
  std::vector<Staged> staged_;
  std::unordered_map<Id, size_t, IdHash> staged_orgs_;  // id -> latest staged version
  std::unordered_map<Id, size_t, IdHash> staged_keys_;
  // Of each organization: the keys staged that the index does not hold yet (its new keys),
  // counted as they are staged rather than by a lookup of every staged key for each new one.
  std::unordered_map<Id, uint32_t, IdHash> staged_new_keys_;
  std::unordered_map<Id, size_t, IdHash> staged_certs_;
  std::unordered_map<Id, size_t, IdHash> staged_projects_;
};

}  // namespace keygate::core
