#include "cluster/layout.hpp"

namespace keygate::cluster {

using core::IdKind;

Layout::Layout(std::string prefix) : prefix_(std::move(prefix)) {
  while (prefix_.ends_with('/')) prefix_.pop_back();
}

std::string Layout::kind(std::string_view kind) const {
  std::string k = prefix_;
  k += '/';
  k += kind;
  k += '/';
  return k;
}

std::string Layout::organization(core::Id org) const {
  return kind("org") + core::to_string(IdKind::organization, org);
}
std::string Layout::api_key(const core::KeyHash& h) const {
  return api_keys() + std::string(reinterpret_cast<const char*>(h.data()), h.size());
}
std::string Layout::earlier_api_key(core::Id key) const {
  return kind("key") + core::to_string(IdKind::api_key, key);
}
std::string Layout::certificate(core::Id org, core::Id cert) const {
  return kind("cert") + core::to_string(IdKind::organization, org) + "/" +
         core::to_string(IdKind::certificate, cert);
}
std::string Layout::project(core::Id org, core::Id project) const {
  return kind("proj") + core::to_string(IdKind::organization, org) + "/" +
         core::to_string(IdKind::project, project);
}
std::string Layout::audit_events(core::Id org) const {
  return kind("audit") + core::to_string(IdKind::organization, org) + "/";
}

std::string Layout::audit_event(core::Id org, core::Id event) const {
  return kind("audit") + core::to_string(IdKind::organization, org) + "/" +
         core::to_string(IdKind::audit_event, event);
}
std::string Layout::version(core::Id org) const {
  return kind("ver") + core::to_string(IdKind::organization, org);
}
std::string Layout::slug(std::string_view slug) const {
  return kind("slug") + std::string(slug);
}
std::string Layout::hash(const core::KeyHash& h) const {
  // The 32 bytes themselves, not 64 hex digits: etcd keys are bytes, and this one is in
  // etcd's index and database once per key (FORMAT of the layout: cluster/README.md).
  return kind("hash") + std::string(reinterpret_cast<const char*>(h.data()), h.size());
}
std::string Layout::node(std::string_view name) const {
  return kind("nodes") + std::string(name);
}

std::string hex(const core::KeyHash& h) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : h) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

}  // namespace keygate::cluster
