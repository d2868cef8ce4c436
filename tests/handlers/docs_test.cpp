// docs/api.md is the API's reference: it names exactly the routes the server registers
// (with their methods), and every error code the handlers can send.
#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <filesystem>
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
  // Every code, up to the first value past the enum's end (its name reads "unknown").
  for (int c = static_cast<int>(core::ErrorCode::none) + 1; c < 256; ++c) {
    const std::string name(handlers::error_code_name(static_cast<core::ErrorCode>(c)));
    if (name == "unknown") break;
    EXPECT_NE(text.find("`" + name + "`"), std::string::npos) << name << " is not in docs/api.md";
  }
}

// docs/security.md names, for every rule, the test that fails if it breaks: each named test
// (`unit.Suite.Name`, `integration.Suite.Name`, or a `Suite.*` pattern) must exist.
TEST(SecurityModel, EveryRuleNamesATestThatExists) {
  std::ifstream in(KEYGATE_SOURCE_DIR "/docs/security.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  ASSERT_FALSE(doc.empty()) << "docs/security.md is missing";
  // Every TEST and TEST_F of the tests, as "Suite.Name".
  std::set<std::string> tests;
  for (const char* dir : {"core", "handlers", "integration", "net", "persistence", "cluster"}) {
    const std::string path = std::string(KEYGATE_SOURCE_DIR "/tests/") + dir;
    for (const auto& f : std::filesystem::directory_iterator(path)) {
      std::ifstream src(f.path());
      std::stringstream b;
      b << src.rdbuf();
      const std::string code = b.str();
      for (size_t at = code.find("TEST"); at != std::string::npos; at = code.find("TEST", at + 4)) {
        size_t open = at + 4;
        if (code.compare(open, 2, "_F") == 0) open += 2;
        if (code[open] != '(') continue;
        const size_t comma = code.find(',', open), close = code.find(')', open);
        if (comma == std::string::npos || close == std::string::npos || comma > close) continue;
        auto trim = [](std::string s) {
          while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
          while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
          return s;
        };
        tests.insert(trim(code.substr(open + 1, comma - open - 1)) + "." +
                     trim(code.substr(comma + 1, close - comma - 1)));
      }
    }
  }
  ASSERT_GT(tests.size(), 100u);
  size_t named = 0;
  for (const char* label : {"`unit.", "`integration."}) {
    for (size_t at = doc.find(label); at != std::string::npos; at = doc.find(label, at + 1)) {
      const size_t from = at + std::strlen(label), end = doc.find('`', from);
      const std::string name = doc.substr(from, end - from);
      ++named;
      if (name.find('*') == std::string::npos) {
        EXPECT_TRUE(tests.contains(name)) << name << " is named in docs/security.md";
        continue;
      }
      // "Suite.*" or "Suite.*Part*": some test of the suite matches.
      const std::string suite = name.substr(0, name.find('.'));
      const std::string part = name.substr(name.find('.') + 1);
      std::string needle;
      for (char c : part)
        if (c != '*') needle += c;
      bool found = false;
      for (const std::string& t : tests)
        found = found || (t.rfind(suite + ".", 0) == 0 && t.find(needle) != std::string::npos);
      EXPECT_TRUE(found) << name << " is named in docs/security.md";
    }
  }
  EXPECT_GT(named, 10u);
}
