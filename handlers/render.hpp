// JSON shapes of the native families (docs/api.md §1, §3, §4): the envelope, organizations
// and API keys.
#pragma once

#include <optional>
#include <string_view>

#include "core/json_writer.hpp"
#include "core/model.hpp"
#include "core/verify.hpp"
#include "handlers/exchange.hpp"

namespace keygate::handlers {

void write_organization(core::JsonWriter& w, const core::Organization& org);
// `index` resolves the key's project number to its id; call inside a ReadSection.
void write_api_key(core::JsonWriter& w, const core::Index& index, const core::ApiKey& key,
                   uint64_t last_used_ms, const core::RateDefaults& defaults, uint64_t now_ms,
                   std::string_view revealed = {});
// The id of the key's project, empty when it is in none. Inside a ReadSection.
core::Id project_of(const core::Index& index, const core::ApiKey& key) noexcept;
void write_project(core::JsonWriter& w, const core::Project& p);  // organization.project
// The organization that the path's {id} names (native families); writes the 404 and
// returns nullopt when it is no organization id.
std::optional<core::Id> organization_in_path(Exchange& ex);
// The project that the path's {id} names in organization `org`; writes the 404 and returns
// null when it has none such. Inside a ReadSection.
const core::Project* project_in_path(Exchange& ex, core::Id org);
void write_time(core::JsonWriter& w, std::string_view name, uint64_t unix_ms);  // null when 0
void write_id(core::JsonWriter& w, std::string_view name, core::IdKind kind,
              core::Id id);  // null when empty

// {"data": ... , "meta": {"request_id": ...}} around what `body` writes.
template <typename F>
void write_envelope(Exchange& ex, uint16_t status, F&& body) {
  ex.res.status = status;
  core::JsonWriter w(ex.res.body);
  w.begin_object().key("data");
  body(w);
  w.key("meta").begin_object().field("request_id", ex.request_id_view()).end_object().end_object();
}

}  // namespace keygate::handlers
