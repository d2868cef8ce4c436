// The bytes of an answer (net/response.cpp): every piece in its place, exactly once.
#include "net/response.hpp"

#include <gtest/gtest.h>

using namespace keygate::net;

namespace {
constexpr std::string_view kDate = "Tue, 24 Nov 2026 09:00:00 GMT";
}

TEST(Response, AnAnswerWithABodyCarriesItsTypeLengthAndHeaders) {
  Response r;
  r.reset();
  r.status = 201;
  r.add_header("X-Request-Id", "req_1");
  r.add_header("X-Empty", "");
  r.body = R"({"ok":true})";
  std::string out = "left over|";
  serialize(r, false, false, kDate, out);
  EXPECT_EQ(
      out,
      "left over|HTTP/1.1 201 Created\r\nServer: keygate\r\nDate: Tue, 24 Nov 2026 09:00:00 GMT\r\n"
      "Content-Type: application/json\r\nContent-Length: 11\r\nX-Request-Id: req_1\r\nX-Empty: "
      "\r\n\r\n"
      R"({"ok":true})");
}

TEST(Response, NoBodyMeansNoTypeAndHeadKeepsTheLengthButNotTheBody) {
  Response r;
  r.reset();
  r.status = 401;
  r.add_header("WWW-Authenticate", "Bearer");
  std::string out;
  serialize(r, false, true, kDate, out);
  EXPECT_EQ(
      out,
      "HTTP/1.1 401 Unauthorized\r\nServer: keygate\r\nDate: Tue, 24 Nov 2026 09:00:00 GMT\r\n"
      "Content-Length: 0\r\nConnection: close\r\nWWW-Authenticate: Bearer\r\n\r\n");
  r.reset();
  r.body = "[]";
  out.clear();
  serialize(r, true, false, kDate, out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nServer: keygate\r\nDate: Tue, 24 Nov 2026 09:00:00 GMT\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n");
}

TEST(Response, ATypedBodyOnAClosingConnectionHasEveryPiece) {
  Response r;
  r.reset();
  r.status = 400;
  r.add_header("X-Request-Id", "req_2");
  r.body = "{}";
  std::string out;
  serialize(r, false, true, kDate, out);
  EXPECT_EQ(out,
            "HTTP/1.1 400 Bad Request\r\nServer: keygate\r\nDate: Tue, 24 Nov 2026 09:00:00 GMT\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n"
            "X-Request-Id: req_2\r\n\r\n{}");
}

TEST(Response, AnUnlistedStatusStillGetsAWellFormedLine) {
  Response r;
  r.reset();
  r.status = 418;
  std::string out;
  serialize(r, false, false, kDate, out);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 418 Unknown\r\n")) << out;
  EXPECT_TRUE(out.ends_with("Content-Length: 0\r\n\r\n")) << out;
}
