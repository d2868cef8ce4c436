#include "core/json_writer.hpp"

#include <gtest/gtest.h>

using namespace keygate::core;

TEST(JsonWriter, InsertsCommasAndNests) {
  std::string out;
  JsonWriter w(out);
  w.begin_object()
      .field("a", 1)
      .key("b")
      .begin_array()
      .number(1)
      .string("x")
      .null()
      .boolean(true)
      .end_array();
  w.key("c").begin_object().end_object().field("d", std::string_view("e")).end_object();
  EXPECT_EQ(out, R"({"a":1,"b":[1,"x",null,true],"c":{},"d":"e"})");
}

TEST(JsonWriter, EscapesQuotesBackslashesAndEveryControlCharacter) {
  std::string out;
  append_json_string(out, std::string_view("q\"b\\n\nt\tz\x01\x1f", 11));
  EXPECT_EQ(out, R"("q\"b\\n\nt\tz\u0001\u001f")");
}

TEST(JsonWriter, KeepsValidUtf8AndReplacesInvalidBytes) {
  std::string out;
  append_json_string(out, "caf\xC3\xA9 \xE2\x80\xA6");
  EXPECT_EQ(out, "\"caf\xC3\xA9 \xE2\x80\xA6\"");
  out.clear();
  append_json_string(out,
                     "a\xFF"
                     "b\xC3");
  EXPECT_EQ(out,
            "\"a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD\"");
  out.clear();
  append_json_string(out, "\xED\xA0\x80");  // a UTF-16 surrogate encoded in UTF-8 is not valid
  EXPECT_EQ(out, "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST(JsonWriter, NonFiniteNumbersBecomeNull) {
  std::string out;
  JsonWriter(out)
      .begin_array()
      .number(1.5)
      .number(std::numeric_limits<double>::infinity())
      .end_array();
  EXPECT_EQ(out, "[1.5,null]");
}
