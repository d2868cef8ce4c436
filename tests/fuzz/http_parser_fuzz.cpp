// Fuzz target: the HTTP parser, differential. The same bytes, fed in pieces split at
// points the input chooses, to a parser with the fast path for plain GETs and to one that
// sends everything through llhttp: the requests they return (method, target, headers,
// body, keep-alive) and the events must be identical, and neither may crash or read out
// of bounds. This is the connection's whole parsing state machine: pipelining, chunked
// bodies, Expect, the header and body limits.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "net/http_parser.hpp"

using keygate::net::HttpParser;
using keygate::net::ParserLimits;

namespace {

// Feeds `input` in pieces: the first byte of the input picks the split points' seed; the
// buffer grows as a connection's does and is compacted as the connection does after each
// request. Returns the transcript.
std::string transcript(HttpParser& p, const uint8_t* data, size_t size, uint8_t seed) {
  std::string out, buf;
  size_t fed = 0;
  uint32_t state = seed * 2654435761u + 1;
  while (fed < size || !buf.empty()) {
    if (fed < size) {
      state = state * 1103515245u + 12345u;
      const size_t piece = 1 + (state >> 16) % 64;
      const size_t n = std::min(piece, size - fed);
      buf.append(reinterpret_cast<const char*>(data) + fed, n);
      fed += n;
    }
    for (;;) {
      const HttpParser::Event e = p.parse(buf.data(), buf.size());
      if (e == HttpParser::Event::need_more) break;
      out += "event " + std::to_string(static_cast<int>(e)) + "\n";
      if (e == HttpParser::Event::expect_continue) continue;
      if (e != HttpParser::Event::request) return out;  // the connection would close
      const auto& r = p.request();
      out += std::to_string(static_cast<int>(r.method)) + " [" + std::string(r.method_name) +
             "] [" + std::string(r.target) + "] [" + std::string(r.path) + "] [" +
             std::string(r.query) + "] " + std::to_string(r.keep_alive) + " [" +
             std::string(r.body) + "]\n";
      for (uint32_t i = 0; i < r.header_count; ++i)
        out += "  [" + std::string(r.headers[i].name) + "] [" + std::string(r.headers[i].value) +
               "]\n";
      p.next();
      if (const size_t done = p.message_start()) {
        buf.erase(0, done);
        p.rebase(done);
      }
    }
    if (fed >= size) break;
  }
  return out + "end\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ParserLimits limits;
  limits.max_header_bytes = 2048;  // small, so that the fuzzer reaches the limits
  limits.max_body_bytes = 4096;
  HttpParser fast(limits), reference(limits, false);
  const std::string a = transcript(fast, data + 1, size - 1, data[0]);
  const std::string b = transcript(reference, data + 1, size - 1, data[0]);
  if (a != b) std::abort();  // the fast path disagrees with llhttp
  return 0;
}
