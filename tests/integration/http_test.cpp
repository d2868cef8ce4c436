// HTTP/1.1 behaviour of the real server: keep-alive, pipelining, limits, 404/405, HEAD,
// Expect: 100-continue, chunked bodies, malformed requests, graceful shutdown.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <thread>

#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

int count(const std::string& hay, const std::string& needle) {
  int n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(Http, EveryResponseCarriesARequestId) {
  ServerProcess s;
  auto r = http(s.port(), "GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-request-id").substr(0, 4), "req_");
  EXPECT_EQ(r.header("x-request-id").size(), 30u);
  auto e = http(s.port(), "GET", "/nope");
  EXPECT_EQ(e.header("x-request-id").substr(0, 4), "req_");
  EXPECT_EQ(str(parse_json(e.body), "/meta/request_id"), e.header("x-request-id"));
}

TEST(Http, KeepAliveServesManyRequestsOnOneConnection) {
  ServerProcess s;
  int fd = connect_to(s.port());
  for (int i = 0; i < 20; ++i) {
    const std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
    std::string resp = read_some(fd, 200);
    ASSERT_NE(resp.find("HTTP/1.1 200 OK"), std::string::npos) << i;
  }
  ::close(fd);
}

TEST(Http, HundredPipelinedRequestsAreAnsweredInOrder) {
  ServerProcess s;
  std::string in;
  for (int i = 0; i < 100; ++i)
    in += i % 2 ? "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                : "GET /missing" + std::to_string(i) + " HTTP/1.1\r\n\r\n";
  const std::string out = send_raw(s.port(), in, 3000);
  EXPECT_EQ(count(out, "HTTP/1.1 "), 100);
  size_t pos = 0;
  for (int i = 0; i < 100; ++i) {
    const size_t at = out.find("HTTP/1.1 ", pos);
    ASSERT_NE(at, std::string::npos);
    EXPECT_EQ(out.substr(at + 9, 3), i % 2 ? "200" : "404") << "response " << i;
    pos = at + 1;
  }
}

TEST(Http, ConnectionCloseIsHonoured) {
  ServerProcess s;
  const std::string out = send_raw(
      s.port(), "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
      2000, false);
  EXPECT_EQ(count(out, "HTTP/1.1 200"), 1);
  EXPECT_NE(out.find("Connection: close"), std::string::npos);
}

TEST(Http, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  ServerProcess s;
  auto nf = http(s.port(), "GET", "/v2/whatever");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(str(parse_json(nf.body), "/error/type"), "not_found_error");
  auto na = http(s.port(), "DELETE", "/v1/organizations");
  EXPECT_EQ(na.status, 405);
  EXPECT_EQ(na.header("allow"), "POST, GET, HEAD");
  EXPECT_EQ(str(parse_json(na.body), "/error/code"), "method_not_allowed");
}

TEST(Http, HeadAnswersLikeGetWithoutABody) {
  ServerProcess s;
  const std::string out =
      send_raw(s.port(), "HEAD /healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(count(out, "HTTP/1.1 200"), 2);
  EXPECT_EQ(count(out, "Content-Length: 15"), 2);
  EXPECT_EQ(count(out, "{\"status\":\"ok\"}"), 1);  // only the GET has the body
}

TEST(Http, OversizedHeadersAre431AndTheConnectionCloses) {
  ServerProcess s;
  const std::string out =
      send_raw(s.port(), "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 431"), std::string::npos);
  EXPECT_NE(out.find("\"code\":\"headers_too_large\""), std::string::npos);
  EXPECT_NE(out.find("X-Request-Id: req_"), std::string::npos);
}

TEST(Http, OversizedBodiesAre413) {
  ServerProcess s({"--max-body-bytes", "2048"});
  const std::string out =
      send_raw(s.port(), "POST /v1/keys/verify HTTP/1.1\r\nContent-Length: 4096\r\n\r\n" +
                             std::string(4096, 'a'));
  EXPECT_NE(out.find("HTTP/1.1 413"), std::string::npos);
  EXPECT_NE(out.find("\"code\":\"body_too_large\""), std::string::npos);
}

TEST(Http, MalformedRequestsAre400ThenClose) {
  ServerProcess s;
  const std::string out =
      send_raw(s.port(), "GARBAGE\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n", 2000, false);
  EXPECT_NE(out.find("HTTP/1.1 400"), std::string::npos);
  EXPECT_EQ(out.find("HTTP/1.1 200"), std::string::npos);
}

TEST(Http, SlowHeadersGet408ThenClose) {
  ServerProcess s({"--header-timeout-ms", "300"});
  int fd = connect_to(s.port());
  const std::string part = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  ::send(fd, part.data(), part.size(), 0);
  const std::string out = read_some(fd, 3000);
  EXPECT_NE(out.find("HTTP/1.1 408"), std::string::npos);
  EXPECT_NE(out.find("request_timeout"), std::string::npos);
  ::close(fd);
}

TEST(Http, IdleConnectionsAreClosed) {
  ServerProcess s({"--idle-timeout-ms", "300"});
  int fd = connect_to(s.port());
  const auto t0 = std::chrono::steady_clock::now();
  char b;
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(::recv(fd, &b, 1, 0), 0);  // closed by the server
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  ::close(fd);
}

TEST(Http, ConnectionsBeyondTheLimitAreRefused) {
  ServerProcess s({"--max-connections", "4"});
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) {
    fds.push_back(connect_to(s.port()));
    const std::string req = "GET /healthz HTTP/1.1\r\n\r\n";
    ::send(fds.back(), req.data(), req.size(), 0);
    ASSERT_NE(read_some(fds.back(), 300).find("200 OK"), std::string::npos);
  }
  const std::string out = send_raw(s.port(), "GET /healthz HTTP/1.1\r\n\r\n", 1000);
  EXPECT_EQ(out.find("200 OK"), std::string::npos);
  for (int fd : fds) ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_NE(send_raw(s.port(), "GET /healthz HTTP/1.1\r\n\r\n").find("200 OK"), std::string::npos);
}

TEST(Http, ExpectContinueGets100BeforeTheBody) {
  ServerProcess s;
  int fd = connect_to(s.port());
  const std::string head =
      "POST /v1/keys/verify HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
  ::send(fd, head.data(), head.size(), 0);
  EXPECT_NE(read_some(fd, 300).find("HTTP/1.1 100 Continue"), std::string::npos);
  ::send(fd, "{}", 2, 0);
  EXPECT_NE(read_some(fd, 300).find("HTTP/1.1 401"), std::string::npos);  // no key sent
  ::close(fd);
}

TEST(Http, ChunkedRequestBodiesAreAccepted) {
  ServerProcess s;
  const std::string body = "{\"name\":\"Chunky\"}";
  const std::string req = "POST /v1/organizations HTTP/1.1\r\nAuthorization: Bearer " +
                          s.root_key() + "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n" +
                          body.substr(0, 5) + "\r\n" + std::to_string(body.size() - 5) + "\r\n" +
                          body.substr(5) + "\r\n0\r\n\r\n";
  std::string hex = req;
  {
    char n[8];
    snprintf(n, sizeof n, "%zx", body.size() - 5);
    hex.replace(hex.find("\r\n" + std::to_string(body.size() - 5) + "\r\n") + 2,
                std::to_string(body.size() - 5).size(), n);
  }
  const std::string out = send_raw(s.port(), hex);
  EXPECT_NE(out.find("HTTP/1.1 201"), std::string::npos) << out;
  EXPECT_NE(out.find("\"slug\":\"chunky\""), std::string::npos);
}

TEST(Http, GracefulShutdownFinishesTheRequestInFlight) {
  ServerProcess s;
  int fd = connect_to(s.port());
  // Half a request is in flight when SIGTERM arrives; the rest follows shortly after.
  const std::string body = "{\"name\":\"Late\"}";
  const std::string head = "POST /v1/organizations HTTP/1.1\r\nAuthorization: Bearer " +
                           s.root_key() + "\r\nContent-Length: " + std::to_string(body.size()) +
                           "\r\n\r\n";
  ::send(fd, head.data(), head.size(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::kill(s.pid(), SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::send(fd, body.data(), body.size(), 0);
  const std::string out = read_some(fd, 5000);
  EXPECT_NE(out.find("HTTP/1.1 201"), std::string::npos) << out;
  EXPECT_NE(out.find("Connection: close"), std::string::npos);
  ::close(fd);
  EXPECT_EQ(s.wait_exit(), 0);
  EXPECT_NE(s.log().find("\"event\":\"stopped\""), std::string::npos);
}

// From the moment keygate says it is ready (and tells systemd READY=1), SIGTERM and SIGINT
// stop it gracefully and SIGUSR1 asks for a snapshot: none of them may take its default
// action, the end of the process. The harness reads the caught signals from /proc the
// instant the ready line arrives, and the signals are sent at once, several times over.
TEST(Http, SignalsSentRightAfterReadyAreHandledNotFatal) {
  const uint64_t wanted =
      (1ull << (SIGTERM - 1)) | (1ull << (SIGINT - 1)) | (1ull << (SIGUSR1 - 1));
  for (int i = 0; i < 10; ++i) {
    uint64_t caught = 0;
    ServerProcess s({}, {}, [&caught](pid_t pid) {
      std::ifstream status("/proc/" + std::to_string(pid) + "/status");
      for (std::string line; std::getline(status, line);)
        if (line.rfind("SigCgt:", 0) == 0) caught = std::stoull(line.substr(7), nullptr, 16);
    });
    EXPECT_EQ(caught & wanted, wanted) << std::hex << caught;
    ::kill(s.pid(), SIGUSR1);
    EXPECT_EQ(s.stop(), 0) << s.log();
  }
}

// Neither a connection that never sent a request nor a keep-alive connection idle after
// its answer holds up a stop (a drain waits a moment for the next request of an answered
// one, then closes it).
TEST(Http, IdleConnectionsDoNotHoldUpShutdown) {
  ServerProcess s;
  int fd = connect_to(s.port());
  int answered = connect_to(s.port());
  const std::string ask = "GET /healthz HTTP/1.1\r\nHost: keygate\r\n\r\n";
  ASSERT_EQ(::send(answered, ask.data(), ask.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(ask.size()));
  ASSERT_NE(read_some(answered, 500).find("HTTP/1.1 200"), std::string::npos);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(s.stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  ::close(answered);
  ::close(fd);
}
