// docs/api.md is the API's reference: it names exactly the routes the server registers
// (with their methods), and every error code the handlers can send.
#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "core/errors.hpp"
#include "handlers/errors.hpp"
#include "handlers/served_routes.hpp"

using namespace keygate;

namespace {

std::string api_reference() {
  std::ifstream in(KEYGATE_SOURCE_DIR "/docs/api.md");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST(ApiReference, NamesEveryRegisteredRouteAndNothingElse) {
  const std::set<std::string> served = keygate::testing::served_routes();
  const std::string text = api_reference();
  ASSERT_FALSE(text.empty()) << "docs/api.md is missing";
  // "| GET | /v1/x |" in a table, or "`GET /v1/x`" in the text: a method in capitals, then
  // spaces, bars or backticks, then a path. (Scanned by hand: g++ 12 warns inside
  // std::regex under the sanitizers.)
  std::set<std::string> documented;
  auto path_byte = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_.{}/-", c);
  };
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}) {
    const std::string m = method;
    for (size_t at = text.find(m); at != std::string::npos; at = text.find(m, at + 1)) {
      if (at > 0 && std::isalpha(static_cast<unsigned char>(text[at - 1]))) continue;
      size_t p = at + m.size();
      while (p < text.size() && (text[p] == ' ' || text[p] == '|' || text[p] == '`')) ++p;
      if (p == at + m.size() || p >= text.size() || text[p] != '/') continue;
      size_t end = p;
      while (end < text.size() && path_byte(text[end])) ++end;
      documented.insert(m + " " + text.substr(p, end - p));
    }
  }
  EXPECT_EQ(documented, served);
}

TEST(ApiReference, ListsEveryErrorCode) {
  const std::string text = api_reference();
  for (int c = static_cast<int>(core::ErrorCode::none) + 1;
       c <= static_cast<int>(core::ErrorCode::server_busy); ++c) {
    const std::string name(handlers::error_code_name(static_cast<core::ErrorCode>(c)));
    EXPECT_NE(text.find("`" + name + "`"), std::string::npos) << name << " is not in docs/api.md";
  }
}
