// A fleet behaves as one keygate: nodes on one etcd sharing their hot counters through a
// real Redis (Debian's redis-server, started here): rate limits within ±10 % of one node,
// Redis killed, restarted and frozen under load, last use seen on every node; and the
// Redis client itself against a Redis with a password, an ACL user and TLS.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster/redis_client.hpp"
#include "support/etcd_cluster.hpp"
#include "support/harness.hpp"
#include "support/redis_server.hpp"

namespace keygate::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

template <class F>
bool eventually(F ok, std::chrono::milliseconds within = 5000ms) {
  const auto deadline = Clock::now() + within;
  while (!ok()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

long metric(ServerProcess& s, const std::string& name) {
  const std::string m = http(s.port(), "GET", "/metrics", "").body;
  const size_t p = m.find("\n" + name + " ");
  return p == std::string::npos ? -1 : std::stol(m.substr(p + name.size() + 2));
}

// Nodes on a one-member etcd, each with --redis at `redis` (unless `extra` names another).
struct Fleet {
  EtcdCluster etcd{1};
  RedisServer redis;
  std::vector<std::unique_ptr<ServerProcess>> nodes;
  std::vector<std::string> extra;

  explicit Fleet(std::vector<std::string> more = {}, RedisServer::Options ro = {})
      : redis(std::move(ro)), extra(std::move(more)) {}
  ServerProcess& add() {
    std::vector<std::string> args = {"--etcd", etcd.endpoints(), "--threads", "1"};
    if (std::find(extra.begin(), extra.end(), "--redis") == extra.end())
      args.insert(args.end(), {"--redis", redis.url()});
    if (!nodes.empty())
      args.insert(args.end(), {"--root-key-file", nodes[0]->data_dir() + "/root.key"});
    args.insert(args.end(), extra.begin(), extra.end());
    nodes.push_back(std::make_unique<ServerProcess>(args));
    return *nodes.back();
  }
  ServerProcess& operator[](size_t i) { return *nodes[i]; }
  // Adds nodes until there are `n`, and waits until each shares through Redis and vouches
  // (/readyz: loaded, caught up, within --max-staleness-ms of etcd). A node that has just
  // joined may reach Redis before it vouches, and answers 503 meanwhile.
  bool sharing(size_t n) {
    while (nodes.size() < n) add();
    for (auto& node : nodes)
      if (!eventually([&] { return metric(*node, "keygate_redis_up") == 1; }, 10s) ||
          !eventually([&] { return http(node->port(), "GET", "/readyz", "").status == 200; }, 10s))
        return false;
    return true;
  }
  std::string root() { return nodes[0]->root_key(); }
};

struct Key {
  std::string org, id, value;
};

// A key created by the operator with its own limit, once every node in `on` knows it
// (asked by id with the root key, which takes nothing from the key's bucket).
Key make_limited_key(Fleet& f, const std::string& org, unsigned rate, unsigned burst) {
  const auto r = http(f[0].port(), "POST", "/v1/organizations/" + org + "/api-keys",
                      R"({"name":"hammered","rate_limit":{"requests_per_second":)" +
                          std::to_string(rate) + R"(,"burst":)" + std::to_string(burst) + "}}",
                      f.root());
  EXPECT_EQ(r.status, 201) << r.body;
  const auto j = parse_json(r.body);
  Key k{org, str(j, "/data/id"), str(j, "/data/revealed_key")};
  for (auto& n : f.nodes)
    EXPECT_TRUE(eventually([&] {
      return http(n->port(), "GET", "/v1/organizations/" + org + "/api-keys/" + k.id, "", f.root())
                 .status == 200;
    }));
  return k;
}

// What a load got, key by key.
struct Count {
  long admitted = 0, limited = 0, other = 0;
  int other_status = 0;   // the last status that was neither 200 nor 429
  size_t other_node = 0;  // ...and the node (its index in `on`) that gave it
};

// Load at many times a limit, from one thread: keep-alive connections, one a node,
// `depth` GET /v1/auth pipelined a batch; node i takes weights[i] batches of each round,
// the requests alternate over `keys`. Counts each key's answers by status.
std::vector<Count> hammer(Fleet& f, const std::vector<size_t>& on, const std::vector<int>& weights,
                          const std::vector<Key>& keys, std::chrono::milliseconds for_how_long,
                          double& seconds, int depth = 32) {
  std::vector<Count> counts(keys.size());
  std::vector<int> fds;
  for (size_t n : on) {
    const int fd = connect_to(f[n].port());
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    fds.push_back(fd);
  }
  std::vector<std::string> requests;
  for (const Key& k : keys)
    requests.push_back("GET /v1/auth HTTP/1.1\r\nHost: fleet\r\nAuthorization: Bearer " + k.value +
                       "\r\n\r\n");
  std::string in;
  size_t turn = 0;
  const auto t0 = Clock::now();
  while (Clock::now() - t0 < for_how_long) {
    for (size_t n = 0; n < fds.size(); ++n)
      for (int w = 0; w < weights[n]; ++w) {
        std::string batch;
        std::vector<size_t> which;
        for (int i = 0; i < depth; ++i, ++turn) {
          which.push_back(turn % keys.size());
          batch += requests[which.back()];
        }
        if (::send(fds[n], batch.data(), batch.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(batch.size())) {
          ADD_FAILURE() << "send failed";
          return counts;
        }
        in.clear();
        size_t parsed = 0, at = 0;
        while (parsed < which.size()) {
          const size_t head_end = in.find("\r\n\r\n", at);
          if (head_end == std::string::npos) {
            char buf[65536];
            const ssize_t got = ::recv(fds[n], buf, sizeof buf, 0);
            if (got <= 0) {
              ADD_FAILURE() << "node " << on[n] << " stopped answering";
              return counts;
            }
            in.append(buf, static_cast<size_t>(got));
            continue;
          }
          size_t body = 0;
          const size_t cl = in.find("content-length: ", at);
          if (cl != std::string::npos && cl < head_end) body = std::stoul(in.substr(cl + 16));
          if (in.size() < head_end + 4 + body) {
            char buf[65536];
            const ssize_t got = ::recv(fds[n], buf, sizeof buf, 0);
            if (got <= 0) return counts;
            in.append(buf, static_cast<size_t>(got));
            continue;
          }
          const int status = std::stoi(in.substr(at + 9, 3));
          Count& c = counts[which[parsed]];
          (status == 200 ? c.admitted : status == 429 ? c.limited : c.other)++;
          if (status != 200 && status != 429) {
            c.other_status = status;
            c.other_node = n;
          }
          at = head_end + 4 + body;
          ++parsed;
        }
      }
  }
  seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (int fd : fds) ::close(fd);
  return counts;
}

// The accuracy table (perf/RESULTS.md): two keys, 100/s burst 100 and 10,000/s burst
// 10,000, hammered together for 5 s, spread evenly and 90 % on one node, on two nodes and
// then three; each within ±10 % of what one keygate admits (burst + rate × seconds).
// KEYGATE_REDIS_SYNC_MS sets the nodes' --redis-sync-ms (perf/fleet_accuracy.sh: the
// interval's effect on accuracy).
TEST(Fleet, RateLimitsHoldWithinTenPercentOfOneKeygateOnTwoAndThreeNodes) {
  const char* sync_ms = std::getenv("KEYGATE_REDIS_SYNC_MS");
  Fleet f(sync_ms ? std::vector<std::string>{"--redis-sync-ms", sync_ms}
                  : std::vector<std::string>{});
  ASSERT_TRUE(f.sharing(2));
  const Tenant t = make_tenant(f[0], "Fleet accuracy");
  auto run = [&](std::vector<size_t> on, std::vector<int> weights, const char* how) {
    const std::vector<Key> keys = {make_limited_key(f, t.id, 100, 100),
                                   make_limited_key(f, t.id, 10'000, 10'000)};
    double seconds = 0;
    const auto got = hammer(f, on, weights, keys, 5000ms, seconds);
    const unsigned rates[] = {100, 10'000};
    for (size_t k = 0; k < keys.size(); ++k) {
      const double one = rates[k] + rates[k] * seconds;
      const double off = (static_cast<double>(got[k].admitted) - one) / one * 100;
      std::printf(
          "[ figures  ] %zu nodes, %s, %u/s burst %u: %ld admitted of %ld in %.2f s; one "
          "keygate %.0f (%+.1f %%)\n",
          on.size(), how, rates[k], rates[k], got[k].admitted,
          got[k].admitted + got[k].limited + got[k].other, seconds, one, off);
      EXPECT_EQ(got[k].other, 0) << "only 200 and 429; the last other was " << got[k].other_status
                                 << " from node " << got[k].other_node;
      EXPECT_LE(got[k].admitted, one * 1.10) << on.size() << " nodes, " << how;
      // Below twice the limit (a sanitizer build, a busy machine) the load does not show
      // how much the fleet lets through: then only "never more" is judged.
      if (got[k].admitted + got[k].limited >= 2 * one)
        EXPECT_GE(got[k].admitted, one * 0.90) << on.size() << " nodes, " << how;
      else
        std::printf("[ figures  ] (the load was under twice the limit: not judged below)\n");
    }
  };
  run({0, 1}, {1, 1}, "even");
  run({0, 1}, {9, 1}, "90 % on one");
  ASSERT_TRUE(f.sharing(3));
  run({0, 1, 2}, {1, 1, 1}, "even");
  run({0, 1, 2}, {18, 1, 1}, "90 % on one");
}

// Redis SIGKILLed mid-load: every node falls back to its fair share within a second (a
// metric and a log line), no verification gets a 5xx, the fleet never admits more than
// its limit; Redis restarted empty: shared counts resume and nobody is blocked.
TEST(Fleet, RedisKilledAndRestartedMidLoadNeverFailsAVerification) {
  Fleet f;
  ASSERT_TRUE(f.sharing(2));
  ASSERT_TRUE(eventually([&] { return metric(f[0], "keygate_cluster_live_nodes") == 2; }, 15s));
  const Tenant t = make_tenant(f[0], "Fleet faults");
  const Key k = make_limited_key(f, t.id, 1'000, 1'000);
  std::atomic<bool> loading{true};
  std::vector<Count> got;
  double seconds = 0;
  std::thread load([&] {
    got = hammer(f, {0, 1}, {1, 1}, {k}, 6000ms, seconds, 16);
    loading = false;
  });
  std::this_thread::sleep_for(1500ms);
  f.redis.kill9();
  const auto killed = Clock::now();
  EXPECT_TRUE(eventually(
      [&] {
        return metric(f[0], "keygate_redis_up") == 0 && metric(f[1], "keygate_redis_up") == 0;
      },
      2000ms));
  const double fell_back = std::chrono::duration<double>(Clock::now() - killed).count();
  std::printf("[ figures  ] Redis killed: both nodes under their fair share after %.0f ms\n",
              fell_back * 1000);
  EXPECT_LT(fell_back, 1.0);
  EXPECT_EQ(metric(f[0], "keygate_cluster_live_nodes"), 2);
  const auto limited = http(f[0].port(), "GET", "/v1/auth", "", k.value);
  EXPECT_EQ(limited.header("x-ratelimit-limit"), "500") << "the node's share while Redis is away";
  std::this_thread::sleep_for(1500ms);
  f.redis.start();  // empty: every counter lost
  const auto restarted = Clock::now();
  EXPECT_TRUE(eventually(
      [&] {
        return metric(f[0], "keygate_redis_up") == 1 && metric(f[1], "keygate_redis_up") == 1;
      },
      3000ms));
  std::printf("[ figures  ] Redis restarted: both nodes share again after %.0f ms\n",
              std::chrono::duration<double>(Clock::now() - restarted).count() * 1000);
  load.join();
  ASSERT_EQ(got.size(), 1u);
  const double one = 1000 + 1000 * seconds;
  std::printf(
      "[ figures  ] through the kill and the restart: %ld admitted in %.2f s (one "
      "keygate %.0f), %ld other than 200 and 429\n",
      got[0].admitted, seconds, one, got[0].other);
  EXPECT_EQ(got[0].other, 0) << "Redis away is never a 5xx";
  EXPECT_LE(got[0].admitted, one * 1.10);
  EXPECT_GE(got[0].admitted, one * 0.80) << "nobody is blocked";
  EXPECT_NE(f[0].log().find("\"redis.unavailable\""), std::string::npos);
  EXPECT_NE(f[0].log().find("\"redis.available\""), std::string::npos);
  // Shared again: the fleet's count for the key is back in Redis.
  EXPECT_TRUE(eventually([&] {
    return http(f[1].port(), "GET", "/v1/auth", "", k.value).header("x-ratelimit-limit") == "1000";
  }));
}

// A Redis that hangs (SIGSTOP: connections open, no answer) is away after
// --redis-timeout-ms: verification goes on, unslowed, under the fair share.
TEST(Fleet, ARedisThatHangsIsLeftWithinTheTimeout) {
  // A timeout well above a sanitizer build's slowest verification: one that waited on
  // Redis would take at least this long.
  Fleet f({"--redis-timeout-ms", "400"});
  ASSERT_TRUE(f.sharing(2));
  ASSERT_TRUE(eventually([&] { return metric(f[0], "keygate_cluster_live_nodes") == 2; }, 15s));
  const Tenant t = make_tenant(f[0], "Fleet hang");
  const Key k = make_limited_key(f, t.id, 1'000, 1'000);
  f.redis.freeze();
  const auto frozen = Clock::now();
  long worst_us = 0, answered = 0;
  while (metric(f[0], "keygate_redis_up") != 0 && Clock::now() - frozen < 3s) {
    const auto t0 = Clock::now();
    EXPECT_EQ(http(f[0].port(), "GET", "/v1/auth", "", k.value).status, 200);
    worst_us = std::max<long>(
        worst_us, std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
    ++answered;
  }
  const double left = std::chrono::duration<double>(Clock::now() - frozen).count();
  std::printf(
      "[ figures  ] Redis frozen: away after %.0f ms; %ld verifications meanwhile, the "
      "slowest %ld µs\n",
      left * 1000, answered, worst_us);
  EXPECT_LT(left, 1.0);
  EXPECT_LT(worst_us, 200'000) << "verification never waits on Redis (400 ms)";
  EXPECT_EQ(http(f[0].port(), "GET", "/v1/auth", "", k.value).header("x-ratelimit-limit"), "500");
  f.redis.thaw();
  EXPECT_TRUE(eventually([&] { return metric(f[0], "keygate_redis_up") == 1; }, 3s));
}

// A use on one node shows in another's last_used_at within two seconds.
TEST(Fleet, LastUseOnOneNodeShowsOnEveryNodeWithinTwoSeconds) {
  Fleet f;
  ASSERT_TRUE(f.sharing(2));
  const Tenant t = make_tenant(f[0], "Fleet last use");
  const Key k = make_limited_key(f, t.id, 100, 100);
  const std::string path = "/v1/organizations/" + t.id + "/api-keys/" + k.id;
  auto last_used = [&](size_t n) {
    return str(parse_json(http(f[n].port(), "GET", path, "", f.root()).body), "/data/last_used_at");
  };
  EXPECT_EQ(last_used(1), "null") << "never used";
  ASSERT_EQ(http(f[0].port(), "GET", "/v1/auth", "", k.value).status, 200);
  const auto used = Clock::now();
  ASSERT_NE(last_used(0), "null");
  EXPECT_TRUE(eventually([&] { return last_used(1) == last_used(0); }, 2000ms))
      << last_used(1) << " against " << last_used(0);
  std::printf("[ figures  ] last use on node 0 seen on node 1 after %.0f ms\n",
              std::chrono::duration<double>(Clock::now() - used).count() * 1000);
  // A node started later reads every last use from Redis.
  ServerProcess& late = f.add();
  EXPECT_TRUE(eventually(
      [&] {
        return str(parse_json(http(late.port(), "GET", path, "", f.root()).body),
                   "/data/last_used_at") == last_used(0);
      },
      5000ms));
}

// Whoever can write to Redis can make a key wait, but not for ever: a node takes at most
// every node's full bucket and one more, or an hour, of what Redis says.
TEST(Fleet, AFleetTimeFarAheadInRedisShutsAKeyOutForAnHourAtMost) {
  Fleet f;
  ASSERT_TRUE(f.sharing(1));
  const Tenant t = make_tenant(f[0], "Fleet clamp");
  const Key k = make_limited_key(f, t.id, 100, 100);
  // Ten years ahead of Redis's clock, in the script's unit (µs).
  f.redis.cli("SET '/keygate/rl/{" + k.id + "}' 2100000000000000");
  ASSERT_EQ(http(f[0].port(), "GET", "/v1/auth", "", k.value).status, 200);  // sent, answered
  HttpResponse r;
  ASSERT_TRUE(eventually([&] {
    r = http(f[0].port(), "GET", "/v1/auth", "", k.value);
    return r.status == 429;
  }));
  const long wait = std::stol(r.header("retry-after"));
  EXPECT_GT(wait, 3000);
  EXPECT_LE(wait, 3600) << "an hour at most";
}

// Idempotency across the fleet: a retry on another node gets the first answer, its secret
// included; another request under the same key is 409; another principal gets its own; and
// Redis holds no secret, only sealed answers.
TEST(Fleet, AnIdempotentRetryOnAnotherNodeGetsTheFirstAnswerWithItsSecret) {
  Fleet f;
  ASSERT_TRUE(f.sharing(2));
  const Tenant t = make_tenant(f[0], "Fleet idempotency");
  const std::string path = "/v1/organizations/" + t.id + "/api-keys";
  ASSERT_TRUE(eventually([&] { return http(f[1].port(), "GET", path, "", t.key).status == 200; }));
  auto post = [&](size_t node, const std::string& body, const std::string& key,
                  const std::string& idem) {
    return http(f[node].port(), "POST", path, body,
                {"Authorization: Bearer " + key, "Idempotency-Key: " + idem});
  };
  const auto first = post(0, R"({"name":"once"})", t.key, "create-once");
  ASSERT_EQ(first.status, 201) << first.body;
  const std::string secret = str(parse_json(first.body), "/data/revealed_key");
  const auto retry = post(1, R"({"name":"once"})", t.key, "create-once");
  EXPECT_EQ(retry.status, 201) << retry.body;
  EXPECT_EQ(retry.header("idempotent-replayed"), "true");
  EXPECT_EQ(retry.body, first.body) << "the first answer, its secret included";
  EXPECT_EQ(post(1, R"({"name":"twice"})", t.key, "create-once").status, 409);
  EXPECT_EQ(
      str(parse_json(post(0, R"({"name":"twice"})", t.key, "create-once").body), "/error/code"),
      "idempotency_key_reused");
  // Another principal (the key just made) with the same Idempotency-Key: its own request.
  const auto other = post(1, R"({"name":"once"})", secret, "create-once");
  EXPECT_EQ(other.status, 201) << other.body;
  EXPECT_NE(str(parse_json(other.body), "/data/id"), str(parse_json(first.body), "/data/id"));
  EXPECT_EQ(other.header("idempotent-replayed"), "");
  // A refusal changed nothing: not kept in Redis (a tenant cannot fill it with refusals),
  // remembered by the node that gave it.
  const auto refused = post(0, R"({"name":7})", t.key, "refused-once");
  EXPECT_EQ(refused.status, 400) << refused.body;
  const auto refused_again = post(0, R"({"name":7})", t.key, "refused-once");
  EXPECT_EQ(refused_again.status, 400);
  EXPECT_EQ(refused_again.header("idempotent-replayed"), "true");
  // What Redis holds: names, fingerprints, ciphertext; never a secret.
  auto url = cluster::parse_redis_url(f.redis.url());
  ASSERT_TRUE(url);
  cluster::RedisClient c({*url, "", 2000ms});
  auto keys = c.call({"KEYS", "/keygate/idem/*"});
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->elements.size(), 2u);
  for (const auto& k : keys->elements) {
    auto v = c.call({"GET", k.str});
    ASSERT_TRUE(v);
    EXPECT_EQ(v->str.find(secret), std::string::npos);
    EXPECT_EQ(v->str.find("sk_"), std::string::npos);
    EXPECT_EQ(v->str.find("once"), std::string::npos) << "the answer is sealed whole";
  }
}

// Redis away: an idempotent request is remembered by the node that answered it, as
// without Redis, and a retry there gets its answer.
TEST(Fleet, WithRedisAwayAnIdempotentRetryIsAnsweredByItsNodesMemory) {
  Fleet f({"--redis-timeout-ms", "100"});
  ASSERT_TRUE(f.sharing(1));
  const Tenant t = make_tenant(f[0], "Fleet idempotency away");
  const std::string path = "/v1/organizations/" + t.id + "/api-keys";
  f.redis.kill9();
  const std::vector<std::string> h = {"Authorization: Bearer " + t.key, "Idempotency-Key: away"};
  const auto first = http(f[0].port(), "POST", path, R"({"name":"away"})", h);
  ASSERT_EQ(first.status, 201) << first.body;
  const auto retry = http(f[0].port(), "POST", path, R"({"name":"away"})", h);
  EXPECT_EQ(retry.status, 201);
  EXPECT_EQ(retry.header("idempotent-replayed"), "true");
  EXPECT_EQ(retry.body, first.body);
}

// A Redis that hangs costs idempotent writes one timeout, not one each: after a failed
// round the store leaves Redis alone for a second and the node's memory answers.
TEST(Fleet, AHungRedisDoesNotMakeEveryIdempotentWriteWaitOutTheTimeout) {
  Fleet f({"--redis-timeout-ms", "300"});
  ASSERT_TRUE(f.sharing(1));
  const Tenant t = make_tenant(f[0], "Fleet idempotency hung");
  const std::string path = "/v1/organizations/" + t.id + "/api-keys";
  f.redis.freeze();
  const auto t0 = Clock::now();
  for (int i = 0; i < 20; ++i) {
    const std::string idem = "hung-" + std::to_string(i);
    const auto r = http(f[0].port(), "POST", path, R"({"name":"hung"})",
                        {"Authorization: Bearer " + t.key, "Idempotency-Key: " + idem});
    ASSERT_EQ(r.status, 201) << r.body;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  f.redis.thaw();
  std::printf("[ figures  ] 20 idempotent writes with Redis frozen: %.2f s (20 timeouts: 6 s)\n",
              seconds);
  EXPECT_LT(seconds, 3.0);
}

// Two first attempts at once on two nodes: one runs, the other is told so (409
// idempotency_in_progress) or gets its answer; never two keys.
TEST(Fleet, ConcurrentFirstAttemptsOnTwoNodesRunOnce) {
  Fleet f;
  ASSERT_TRUE(f.sharing(2));
  const Tenant t = make_tenant(f[0], "Fleet races");
  const std::string path = "/v1/organizations/" + t.id + "/api-keys";
  ASSERT_TRUE(eventually([&] { return http(f[1].port(), "GET", path, "", t.key).status == 200; }));
  int in_progress = 0, replayed = 0;
  for (int round = 0; round < 20; ++round) {
    const std::string idem = "race-" + std::to_string(round);
    const std::string body = R"({"name":")" + idem + R"("})";
    HttpResponse a, b;
    std::thread ta([&] {
      a = http(f[0].port(), "POST", path, body,
               {"Authorization: Bearer " + t.key, "Idempotency-Key: " + idem});
    });
    std::thread tb([&] {
      b = http(f[1].port(), "POST", path, body,
               {"Authorization: Bearer " + t.key, "Idempotency-Key: " + idem});
    });
    ta.join();
    tb.join();
    for (const HttpResponse* r : {&a, &b}) {
      if (r->status == 409) {
        EXPECT_EQ(str(parse_json(r->body), "/error/code"), "idempotency_in_progress");
        ++in_progress;
      } else {
        EXPECT_EQ(r->status, 201) << r->body;
        replayed += r->header("idempotent-replayed") == "true";
      }
    }
    EXPECT_TRUE(a.status == 201 || b.status == 201) << a.body << b.body;
    if (a.status == 201 && b.status == 201) {
      EXPECT_EQ(str(parse_json(a.body), "/data/id"), str(parse_json(b.body), "/data/id"));
    }
  }
  std::printf("[ figures  ] 20 races: %d told in progress, %d replayed\n", in_progress, replayed);
  // Exactly one key per Idempotency-Key (and the tenant's own), on both nodes.
  for (size_t n = 0; n < 2; ++n)
    EXPECT_TRUE(eventually([&] {
      const auto list = parse_json(http(f[n].port(), "GET", path + "?limit=100", "", t.key).body);
      return list["data"].get_array().size() == 21;
    })) << "node "
        << n;
}

TEST(Fleet, RedisNeedsClusterModeAndAUrlItCanUse) {
  const std::string dir = make_temp_dir();
  const std::string bin =
      std::string(KEYGATE_BINARY) + " serve --listen 127.0.0.1:0 --data-dir " + dir + "/data ";
  int status = 0;
  std::string out = run_command(bin + "--redis redis://127.0.0.1:1 2>&1", status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("--redis holds a fleet's counters: it needs cluster mode (--etcd)"),
            std::string::npos)
      << out;
  out = run_command(bin + "--etcd http://127.0.0.1:1 --redis http://u:hunter2@h 2>&1", status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("--redis: a Redis URL starts with redis:// or rediss://"), std::string::npos)
      << out;
  out = run_command(bin + "--etcd http://127.0.0.1:1 --redis redis://u:hunter2@h:0 2>&1", status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("port is not a number"), std::string::npos) << out;
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << "no password in an error: " << out;
  out = run_command(
      bin + "--etcd http://127.0.0.1:1 --redis redis://h --redis-ca /etc/hostname 2>&1", status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("--redis-ca is for TLS"), std::string::npos) << out;
  remove_tree(dir);
}

// A node given a password file and an ACL user shares through a Redis that requires them;
// its logs never hold the password.
TEST(Fleet, APasswordFromAFileAndAnAclUserAreUsedAndNeverLogged) {
  RedisServer::Options ro;
  ro.user = "keygate";
  ro.password = "correct-horse-battery";
  Fleet f({}, ro);
  const std::string dir = make_temp_dir();
  write_file(dir + "/redis.pass", ro.password + "\n");
  f.extra = {"--redis", f.redis.url_without_password(), "--redis-password-file",
             dir + "/redis.pass"};
  ServerProcess& n = f.add();
  EXPECT_TRUE(eventually([&] { return metric(n, "keygate_redis_up") == 1; }, 10s)) << n.log();
  EXPECT_EQ(n.log().find(ro.password), std::string::npos);
  // A wrong one: the node serves (under its fair share) and says why, without the password.
  write_file(dir + "/wrong.pass", "not-the-password\n");
  f.extra = {"--redis", f.redis.url_without_password(), "--redis-password-file",
             dir + "/wrong.pass"};
  ServerProcess& wrong = f.add();
  EXPECT_TRUE(eventually(
      [&] { return wrong.log().find("\"redis.unavailable\"") != std::string::npos; }, 10s));
  EXPECT_EQ(metric(wrong, "keygate_redis_up"), 0);
  EXPECT_NE(wrong.log().find("WRONGPASS"), std::string::npos) << wrong.log();
  EXPECT_EQ(wrong.log().find("not-the-password"), std::string::npos);
  remove_tree(dir);
}

// rediss://: Redis's certificate is checked against --redis-ca.
TEST(Redis, TlsIsVerifiedAgainstTheGivenCa) {
  RedisServer::Options ro;
  ro.tls = true;
  RedisServer redis(ro);
  auto url = cluster::parse_redis_url(redis.url());
  ASSERT_TRUE(url);
  cluster::RedisClient good({*url, redis.ca_file(), 2000ms});
  auto r = good.call({"PING"});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->str, "PONG");
  // Without the CA (the system's store does not know it): refused, and says why.
  cluster::RedisClient untrusted({*url, "", 2000ms});
  r = untrusted.call({"PING"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("certificate"), std::string::npos) << r.error();
}

// Pipelined replies come back in order; a Redis that hangs fails a call at its deadline,
// and a Redis that restarted is reached again by the next call.
TEST(Redis, PipelinesTimesOutAndReconnects) {
  RedisServer redis;
  auto url = cluster::parse_redis_url(redis.url());
  ASSERT_TRUE(url);
  cluster::RedisClient c({*url, "", 300ms});
  std::vector<cluster::RedisClient::Command> cmds;
  for (int i = 0; i < 1000; ++i) cmds.push_back({"INCRBY", "n", std::to_string(i)});
  auto r = c.pipeline(cmds);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ((*r)[999].integer, 999 * 1000 / 2);
  EXPECT_FALSE(c.call({"NOSUCHCOMMAND"})->ok());
  redis.freeze();
  const auto t0 = Clock::now();
  r = c.pipeline({{"PING"}});
  const auto waited = Clock::now() - t0;
  EXPECT_FALSE(r);
  EXPECT_GE(waited, 290ms);
  EXPECT_LT(waited, 1000ms);
  redis.thaw();
  redis.kill9();
  redis.start();
  auto p = c.call({"PING"});
  ASSERT_TRUE(p) << p.error();
  EXPECT_TRUE(c.reconnected());
}

}  // namespace
}  // namespace keygate::testing
