// Layout: the names of keygate's keys in etcd (cluster/README.md, "Data layout"), in one
// place for the committer that writes and follows them and the tools that fill a store.
#pragma once

#include <string>
#include <string_view>

#include "core/ids.hpp"
#include "core/key_format.hpp"

namespace keygate::cluster {

class Layout {
 public:
  explicit Layout(std::string prefix);  // trailing slashes are dropped

  const std::string& prefix() const noexcept { return prefix_; }
  std::string root() const { return prefix_ + "/root"; }
  std::string organization(core::Id org) const;
  // An API key's record, under the hash of its value: "<p>/key/#" and the hash's 32 bytes.
  // One etcd key a key, which also makes its value unique (created compared absent). '#'
  // sorts before every key of the earlier form, so a range read gives this form first.
  std::string api_key(const core::KeyHash& hash) const;
  // The earlier form of the same (before 2026-12-07): "<p>/key/<key_id>", with the hash's
  // id under hash(). Read, and deleted by every write of the key (cluster/README.md).
  std::string earlier_api_key(core::Id key) const;
  // Where the hash form begins and ends: [api_keys(), api_keys_end()).
  std::string api_keys() const { return kind("key") + '#'; }
  std::string api_keys_end() const { return kind("key") + '$'; }
  std::string certificate(core::Id org, core::Id cert) const;
  std::string project(core::Id org, core::Id project) const;
  std::string audit_event(core::Id org, core::Id event) const;
  // Where an organization's audit events begin: "<p>/audit/<org_id>/". Event ids grow with
  // time, so the events before a moment are [audit_events(org), audit_event(org, at(t))).
  std::string audit_events(core::Id org) const;
  std::string version(core::Id org) const;  // its mod_revision is the organization's version
  std::string slug(std::string_view slug) const;
  // The earlier form's index of key values, "<p>/hash/<32 bytes>": compared absent at each
  // creation (nodes of an earlier release still create them), never written.
  std::string hash(const core::KeyHash& hash) const;
  std::string node(std::string_view name) const;
  // "<prefix>/<kind>/": the start of every key of one kind, for range reads.
  std::string kind(std::string_view kind) const;

 private:
  std::string prefix_;
};

// 64 lowercase hex digits.
std::string hex(const core::KeyHash& hash);

}  // namespace keygate::cluster
