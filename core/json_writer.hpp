// JsonWriter: appends compact JSON to a caller-owned string, inserting commas itself.
// Strings are escaped per RFC 8259 (quotes, backslash, every control character); bytes of
// invalid UTF-8 become U+FFFD so the output is always valid JSON. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace keygate::core {

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& string(std::string_view v);
  JsonWriter& number(int64_t v);
  JsonWriter& number(uint64_t v);
  JsonWriter& number(int v) { return number(static_cast<int64_t>(v)); }
  JsonWriter& number(unsigned v) { return number(static_cast<uint64_t>(v)); }
  JsonWriter& number(double v);
  JsonWriter& boolean(bool v);
  JsonWriter& null();
  // A value already serialized as JSON.
  JsonWriter& raw(std::string_view json);

  template <typename T>
  JsonWriter& field(std::string_view k, T v) {
    key(k);
    return value(v);
  }

 private:
  JsonWriter& value(std::string_view v) { return string(v); }
  JsonWriter& value(const char* v) { return string(v); }
  JsonWriter& value(bool v) { return boolean(v); }
  JsonWriter& value(int64_t v) { return number(v); }
  JsonWriter& value(uint64_t v) { return number(v); }
  JsonWriter& value(int v) { return number(v); }
  JsonWriter& value(unsigned v) { return number(v); }
  JsonWriter& value(double v) { return number(v); }
  JsonWriter& value(std::nullptr_t) { return null(); }
  void separate();

  std::string& out_;
  uint64_t has_items_ = 0;  // bit d: the container at depth d already has an element
  unsigned depth_ = 0;
  bool after_key_ = false;
};

// Appends `v` as a quoted, escaped JSON string.
void append_json_string(std::string& out, std::string_view v);

}  // namespace keygate::core
