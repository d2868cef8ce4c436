// HTTP parse of a typical GET /v1/auth request, as a gateway sends it, and the cost of
// recording its metrics.
#include <benchmark/benchmark.h>

#include <string>

#include "core/rate_limit.hpp"
#include "handlers/metrics.hpp"
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
    if (parser.parse(req.data(), req.size()) != HttpParser::Event::request)
      state.SkipWithError("no request");
    benchmark::DoNotOptimize(parser.request().header("authorization"));
    parser.next();
    parser.rebase(req.size());
  }
  state.counters["allocs/op"] =
      benchmark::Counter(static_cast<double>(keygate::perf::t_allocations - before) /
                         static_cast<double>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * req.size()));
}
BENCHMARK(BM_ParseAuthRequest);

// What /metrics costs a request: the request counter, the latency bucket and the
// verification counter, on this thread's own shard. Run on two threads too: shards keep
// the cores from sharing a cache line. The latency also needs a clock read at the end of
// the request (the one at its start serves the rate limiter as well): BM_MonotonicClock.
static void BM_MetricsPerAuthRequest(benchmark::State& state) {
  static keygate::handlers::Metrics metrics;
  const size_t before = keygate::perf::t_allocations;
  uint64_t elapsed = 9'000;
  for (auto _ : state) {
    metrics.record_verification(keygate::core::VerifyCode::valid);
    metrics.record_request(0, 200, elapsed);
    benchmark::DoNotOptimize(elapsed += 8);
  }
  state.counters["allocs/op"] =
      benchmark::Counter(static_cast<double>(keygate::perf::t_allocations - before) /
                         static_cast<double>(state.iterations()));
}
BENCHMARK(BM_MetricsPerAuthRequest)->Threads(1)->Threads(2);

static void BM_MonotonicClock(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(keygate::core::monotonic_ns());
}
BENCHMARK(BM_MonotonicClock);
