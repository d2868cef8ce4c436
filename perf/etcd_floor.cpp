// keygate_etcd_floor: what etcd itself gives on this machine for keygate's writes, with no
// node in the way: the floor of cluster mode's write path, as perf/floor.cpp is the floor of
// the I/O model. Each thread is one organization's writer with its own connection and one
// transaction in flight, as a node's committer is; a transaction is `--batch` key creations
// shaped as a node sends them (cluster/README.md, "Data layout"; sizes read from a node's
// store):
//
//   compares  the organization's version key at its last mod_revision, and each new key's
//             record and the earlier form's hash index key absent (create_revision 0)
//   puts      per key: its record under its value's hash (46-byte key, 200-byte value;
//             `--earlier-form 1`: the layout before 2026-12-07, a hash index key with the
//             key's id and the record under the id); per three keys: one value of audit events
//             (78-byte key, 3 x 576 bytes, under the day's lease); the version key, once
//
// A watcher thread follows the prefix from the first revision, as every node does (a node's
// write is answered when its watch delivers it), and counts what it was sent.
//
//   keygate_etcd_floor --etcd http://127.0.0.1:2379[,...] [--threads 1] [--batch 32]
//                      [--seconds 8] [--events 1] [--watch 1] [--earlier-form 0]
//
// Prints one line: writes and writes/s, transactions/s, its own CPU per write (writers and
// watcher), and whether the watch kept up. perf/etcd_cost.sh and
// perf/bench_cluster_leader.sh run it in place of a node when given `floor` as a build.
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cluster/etcd_client.hpp"

using namespace keygate::cluster;

namespace {

constexpr const char* kPrefix = "/floor";

// A 26-character id after its kind, as keygate's ids print.
std::string id(const char* kind, uint64_t thread, uint64_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s_%08llx%018llx", kind, static_cast<unsigned long long>(thread),
                static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::string etcd;
  int threads = 1, batch = 32, seconds = 8;
  bool events = true, watch = true, earlier_form = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--etcd")
      etcd = v;
    else if (a == "--threads")
      threads = std::stoi(v);
    else if (a == "--batch")
      batch = std::stoi(v);
    else if (a == "--seconds")
      seconds = std::stoi(v);
    else if (a == "--events")
      events = v != "0";
    else if (a == "--watch")
      watch = v != "0";
    else if (a == "--earlier-form")
      earlier_form = v != "0";
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (etcd.empty() || threads < 1 || batch < 1 || seconds < 1) {
    std::fprintf(stderr,
                 "usage: keygate_etcd_floor --etcd URL[,URL...] [--threads N] [--batch N] "
                 "[--seconds N] [--events 0|1] [--watch 0|1]\n");
    return 2;
  }
  const std::vector<std::string> endpoints = split_endpoints(etcd);

  std::string error;
  EtcdClient setup(endpoints);
  int64_t lease = 0;
  if (events && !(lease = setup.lease_grant(86'400, error))) {
    std::fprintf(stderr, "lease: %s\n", error.c_str());
    return 1;
  }
  RangeResult start;
  if (!setup.range(kPrefix, "", 0, 1, start, error)) {
    std::fprintf(stderr, "etcd: %s\n", error.c_str());
    return 1;
  }

  std::atomic<bool> go{false}, stop{false};
  std::atomic<uint64_t> writes{0}, txns{0}, failed{0}, watched{0};
  std::atomic<int64_t> last_revision{0}, watched_revision{0};
  std::thread watcher;
  if (watch) {
    watcher = std::thread([&] {
      EtcdClient client(endpoints);
      std::string e;
      client.watch(
          kPrefix, prefix_end(kPrefix), start.revision + 1,
          [&](const WatchBatch& b) {
            watched.fetch_add(b.events.size(), std::memory_order_relaxed);
            if (!b.events.empty())
              watched_revision.store(b.events.back().kv.mod_revision, std::memory_order_relaxed);
            return !stop.load() || watched_revision.load() < last_revision.load();
          },
          [&] {
            return !stop.load() ||
                   watched_revision.load(std::memory_order_relaxed) < last_revision.load();
          },
          e);
    });
  }

  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      EtcdClient client(endpoints);
      std::mt19937_64 rng(std::random_device{}());  // hashes no earlier run made
      const std::string org = id("org", static_cast<uint64_t>(t), 0);
      const std::string version = std::string(kPrefix) + "/ver/" + org;
      const std::string record(200, 'r'), event(576, 'e'), token(30, 't');
      uint64_t n = 0;
      std::vector<Compare> compares;
      std::vector<Op> ops;
      TxnResult r;
      std::string e;
      RangeResult v;  // the version key of an earlier run's organization of this name
      if (!client.range(version, "", 0, 1, v, e)) {
        std::fprintf(stderr, "etcd: %s\n", e.c_str());
        failed.fetch_add(1);
        return;
      }
      int64_t version_revision = v.kvs.empty() ? 0 : v.kvs.front().mod_revision;
      while (!go.load()) std::this_thread::yield();
      while (!stop.load(std::memory_order_relaxed)) {
        compares.clear();
        ops.clear();
        compares.push_back({Compare::Target::mod, version, version_revision});
        std::string value;
        for (int k = 0; k < batch; ++k, ++n) {
          std::string bytes;
          for (int b = 0; b < 4; ++b) {
            const uint64_t x = rng();
            bytes.append(reinterpret_cast<const char*>(&x), sizeof x);
          }
          const std::string hash = std::string(kPrefix) + "/hash/" + bytes;
          compares.push_back({Compare::Target::create, hash, 0});
          if (earlier_form) {
            ops.push_back({Op::Kind::put, hash, id("key", static_cast<uint64_t>(t), n)});
            ops.push_back(
                {Op::Kind::put, std::string(kPrefix) + "/key/" + id("key", t, n), record});
          } else {
            const std::string at = std::string(kPrefix) + "/key/#" + bytes;
            compares.push_back({Compare::Target::create, at, 0});
            ops.push_back({Op::Kind::put, at, record});
          }
          if (events) {
            value += event;
            if (value.size() + event.size() > 2048 || k + 1 == batch)
              ops.push_back({Op::Kind::put,
                             std::string(kPrefix) + "/audit/" + org + "/" + id("audit", t, n),
                             std::move(value), lease}),
                  value.clear();
          }
        }
        ops.push_back({Op::Kind::put, version, token});
        if (!client.txn(compares, ops, r, e) || !r.succeeded) {
          failed.fetch_add(1);
          if (!e.empty()) std::fprintf(stderr, "txn: %s\n", e.c_str());
          e.clear();
          break;
        }
        version_revision = r.revision;
        txns.fetch_add(1, std::memory_order_relaxed);
        writes.fetch_add(static_cast<uint64_t>(batch), std::memory_order_relaxed);
        int64_t seen = last_revision.load();
        while (seen < r.revision && !last_revision.compare_exchange_weak(seen, r.revision)) {
        }
      }
    });
  }
  const auto began = std::chrono::steady_clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  const uint64_t w = writes.load(), x = txns.load();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  stop = true;
  for (auto& t : writers) t.join();
  const auto waited = std::chrono::steady_clock::now();
  if (watcher.joinable()) watcher.join();
  const double behind =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - waited).count();
  rusage use{};
  ::getrusage(RUSAGE_SELF, &use);
  const double cpu = static_cast<double>(use.ru_utime.tv_sec + use.ru_stime.tv_sec) +
                     static_cast<double>(use.ru_utime.tv_usec + use.ru_stime.tv_usec) / 1e6;
  std::printf(
      "threads=%d batch=%d events=%d watch=%d  writes=%llu  writes/s=%.0f  txns/s=%.0f  "
      "client_us_per_write=%.1f  failed=%llu",
      threads, batch, events ? 1 : 0, watch ? 1 : 0, static_cast<unsigned long long>(w),
      w / elapsed, x / elapsed, w ? cpu / static_cast<double>(w) * 1e6 : 0.0,
      static_cast<unsigned long long>(failed.load()));
  if (watch)
    std::printf("  watched=%llu events, caught up %.0f ms after the last answer",
                static_cast<unsigned long long>(watched.load()), behind * 1e3);
  std::printf("\n");
  return failed.load() ? 1 : 0;
}
