#include "handlers/json_input.hpp"

namespace keygate::handlers {

using core::ErrorCode;

core::Error invalid_json(std::string_view detail) {
  return core::make_error(ErrorCode::invalid_json, std::string(detail) + ".");
}

core::Error invalid_field(std::string_view param, std::string_view must) {
  return core::make_error(ErrorCode::invalid_field,
                          "'" + std::string(param) + "' " + std::string(must) + ".",
                          std::string(param));
}

std::string shown(std::string_view input) {
  if (input.size() <= kShownBytes) return std::string(input);
  size_t n = kShownBytes;
  while (n > 0 && (static_cast<unsigned char>(input[n]) & 0xC0) == 0x80) --n;  // whole characters
  return std::string(input.substr(0, n)) + "...";
}

core::Error unknown_field(std::string_view param) {
  const std::string name = shown(param);
  return core::make_error(ErrorCode::unknown_field,
                          "'" + name + "' is not a field of this request: remove it.", name);
}

core::Error missing_field(std::string_view param) {
  return core::make_error(ErrorCode::missing_field, "'" + std::string(param) + "' is required.",
                          std::string(param));
}

simdjson::ondemand::parser& thread_parser() {
  thread_local simdjson::ondemand::parser parser;
  return parser;
}

simdjson::padded_string_view padded_copy(std::string_view body) {
  thread_local std::string buffer;
  if (buffer.capacity() < body.size() + simdjson::SIMDJSON_PADDING)
    buffer.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  buffer.assign(body);
  return simdjson::padded_string_view(buffer.data(), buffer.size(), buffer.capacity());
}

bool read_string_view(JsonValue& v, std::string_view param, std::string_view& out,
                      core::Error& err) {
  if (v.get_string().get(out)) {
    err = invalid_field(param, "must be a string");
    return false;
  }
  return true;
}

bool read_string(JsonValue& v, std::string_view param, std::string& out, core::Error& err) {
  std::string_view s;
  if (!read_string_view(v, param, s, err)) return false;
  out.assign(s);
  return true;
}

bool read_strings(JsonValue& v, std::string_view param, std::vector<std::string>& out,
                  core::Error& err) {
  simdjson::ondemand::array arr;
  if (v.get_array().get(arr)) {
    err = invalid_field(param, "must be an array of strings");
    return false;
  }
  out.clear();
  for (auto item : arr) {
    std::string_view s;
    if (item.get_string().get(s)) {
      err = invalid_field(param, "must be an array of strings");
      return false;
    }
    out.emplace_back(s);
  }
  return true;
}

bool read_uint(JsonValue& v, std::string_view param, uint64_t& out, core::Error& err) {
  if (v.get_uint64().get(out)) {
    err = invalid_field(param, "must be a non-negative integer");
    return false;
  }
  return true;
}

bool read_is_null(JsonValue& v, bool& is_null) {
  return !v.is_null().get(is_null);
}

bool read_scopes(JsonValue& v, std::string_view param, core::ScopeSet& out, core::Error& err) {
  simdjson::ondemand::array arr;
  if (v.get_array().get(arr)) {
    err = invalid_field(param, "must be an array of scope names");
    return false;
  }
  out = 0;
  for (auto item : arr) {
    std::string_view s;
    if (item.get_string().get(s)) {
      err = invalid_field(param, "must be an array of scope names");
      return false;
    }
    core::Scope scope;
    switch (core::parse_scope(s, scope)) {
      case core::ScopeParse::ok:
        out |= core::bit(scope);
        break;
      case core::ScopeParse::removed:
        err = core::make_error(
            ErrorCode::removed_scope,
            "The scope 'organizations:manage' was removed: use organizations:create, "
            "organizations:read and organizations:update instead.",
            std::string(param));
        return false;
      case core::ScopeParse::unknown:
        err = core::make_error(
            ErrorCode::invalid_scope,
            "'" + shown(s) + "' is not a scope. See the API reference for the list.",
            std::string(param));
        return false;
    }
  }
  return true;
}

}  // namespace keygate::handlers
