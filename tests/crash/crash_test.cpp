// Crash safety: the real binary under concurrent writes is killed with SIGKILL at random
// moments, 20 times. After each restart every acknowledged write is there, and nothing
// appears that was never sent.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

// SIGKILL at a random moment while `writers` write, then stop them.
void kill_mid_write(ServerProcess& s, std::mt19937& rng, std::atomic<bool>& stop,
                    std::vector<std::thread>& writers) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
  s.kill9();
  stop = true;
  for (auto& w : writers) w.join();
}

}  // namespace

TEST(Crash, AcknowledgedWritesSurviveSigkillAndNothingElseAppears) {
  const std::string dir = make_temp_dir() + "/data";
  std::string org, admin;
  {
    ServerProcess s({}, dir);
    auto j = parse_json(
        http(s.port(), "POST", "/v1/organizations", R"({"name":"Crash"})", s.root_key()).body);
    org = str(j, "/data/id");
    admin = str(j, "/data/api_key/revealed_key");
  }
  std::mt19937 rng(12345);
  std::set<std::string> sent, acked;
  std::map<std::string, std::string> acked_values;  // name -> key value
  std::mutex m;
  int next = 0;
  // A small snapshot threshold so that crashes also land around snapshots.
  const std::vector<std::string> args = {"--snapshot-bytes", "8192", "--secret-rate", "0"};
  for (int round = 0; round < 20; ++round) {
    ServerProcess s(args, dir);
    // Everything acknowledged so far is there, with a working key.
    auto list_names = [&] {
      std::set<std::string> names;
      std::string cursor;
      for (;;) {
        auto r = http(s.port(), "GET",
                      "/v1/organizations/" + org + "/api-keys?limit=200" +
                          (cursor.empty() ? "" : "&cursor=" + cursor),
                      "", admin);
        auto j = parse_json(r.body);
        for (auto item : j["data"].get_array())
          names.insert(std::string(item["name"].get_string().value()));
        if (str(j, "/pagination/has_more") != "true") break;
        cursor = str(j, "/pagination/next_cursor");
      }
      return names;
    };
    std::set<std::string> present = list_names();
    for (const auto& n : acked)
      ASSERT_TRUE(present.count(n)) << "round " << round << ": acknowledged " << n << " is gone";
    for (const auto& n : present)
      ASSERT_TRUE(n == "Default secret key" || sent.count(n))
          << "round " << round << ": " << n << " was never sent";
    for (const auto& [n, v] : acked_values)
      ASSERT_EQ(http(s.port(), "GET", "/v1/auth", "", v).status, 200) << n;

    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t)
      writers.emplace_back([&] {
        while (!stop.load()) {
          std::string name;
          {
            std::lock_guard l(m);
            name = "k" + std::to_string(next++);
            sent.insert(name);
          }
          auto r = http(s.port(), "POST", "/v1/organizations/" + org + "/api-keys",
                        R"({"name":")" + name + "\"}", admin);
          if (r.status == 201) {
            std::lock_guard l(m);
            acked.insert(name);
            if (acked_values.size() < 200)
              acked_values[name] = str(parse_json(r.body), "/data/revealed_key");
          } else if (r.status > 0) {
            ADD_FAILURE() << "unexpected " << r.status << " " << r.body;
          }
        }
      });
    kill_mid_write(s, rng, stop, writers);
  }
  EXPECT_GT(acked.size(), 100u);
  remove_tree(std::filesystem::path(dir).parent_path());
}

// The audit log under the same treatment: each command's changes and events are one group
// in the log, so after any SIGKILL every acknowledged change has exactly one event, and no
// event describes a change that is not there (a rotation is two keys and two events).
TEST(Crash, EveryAcknowledgedChangeHasExactlyOneAuditEventAndNoEventLacksItsChange) {
  const std::string dir = make_temp_dir() + "/data";
  std::string org, admin;
  {
    ServerProcess s({}, dir);
    auto j = parse_json(
        http(s.port(), "POST", "/v1/organizations", R"({"name":"Audit"})", s.root_key()).body);
    org = str(j, "/data/id");
    admin = str(j, "/data/api_key/revealed_key");
  }
  std::mt19937 rng(777);
  std::set<std::string> created, rotated;  // acknowledged: key ids, and ids of rotated keys
  std::mutex m;
  const std::vector<std::string> args = {"--snapshot-bytes", "8192", "--secret-rate", "0"};
  for (int round = 0; round < 10; ++round) {
    ServerProcess s(args, dir);
    // Every event, by type, with the ids it names.
    std::multimap<std::string, std::string> events;  // type -> resource id
    std::string cursor;
    for (;;) {
      auto r = http(s.port(), "GET",
                    "/v1/organizations/" + org + "/audit-events?limit=100" +
                        (cursor.empty() ? "" : "&cursor=" + cursor),
                    "", admin);
      ASSERT_EQ(r.status, 200) << r.body;
      auto j = parse_json(r.body);
      for (auto e : j["data"].get_array())
        for (auto id : e["resource_ids"].get_array())
          events.emplace(std::string(e["type"].get_string().value()),
                         std::string(id.get_string().value()));
      if (str(j, "/pagination/has_more") != "true") break;
      cursor = str(j, "/pagination/next_cursor");
    }
    auto count = [&](const std::string& type, const std::string& id) {
      size_t n = 0;
      for (auto [it, end] = events.equal_range(type); it != end; ++it) n += it->second == id;
      return n;
    };
    for (const auto& id : created)
      ASSERT_EQ(count("api_key.created", id), 1u) << "round " << round << ": " << id;
    for (const auto& id : rotated)
      ASSERT_EQ(count("api_key.updated", id), 1u) << "round " << round << ": " << id;
    // No event without its change: each key an event names exists, as the event says.
    for (const auto& [type, id] : events) {
      if (type.rfind("api_key.", 0) != 0) continue;
      auto r = http(s.port(), "GET", "/v1/organizations/" + org + "/api-keys/" + id, "", admin);
      ASSERT_EQ(r.status, 200) << "round " << round << ": " << type << " names " << id;
      if (type == "api_key.updated") {
        EXPECT_NE(str(parse_json(r.body), "/data/status"), "active")
            << "round " << round << ": a rotation's event without the rotation";
      }
    }

    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t)
      writers.emplace_back([&] {
        while (!stop.load()) {
          auto r = http(s.port(), "POST", "/v1/organizations/" + org + "/api-keys",
                        R"({"name":"audited"})", admin);
          if (r.status != 201) {
            if (r.status > 0) ADD_FAILURE() << "unexpected " << r.status << " " << r.body;
            continue;
          }
          const std::string id = str(parse_json(r.body), "/data/id");
          {
            std::lock_guard l(m);
            created.insert(id);
          }
          auto rot =
              http(s.port(), "POST", "/v1/organizations/" + org + "/api-keys/" + id + "/rotations",
                   "{}", admin);
          if (rot.status == 201) {
            const std::string fresh = str(parse_json(rot.body), "/data/id");
            std::lock_guard l(m);
            rotated.insert(id);
            created.insert(fresh);
          } else if (rot.status > 0) {
            ADD_FAILURE() << "unexpected " << rot.status << " " << rot.body;
          }
        }
      });
    kill_mid_write(s, rng, stop, writers);
  }
  EXPECT_GT(rotated.size(), 20u);
  remove_tree(std::filesystem::path(dir).parent_path());
}
