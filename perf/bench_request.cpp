// A whole GET /v1/auth in user space, without the kernel: parse the bytes a gateway sends,
// route, authenticate (SHA-256, index lookup, checks, rate limiter), record metrics and
// serialize the response, as the reactor does for each request. Every request carries the
// next of 1,000,000 real keys, so the index is as cold as under wrk. Compared with the
// server CPU per request that perf/bench_vs_nginx.sh measures, this says how much of it is
// keygate's own code and how much is the kernel's TCP and io_uring path.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/index.hpp"
#include "core/state_machine.hpp"
#include "handlers/app.hpp"
#include "handlers/idempotency.hpp"
#include "handlers/metrics.hpp"
#include "net/http_parser.hpp"
#include "net/response.hpp"
#include "perf/alloc_counter.hpp"

using namespace keygate;

namespace {

// KEYGATE_BENCH_KEYS=N changes the number of keys (fewer make a callgrind run start faster).
size_t key_count() {
  const char* n = std::getenv("KEYGATE_BENCH_KEYS");
  return n ? std::strtoull(n, nullptr, 10) : 1'000'000;
}

struct Server {
  const size_t kKeys = key_count();
  core::RcuThread rcu;
  core::Index index;
  core::StateMachine sm{index};
  handlers::Idempotency idempotency;
  handlers::Metrics metrics;
  handlers::AppContext ctx{index, idempotency, metrics, {}};
  std::unique_ptr<handlers::App> app;
  std::vector<std::string> requests;  // one per key, as a gateway writes them

  Server() {
    core::Outcome org = sm.execute(core::CreateOrganization{"bench", "bench"}, core::now_ms());
    if (org.error) throw std::runtime_error(org.error.message);
    sm.publish();
    for (size_t i = 0; i < kKeys; ++i) {
      core::CreateApiKey c;
      c.org = org.org->id;
      c.name = "k";
      core::Outcome o = sm.execute(std::move(c), core::now_ms());
      if (o.error) throw std::runtime_error(o.error.message);
      requests.push_back(
          "GET /v1/auth HTTP/1.1\r\nHost: keygate.internal\r\nUser-Agent: nginx\r\n"
          "Authorization: Bearer " +
          o.revealed_key +
          "\r\nX-Required-Scopes: api_keys:read\r\nX-Original-URI: /api/orders?page=2\r\n"
          "X-Forwarded-For: 10.1.2.3\r\nConnection: keep-alive\r\n\r\n");
      if (i % 4096 == 0) sm.publish();
    }
    sm.publish();
    index.reclaim();
    ctx.ready.store(true);
    app = std::make_unique<handlers::App>(ctx);
  }
};

// One request, bytes in to bytes out; its own function so that callgrind can count it:
// valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*serve_one*' ...
[[gnu::noinline]] bool serve_one(Server& server, std::string& bytes, net::HttpParser& parser,
                                 net::Response& res, std::string& out) {
  if (parser.parse(bytes.data(), bytes.size()) != net::HttpParser::Event::request) return false;
  res.reset();
  if (server.app->handle(parser.request(), res)) return false;  // /v1/auth never suspends
  out.clear();
  net::serialize(res, false, false, "Sun, 22 Nov 2026 18:00:00 GMT", out);
  parser.next();
  parser.rebase(bytes.size());
  return res.status == 200;
}

}  // namespace

static void BM_AuthRequestInProcess(benchmark::State& state) {
  static Server server;
  net::HttpParser parser;
  net::Response res;
  std::string out;
  out.reserve(1024);
  size_t i = 0, failures = 0;
  const size_t before = perf::t_allocations;
  for (auto _ : state) {
    // The parser may rewrite in place, as in a read buffer.
    failures += !serve_one(server, server.requests[i], parser, res, out);
    benchmark::DoNotOptimize(out.data());
    if (++i == server.requests.size()) i = 0;
  }
  if (failures) state.SkipWithError("a request was refused");
  state.counters["allocs/op"] = benchmark::Counter(
      static_cast<double>(perf::t_allocations - before) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_AuthRequestInProcess);
