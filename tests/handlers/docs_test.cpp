// docs/api.md is the API's reference: it names exactly the routes the server registers
// (with their methods), and every error code the handlers can send.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
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
  // "| GET | /v1/x |" in a table, or "`GET /v1/x`" in the text.
  const std::regex route(R"((GET|POST|PUT|PATCH|DELETE|HEAD)[ |`]+(/[A-Za-z0-9_.{}/-]*))");
  std::set<std::string> documented;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), route);
       it != std::sregex_iterator(); ++it)
    documented.insert((*it)[1].str() + " " + (*it)[2].str());
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
