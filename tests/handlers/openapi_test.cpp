// The OpenAPI document names exactly the routes the server registers, with their methods.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <set>

#include "handlers/served_routes.hpp"

using namespace keygate;

namespace keygate::handlers {
extern const std::string_view kOpenApiDocument;
}

TEST(OpenApi, DocumentsEveryRegisteredRouteAndNothingElse) {
  std::set<std::string> served;
  for (std::string route : keygate::testing::served_routes()) {  // "GET /x" -> "get /x", as OpenAPI
    for (size_t i = 0; i < route.find(' '); ++i)
      route[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(route[i])));
    served.insert(route);
  }
  simdjson::dom::parser parser;
  simdjson::padded_string doc(handlers::kOpenApiDocument);
  simdjson::dom::element root = parser.parse(doc);
  EXPECT_EQ(std::string_view(root["openapi"]), "3.1.0");
  std::set<std::string> documented;
  for (auto [path, item] : root["paths"].get_object())
    for (auto [method, op] : item.get_object())
      documented.insert(std::string(method) + " " + std::string(path));
  EXPECT_EQ(documented, served);
}
