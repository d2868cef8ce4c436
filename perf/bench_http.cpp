// HTTP parse of a typical GET /v1/auth request, as a gateway sends it.
#include <benchmark/benchmark.h>

#include <string>

#include "net/http_parser.hpp"
#include "perf/alloc_counter.hpp"

using namespace keygate::net;

static void BM_ParseAuthRequest(benchmark::State& state) {
  std::string req =
      "GET /v1/auth HTTP/1.1\r\nHost: keygate.internal\r\nUser-Agent: nginx\r\n"
      "Authorization: Bearer sk_live_9U8H4W4HXixQpHS4tX9OfPC3kYyZhvcj3djyQO\r\n"
      "X-Required-Scopes: api_keys:read\r\nX-Original-URI: /api/orders?page=2\r\n"
      "X-Forwarded-For: 10.1.2.3\r\nConnection: keep-alive\r\n\r\n";
  HttpParser parser;
  const size_t before = keygate::perf::t_allocations;
  for (auto _ : state) {
    if (parser.parse(req.data(), req.size()) != HttpParser::Event::request) state.SkipWithError("no request");
    benchmark::DoNotOptimize(parser.request().header("authorization"));
    parser.next();
    parser.rebase(req.size());
  }
  state.counters["allocs/op"] = benchmark::Counter(
      static_cast<double>(keygate::perf::t_allocations - before) / static_cast<double>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * req.size()));
}
BENCHMARK(BM_ParseAuthRequest);
