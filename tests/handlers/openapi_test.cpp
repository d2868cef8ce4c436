// The OpenAPI document names exactly the routes the server registers, with their methods.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <set>

#include "core/index.hpp"
#include "handlers/app.hpp"
#include "handlers/idempotency.hpp"
#include "handlers/metrics.hpp"

using namespace keygate;

namespace keygate::handlers {
extern const std::string_view kOpenApiDocument;
}

TEST(OpenApi, DocumentsEveryRegisteredRouteAndNothingElse) {
  core::RcuThread rcu;
  core::Index index;
  handlers::Idempotency idem;
  handlers::Metrics metrics;
  handlers::AppContext ctx{index, idem, metrics, {}};
  handlers::App app(ctx);
  std::set<std::string> served;
  for (const auto& r : app.router().routes()) {
    std::string m(handlers::method_name(r.method));
    for (auto& c : m) c = static_cast<char>(std::tolower(c));
    served.insert(m + " " + std::string(r.pattern));
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
