// Codec: the version-1 payloads of organization and API key records (FORMAT.md).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.hpp"
#include "core/state_machine.hpp"

namespace keygate::persistence {

void encode(const core::Organization& org, std::string& out);
// A key's record carries the hash of its value, which the index keeps in the key's slot
// rather than in each version of the record.
void encode(const core::KeyHash& hash, const core::ApiKey& key, uint64_t last_used_ms,
            std::string& out);
void encode(const core::Certificate& cert, std::string& out);
void encode_certificate_deletion(core::Id org, core::Id cert, std::string& out);
void encode(const core::Project& project, std::string& out);
void encode(const core::AuditEvent& event, std::string& out);

// Appends the record of a change the state machine staged (FORMAT.md "Records") to `out`;
// `payload` is scratch space. The log and the cluster's store (cluster/) write the same.
void append_staged(const core::StateMachine::Staged& staged, std::string& payload,
                   std::string& out);
// Appends the records staged[first, last) to `out`: the record itself when there is one,
// else one group record holding them all (FORMAT.md "Groups"). `group` is scratch space.
void append_command(const std::vector<core::StateMachine::Staged>& staged, size_t first,
                    size_t last, std::string& payload, std::string& group, std::string& out);

// nullptr when the payload is not a well-formed version-1 encoding.
std::unique_ptr<core::Organization> decode_organization(std::string_view payload);
// `version` 1 (no project) or 2 (FORMAT.md).
std::unique_ptr<core::ApiKey> decode_api_key(std::string_view payload, core::KeyHash& hash,
                                             uint64_t& last_used_ms, uint8_t version = 2);
// `version` 1 (no projects) or 2 (FORMAT.md).
std::shared_ptr<core::Certificate> decode_certificate(std::string_view payload,
                                                      uint8_t version = 2);
bool decode_certificate_deletion(std::string_view payload, core::Id& org, core::Id& cert);
std::shared_ptr<core::Project> decode_project(std::string_view payload);
std::optional<core::AuditEvent> decode_audit_event(std::string_view payload);

}  // namespace keygate::persistence
