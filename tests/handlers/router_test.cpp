#include "handlers/router.hpp"

#include <gtest/gtest.h>

using namespace keygate;
using namespace keygate::handlers;

namespace {
void noop(Exchange&) {}
Router make() {
  return Router({{net::Method::get, "/v1/organizations/{id}", noop},
                 {net::Method::patch, "/v1/organizations/{id}", noop},
                 {net::Method::get, "/v1/organizations/{id}/api-keys/{keyId}", noop},
                 {net::Method::del, "/v1/organizations/{id}/api-keys/{keyId}", noop}});
}
}  // namespace

TEST(Router, MatchesPatternsAndCapturesParameters) {
  Router r = make();
  uint16_t route;
  std::array<std::string_view, 2> params;
  std::string allow;
  ASSERT_EQ(
      r.match(net::Method::get, "/v1/organizations/org_1/api-keys/key_2", route, params, allow),
      Router::Result::found);
  EXPECT_EQ(route, 2);
  EXPECT_EQ(params[0], "org_1");
  EXPECT_EQ(params[1], "key_2");
  ASSERT_EQ(r.match(net::Method::head, "/v1/organizations/org_1", route, params, allow),
            Router::Result::found);
  EXPECT_EQ(route, 0);
}

TEST(Router, UnknownPathsAre404AndWrongMethods405WithAllow) {
  Router r = make();
  uint16_t route;
  std::array<std::string_view, 2> params;
  std::string allow;
  EXPECT_EQ(r.match(net::Method::get, "/v1/nothing", route, params, allow),
            Router::Result::not_found);
  EXPECT_EQ(r.match(net::Method::get, "/v1/organizations/", route, params, allow),
            Router::Result::not_found);
  EXPECT_EQ(r.match(net::Method::get, "/v1/organizations/a/b", route, params, allow),
            Router::Result::not_found);
  ASSERT_EQ(r.match(net::Method::post, "/v1/organizations/org_1", route, params, allow),
            Router::Result::method_not_allowed);
  EXPECT_EQ(allow, "GET, HEAD, PATCH");
}

TEST(Router, PatternMatchingIsExact) {
  std::array<std::string_view, 2> p;
  EXPECT_TRUE(Router::match_pattern("/a/{x}", "/a/1", p));
  EXPECT_FALSE(Router::match_pattern("/a/{x}", "/a/", p));
  EXPECT_FALSE(Router::match_pattern("/a/{x}", "/a/1/", p));
  EXPECT_FALSE(Router::match_pattern("/a", "/ab", p));
  EXPECT_TRUE(Router::match_pattern("/healthz", "/healthz", p));
}
