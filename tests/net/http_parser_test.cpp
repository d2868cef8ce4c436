#include "net/http_parser.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

using namespace keygate::net;
using Event = HttpParser::Event;

namespace {

// Feeds `input` in pieces of `step` bytes into one growing buffer, as a connection does,
// and collects every request (method, target, body).
struct Fed {
  std::vector<std::string> requests;
  Event last = Event::need_more;
};

Fed feed(const std::string& input, size_t step, ParserLimits limits = {}) {
  HttpParser p(limits);
  std::string buf;
  Fed out;
  for (size_t pos = 0; pos < input.size();) {
    buf.append(input, pos, step);
    pos += step;
    for (;;) {
      Event e = p.parse(buf.data(), buf.size());
      if (e == Event::request) {
        const Request& r = p.request();
        out.requests.push_back(std::string(r.method_name) + " " + std::string(r.target) + " " +
                               std::string(r.body));
        p.next();
        continue;
      }
      if (e == Event::expect_continue) continue;
      out.last = e;
      if (e != Event::need_more) return out;
      break;
    }
  }
  return out;
}

}  // namespace

TEST(HttpParser, ParsesARequestSplitAcrossEveryPossibleRead) {
  const std::string req =
      "POST /v1/keys/verify?x=1 HTTP/1.1\r\nHost: a\r\nX-Api-Key: abc\r\nContent-Length: "
      "11\r\n\r\n{\"key\":\"k\"}";
  for (size_t step = 1; step <= req.size(); ++step) {
    Fed f = feed(req, step);
    ASSERT_EQ(f.requests.size(), 1u) << "step " << step;
    EXPECT_EQ(f.requests[0], "POST /v1/keys/verify?x=1 {\"key\":\"k\"}");
  }
}

TEST(HttpParser, HeadersAreViewsWithCaseInsensitiveLookup) {
  HttpParser p;
  std::string buf =
      "GET /v1/auth?scopes=a HTTP/1.1\r\nAuthorization:  Bearer sk  \r\nOrigin: "
      "https://a.b\r\n\r\n";
  ASSERT_EQ(p.parse(buf.data(), buf.size()), Event::request);
  const Request& r = p.request();
  EXPECT_EQ(r.method, Method::get);
  EXPECT_EQ(r.path, "/v1/auth");
  EXPECT_EQ(r.query, "scopes=a");
  EXPECT_EQ(r.header("authorization"), "Bearer sk");
  EXPECT_EQ(r.header("ORIGIN"), "https://a.b");
  EXPECT_TRUE(r.header("x-missing").empty());
  EXPECT_TRUE(r.keep_alive);
  EXPECT_GE(r.path.data(), buf.data());  // a view into the buffer, not a copy
  EXPECT_LT(r.path.data(), buf.data() + buf.size());
}

TEST(HttpParser, SeveralHeadersInOnePassTakeTheFirstOfEachName) {
  HttpParser p;
  std::string buf =
      "GET /v1/auth HTTP/1.1\r\nX-API-KEY: first\r\nOrigin: https://a.b\r\nx-api-key: second\r\n"
      "X-Api-Kez: not it\r\nAuthorization: Bearer sk\r\n"
      "X-A-Header-Name-Longer-Than-Thirty-Two: long\r\n\r\n";
  ASSERT_EQ(p.parse(buf.data(), buf.size()), Event::request);
  static constexpr std::array<std::string_view, 5> kNames = {
      "x-api-key", "authorization", "x-missing", "origin",
      "x-a-header-name-longer-than-thirty-two"};
  std::array<std::string_view, 5> v{"stale", "stale", "stale", "stale", "stale"};
  p.request().headers_named(kNames, v);
  EXPECT_EQ(v[0], "first");
  EXPECT_EQ(v[1], "Bearer sk");
  EXPECT_TRUE(v[2].empty());
  EXPECT_EQ(v[3], "https://a.b");
  EXPECT_EQ(v[4], "long");
  for (size_t i = 0; i < kNames.size(); ++i)
    EXPECT_EQ(v[i], p.request().header(kNames[i])) << kNames[i];
}

// iequals compares eight bytes at a time: it must agree with the byte-by-byte definition
// for every pair of bytes, at every position of a word and of the tail.
TEST(HttpParser, IequalsAgreesWithTheByteByByteDefinition) {
  const auto lower = [](unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
  for (size_t len : {1u, 3u, 4u, 5u, 7u, 8u, 9u, 16u, 17u}) {
    for (size_t pos : {size_t{0}, len / 2, len - 1}) {
      std::string a(len, 'k'), b(len, 'K');
      for (int x = 0; x < 256; ++x) {
        for (int y = 0; y < 256; ++y) {
          a[pos] = static_cast<char>(x);
          b[pos] = static_cast<char>(y);
          ASSERT_EQ(iequals(a, b),
                    lower(static_cast<unsigned char>(x)) == lower(static_cast<unsigned char>(y)))
              << "len " << len << " pos " << pos << " bytes " << x << " " << y;
        }
      }
    }
  }
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("x-api-key", "x-api-ke"));
  EXPECT_TRUE(iequals("X-Client-Cert-SHA256", "x-client-cert-sha256"));
}

TEST(HttpParser, PipelinedRequestsComeOutInOrder) {
  std::string in;
  for (int i = 0; i < 100; ++i) in += "GET /r" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n";
  for (size_t step : {size_t{7}, size_t{64}, in.size()}) {
    Fed f = feed(in, step);
    ASSERT_EQ(f.requests.size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(f.requests[i], "GET /r" + std::to_string(i) + " ");
  }
}

TEST(HttpParser, ChunkedBodiesBecomeOneContiguousView) {
  const std::string req =
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n "
      "\r\n5\r\nworld\r\n0\r\n\r\n"
      "GET /after HTTP/1.1\r\n\r\n";
  for (size_t step : {size_t{1}, size_t{3}, req.size()}) {
    Fed f = feed(req, step);
    ASSERT_EQ(f.requests.size(), 2u) << step;
    EXPECT_EQ(f.requests[0], "POST /x hello world");
    EXPECT_EQ(f.requests[1], "GET /after ");
  }
}

TEST(HttpParser, OversizedHeadersAre431) {
  ParserLimits l;
  l.max_header_bytes = 1024;
  EXPECT_EQ(feed("GET / HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n", 100, l).last,
            Event::headers_too_large);
  EXPECT_EQ(feed("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\n\r\n", 100, l).last,
            Event::headers_too_large);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 100; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(feed(many + "\r\n", 4096).last, Event::headers_too_large);
  // Slowly growing headers with no end are cut off too.
  EXPECT_EQ(feed("GET / HTTP/1.1\r\nX-A: " + std::string(1500, 'a'), 10, l).last,
            Event::headers_too_large);
}

TEST(HttpParser, OversizedBodiesAre413ByLengthOrByChunks) {
  ParserLimits l;
  l.max_body_bytes = 10;
  EXPECT_EQ(feed("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 64, l).last,
            Event::body_too_large);
  EXPECT_EQ(feed("POST / HTTP/1.1\r\nTransfer-Encoding: "
                 "chunked\r\n\r\n8\r\naaaaaaaa\r\n8\r\naaaaaaaa\r\n0\r\n\r\n",
                 64, l)
                .last,
            Event::body_too_large);
}

TEST(HttpParser, MalformedRequestsAreRejected) {
  EXPECT_EQ(feed("NOT HTTP AT ALL\r\n\r\n", 64).last, Event::malformed);
  EXPECT_EQ(feed("GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 64).last,
            Event::malformed);
  EXPECT_EQ(feed("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 64).last, Event::malformed);
  EXPECT_EQ(feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 64).last,
            Event::malformed);
}

TEST(HttpParser, ExpectContinueIsReportedOnceBeforeTheBody) {
  HttpParser p;
  std::string buf = "POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
  EXPECT_EQ(p.parse(buf.data(), buf.size()), Event::expect_continue);
  EXPECT_EQ(p.parse(buf.data(), buf.size()), Event::need_more);
  buf += "ok";
  ASSERT_EQ(p.parse(buf.data(), buf.size()), Event::request);
  EXPECT_EQ(p.request().body, "ok");
}

TEST(HttpParser, ConnectionCloseAndHttp10EndKeepAlive) {
  HttpParser p;
  std::string buf = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(p.parse(buf.data(), buf.size()), Event::request);
  EXPECT_FALSE(p.request().keep_alive);
  HttpParser q;
  std::string old = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_EQ(q.parse(old.data(), old.size()), Event::request);
  EXPECT_FALSE(q.request().keep_alive);
}

TEST(HttpParser, RebaseKeepsAPartialRequestIntact) {
  HttpParser p;
  std::string buf = "GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\nX-A: b";
  ASSERT_EQ(p.parse(buf.data(), buf.size()), Event::request);
  p.next();
  ASSERT_EQ(p.parse(buf.data(), buf.size()), Event::need_more);
  const size_t done = p.message_start();
  buf.erase(0, done);
  p.rebase(done);
  buf += "c\r\n\r\n";
  ASSERT_EQ(p.parse(buf.data(), buf.size()), Event::request);
  EXPECT_EQ(p.request().path, "/two");
  EXPECT_EQ(p.request().header("x-a"), "bc");
}

namespace {

// Everything a parser made of `input` given whole: each request's fields, then the event
// that ended it, so that two parsers can be compared field by field.
std::string transcript(HttpParser& p, std::string input) {
  std::string out;
  for (;;) {
    const Event e = p.parse(input.data(), input.size());
    out += "event " + std::to_string(static_cast<int>(e)) + "\n";
    if (e != Event::request) return out;
    const Request& r = p.request();
    out += std::to_string(static_cast<int>(r.method)) + " [" + std::string(r.method_name) + "] [" +
           std::string(r.target) + "] [" + std::string(r.path) + "] [" + std::string(r.query) +
           "] keep-alive " + std::to_string(r.keep_alive) + " body [" + std::string(r.body) + "]\n";
    for (uint32_t i = 0; i < r.header_count; ++i)
      out +=
          "  [" + std::string(r.headers[i].name) + "] [" + std::string(r.headers[i].value) + "]\n";
    p.next();
    out += "next at " + std::to_string(p.message_start()) + "\n";
  }
}

// A request (or two), and whether the fast path takes the first one whole.
struct Sample {
  std::string text;
  bool fast;
};

const std::vector<Sample>& sample_requests() {
  static const std::vector<Sample> samples = [] {
    const std::string key = "sk_live_4fYb2kQ8rT1mZp9LxW3nVc7HdJ6sGa5E0uRt2Yi8";
    std::vector<Sample> v = {
        {"GET /v1/auth HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer " + key +
             "\r\nX-Original-URI: /api/items?id=7\r\nX-Original-Method: GET\r\nOrigin: "
             "https://app.example.com\r\n"
             "User-Agent: nginx\r\nAccept: */*\r\n\r\n",
         true},
        {"GET /v1/auth?scopes=read%20write HTTP/1.1\r\nX-Api-Key:\t" + key +
             " \t\r\nX-Empty:\r\nX-Blank:   \r\n\r\n",
         true},
        {"GET / HTTP/1.1\r\n\r\nGET /second?x=1&y=%2F HTTP/1.1\r\nhost: a\r\n\r\n", true},
        {"GET /v1/auth HTTP/1.1\r\nX-Forwarded-Uri: /a b\r\nX-Tab: a\tb\r\n\r\nGET /t "
         "HTTP/1.1\r\nHost",
         true},
        {"HEAD /v1/auth HTTP/1.1\r\nHost: a\r\n\r\n", false},
        {"POST /v1/keys/verify HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /v1/auth "
         "HTTP/1.1\r\n\r\n",
         false},
        {"GET /v1/auth HTTP/1.0\r\nHost: a\r\n\r\n", false},
        {"GET /v1/auth HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"GET /v1/auth HTTP/1.1\r\nConnection: Keep-Alive \r\n\r\nGET / HTTP/1.1\r\nConnection: "
         "keep-alive, close\r\n\r\n",
         true},
        {"GET /v1/auth HTTP/1.1\r\nconnection: keep-alive\r\nProxy-Connection: close\r\n\r\n",
         false},
        {"GET /v1/auth HTTP/1.1\r\nContent-Length: 0\r\n\r\n", false},
        {"GET /v1/auth HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
        {"GET /v1/auth HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", false},
        {"GET /v1/auth HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", false},
        {"GET http://keygate/v1/auth?a=b HTTP/1.1\r\nHost: keygate\r\n\r\n", false},
        {"GET /v1/auth#frag HTTP/1.1\r\n\r\n", false},
        {"GET /v1/auth HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n", false},
        {"GET /v1/auth HTTP/1.1\nHost: a\n\n", false},
        {"GET /v1/auth HTTP/1.1\r\nHost : a\r\n\r\n", false},
        {"GET /v1/auth HTTP/1.1\r\nX-Utf8: caf\xc3\xa9\r\n\r\n", false},
        {"\r\nGET /v1/auth HTTP/1.1\r\n\r\n", false},
    };
    std::string many = "GET /many HTTP/1.1\r\n";
    for (size_t i = 0; i < kMaxHeaders; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    v.push_back({many + "\r\n", true});  // exactly the most headers a request may have
    v.push_back({many + "X-One-More: v\r\n\r\n", false});  // one more: 431
    return v;
  }();
  return samples;
}

}  // namespace

TEST(HttpParser, TheFastPathTakesPlainGetsWholeAndLeavesTheRestToLlhttp) {
  for (const Sample& sample : sample_requests()) {
    std::string buf = sample.text;
    HttpParser p;
    const Event e = p.parse(buf.data(), buf.size());
    EXPECT_EQ(p.fast_path_requests() == 1, sample.fast) << ::testing::PrintToString(sample.text);
    if (sample.fast) {
      EXPECT_EQ(e, Event::request) << ::testing::PrintToString(sample.text);
    }
  }
  // A request split across reads goes to llhttp, which then finishes it.
  const std::string& typical = sample_requests()[0].text;
  for (size_t cut = 1; cut < typical.size(); ++cut) {
    HttpParser p;
    std::string buf = typical.substr(0, cut);
    ASSERT_EQ(p.parse(buf.data(), buf.size()), Event::need_more) << cut;
    buf += typical.substr(cut);
    ASSERT_EQ(p.parse(buf.data(), buf.size()), Event::request) << cut;
    EXPECT_EQ(p.fast_path_requests(), 0u);
    EXPECT_TRUE(p.request().header("authorization").starts_with("Bearer sk_live_")) << cut;
  }
}

TEST(HttpParser, TheFastPathAgreesWithLlhttpOnEveryRequestItTakes) {
  // Differential: the samples, and 300,000 mutations of them (bytes replaced,
  // inserted, deleted, favouring the bytes HTTP's grammar turns on), parsed by a parser
  // with the fast path and by llhttp alone: the transcripts must be identical.
  std::vector<std::string> all, taken;
  for (const Sample& sample : sample_requests()) {
    all.push_back(sample.text);
    if (sample.fast) taken.push_back(sample.text);
  }
  static constexpr char kBytes[] =
      "\r\n\t :;,/?#%\"\\\x7f\x80\xff\x00"
      "aZ0-_.~";
  const std::string interesting(kBytes, sizeof kBytes - 1);
  std::mt19937_64 rng(20261130);
  uint64_t fast = 0, compared = 0;
  auto check = [&](const std::string& input) {
    HttpParser with_fast_path, reference({}, false);
    const std::string a = transcript(with_fast_path, input), b = transcript(reference, input);
    ASSERT_EQ(a, b) << "input: " << ::testing::PrintToString(input);
    ASSERT_EQ(reference.fast_path_requests(), 0u);
    fast += with_fast_path.fast_path_requests();
    ++compared;
  };
  for (const auto& s : all) check(s);
  for (int round = 0; round < 300'000; ++round) {
    // Half from the samples the fast path takes before they are mutated.
    const auto& from = rng() % 2 ? taken : all;
    std::string s = from[rng() % from.size()];
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0 && !s.empty(); --edits) {
      const size_t at = rng() % s.size();
      const char byte =
          rng() % 4 ? interesting[rng() % interesting.size()] : static_cast<char>(rng());
      switch (rng() % 3) {
        case 0:
          s[at] = byte;
          break;
        case 1:
          s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), byte);
          break;
        default:
          s.erase(at, 1);
          break;
      }
    }
    check(s);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // Not vacuous: the fast path took a good share of the mutated requests.
  EXPECT_GT(fast, compared / 4) << fast << " of " << compared;
}

TEST(HttpParser, TheFastPathKeepsTheHeaderLimit) {
  // A plain GET that arrives whole is the fast path's; one past the request line + headers
  // limit must still be 431 (docs/api.md §1.1: 16 KiB by default), exactly as llhttp alone decides
  // it.
  ParserLimits l;
  l.max_header_bytes = 1024;
  const std::string head = "GET /v1/auth HTTP/1.1\r\nX-Pad: ";
  for (size_t total = 1000; total <= 1048; ++total) {
    std::string req = head + std::string(total - head.size() - 4, 'a') + "\r\n\r\n";
    ASSERT_EQ(req.size(), total);
    std::string copy = req;
    HttpParser fast(l), reference(l, false);
    const Event e = fast.parse(req.data(), req.size());
    EXPECT_EQ(e, reference.parse(copy.data(), copy.size())) << total;
    if (total <= l.max_header_bytes) {
      EXPECT_EQ(e, Event::request) << total;
      EXPECT_EQ(fast.fast_path_requests(), 1u) << total;
    } else {
      EXPECT_EQ(fast.fast_path_requests(), 0u) << total;  // past the limit: llhttp's to judge
    }
    if (total >= l.max_header_bytes + 8) {
      EXPECT_EQ(e, Event::headers_too_large) << total;
    }
  }
}

// A connection whose receive buffer is empty (or not allocated yet) may ask again with no
// new bytes: nothing happens, and llhttp is not handed a null pointer (found by the server
// fuzz target under clang's UBSan: llhttp computed null + 0).
TEST(HttpParser, NoNewBytesIsNeedMoreEvenWithoutABuffer) {
  HttpParser p(ParserLimits{}, /*fast_path=*/false);
  EXPECT_EQ(p.parse(nullptr, 0), Event::need_more);
  std::string buf = "GET /healthz HTTP/1.1\r\nHost: a\r\n";
  EXPECT_EQ(p.parse(buf.data(), buf.size()), Event::need_more);
  EXPECT_EQ(p.parse(buf.data(), buf.size()), Event::need_more);  // the same bytes again
  buf += "\r\n";
  EXPECT_EQ(p.parse(buf.data(), buf.size()), Event::request);
  EXPECT_EQ(p.request().target, "/healthz");
}
