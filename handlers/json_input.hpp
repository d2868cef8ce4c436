// Reading request bodies with simdjson's on-demand API. Every failure becomes docs/api.md's
// 400 with `param` naming the field: invalid_json, invalid_field, unknown_field,
// missing_field. The body is copied into a per-thread padded buffer (simdjson reads up to
// 64 bytes past the end), so after warm-up parsing allocates nothing.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.hpp"
#include "core/scopes.hpp"

namespace keygate::handlers {

using JsonValue = simdjson::ondemand::value;

class JsonFields {
 public:
  // Parses `body` as one JSON object and calls on_field(name, value) for each member; it
  // returns false (having set the error) to stop. An empty body is `{}` when allowed.
  template <typename F>
  static bool each(std::string_view body, bool empty_ok, core::Error& err, F&& on_field);
};

core::Error invalid_json(std::string_view detail);
core::Error invalid_field(std::string_view param, std::string_view must);
// A piece of the client's input quoted in a message: at most kShownBytes (whole UTF-8
// characters) and "..." after, so that an error never grows with its input (an answer may be
// remembered for an Idempotency-Key, and logged).
inline constexpr size_t kShownBytes = 64;
std::string shown(std::string_view input);
core::Error unknown_field(std::string_view param);
core::Error missing_field(std::string_view param);

bool read_string(JsonValue& v, std::string_view param, std::string& out, core::Error& err);
bool read_string_view(JsonValue& v, std::string_view param, std::string_view& out,
                      core::Error& err);
bool read_strings(JsonValue& v, std::string_view param, std::vector<std::string>& out,
                  core::Error& err);
bool read_uint(JsonValue& v, std::string_view param, uint64_t& out, core::Error& err);
bool read_is_null(JsonValue& v, bool& is_null);
// A list of scope names: unknown ones are invalid_scope, organizations:manage removed_scope.
bool read_scopes(JsonValue& v, std::string_view param, core::ScopeSet& out, core::Error& err);

simdjson::padded_string_view padded_copy(std::string_view body);
simdjson::ondemand::parser& thread_parser();

template <typename F>
bool JsonFields::each(std::string_view body, bool empty_ok, core::Error& err, F&& on_field) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    if (empty_ok) return true;
    err = invalid_json("the request body is empty: send a JSON object");
    return false;
  }
  simdjson::ondemand::document doc;
  if (thread_parser().iterate(padded_copy(body)).get(doc)) {
    err = invalid_json("the request body is not valid JSON (or not UTF-8)");
    return false;
  }
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj)) {
    err = invalid_json("the request body must be a JSON object");
    return false;
  }
  for (auto field : obj) {
    std::string_view name;
    JsonValue value;
    if (field.unescaped_key().get(name) || field.value().get(value)) {
      err = invalid_json("the request body is not valid JSON");
      return false;
    }
    if (!on_field(name, value)) return false;
  }
  // Past the object there must be nothing: current_location() is out of bounds at the end.
  if (!doc.current_location().error()) {
    err = invalid_json("the request body has content after the JSON object");
    return false;
  }
  return true;
}

}  // namespace keygate::handlers
