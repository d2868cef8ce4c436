#include "handlers/query.hpp"

#include <gtest/gtest.h>

#include <cstdint>

using namespace keygate::handlers;

TEST(Query, FindsParametersByExactName) {
  EXPECT_EQ(query_param("a=1&limit=20&b", "limit"), "20");
  EXPECT_EQ(query_param("a=1&b", "b"), "");
  EXPECT_FALSE(query_param("a=1&limits=2", "limit"));
  EXPECT_FALSE(query_param("", "limit"));
}

TEST(Query, PercentDecoding) {
  char out[32];
  size_t n = percent_decode("api_keys%3Aread%2Cx+y", out, sizeof out);
  EXPECT_EQ(std::string(out, n), "api_keys:read,x y");
  EXPECT_EQ(percent_decode("bad%2", out, sizeof out), SIZE_MAX);
  EXPECT_EQ(percent_decode("bad%zz", out, sizeof out), SIZE_MAX);
  EXPECT_EQ(percent_decode(std::string(40, 'a'), out, sizeof out), SIZE_MAX);
}
