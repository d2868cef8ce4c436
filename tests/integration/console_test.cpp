// The browser console (docs/console.md): its files served from the binary with a strict
// policy, where --console and --admin-listen put it, and the whole of it driven in Debian's
// chromium by puppeteer-core (tests/console/console.mjs, pinned by its package-lock.json and
// installed by `scripts/setup test`).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/certs.hpp"
#include "support/etcd_cluster.hpp"  // free_port()
#include "support/harness.hpp"

using namespace keygate::testing;

namespace {

const char* const kFiles[][2] = {
    {"/console/", "text/html; charset=utf-8"},
    {"/console/index.html", "text/html; charset=utf-8"},
    {"/console/app.js", "text/javascript; charset=utf-8"},
    {"/console/api.js", "text/javascript; charset=utf-8"},
    {"/console/dom.js", "text/javascript; charset=utf-8"},
    {"/console/chart.js", "text/javascript; charset=utf-8"},
    {"/console/style.css", "text/css; charset=utf-8"},
};

}  // namespace

TEST(Console, IsServedFromTheBinaryUnderAStrictPolicy) {
  ServerProcess s;
  // /console redirects to /console/, so that the modules' relative URLs resolve under it.
  auto root = http(s.port(), "GET", "/console");
  EXPECT_EQ(root.status, 308);
  EXPECT_EQ(root.header("location"), "/console/");
  for (const auto& [path, type] : kFiles) {
    auto r = http(s.port(), "GET", path);
    ASSERT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.header("content-type"), type) << path;
    EXPECT_FALSE(r.body.empty()) << path;
    // No inline script or style, no framing, nothing from another origin, no sniffing.
    const std::string csp = r.header("content-security-policy");
    EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("script-src 'self';"), std::string::npos) << csp;
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-"), std::string::npos) << csp;
    EXPECT_EQ(r.header("x-frame-options"), "DENY");
    EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
    EXPECT_EQ(r.header("referrer-policy"), "no-referrer");
    EXPECT_EQ(r.header("cache-control"), "no-cache");
    // No cookie is ever set: the key lives in the tab's sessionStorage.
    EXPECT_EQ(r.header("set-cookie"), "");
  }
  // The page loads its script as a module from the same origin, and holds no inline code.
  const std::string html = http(s.port(), "GET", "/console/").body;
  EXPECT_NE(html.find(R"(<script type="module" src="app.js"></script>)"), std::string::npos);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_EQ(html.find("onload="), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos) << "no absolute URL: nothing from elsewhere";
  // HEAD, an unknown file, a path under it, a method it does not take.
  EXPECT_EQ(http(s.port(), "HEAD", "/console/app.js").status, 200);
  EXPECT_EQ(http(s.port(), "GET", "/console/missing.js").status, 404);
  EXPECT_EQ(http(s.port(), "GET", "/console/%2e%2e").status, 404);
  EXPECT_EQ(http(s.port(), "GET", "/console/a/app.js").status, 404);
  auto post = http(s.port(), "POST", "/console/app.js", "{}");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.header("allow"), "GET, HEAD");
}

TEST(Console, IsOffWithConsoleFalse) {
  ServerProcess s({"--console=false"});
  for (const char* path : {"/console", "/console/", "/console/app.js"}) {
    auto r = http(s.port(), "GET", path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_NE(r.body.find("--console=false"), std::string::npos) << r.body;
  }
  // The API it would have called is there as ever.
  EXPECT_EQ(http(s.port(), "GET", "/v1/organizations", "", s.root_key()).status, 200);
}

TEST(Console, IsServedOnTheAdminListenerOnlyWhenThereIsOne) {
  const uint16_t admin = free_port();
  ServerProcess s({"--admin-listen", "127.0.0.1:" + std::to_string(admin)});
  EXPECT_EQ(http(admin, "GET", "/console/").status, 200);
  EXPECT_EQ(http(admin, "GET", "/console/app.js").status, 200);
  for (const char* path : {"/console", "/console/", "/console/app.js"}) {
    auto r = http(s.port(), "GET", path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_NE(r.body.find("admin listener"), std::string::npos) << r.body;
  }
}

namespace {

// Runs tests/console/console.mjs in chromium against `s`; `env`: more variables for it.
void run_browser_test(const ServerProcess& s, const std::string& env = {}) {
  const std::string dir = KEYGATE_SOURCE_DIR "/tests/console";
  ASSERT_TRUE(std::filesystem::exists(dir + "/node_modules/puppeteer-core/package.json"))
      << "puppeteer-core is not installed: run scripts/setup test";
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/chromium"))
      << "chromium is not installed: run scripts/setup test";
  const std::string tmp = make_temp_dir();
  std::ofstream(tmp + "/cert.pem") << make_cert("console partner").pem;
  // Screenshots go to a scratch directory; KEYGATE_CONSOLE_SCREENSHOTS=docs/console (set
  // by whoever refreshes the documentation's images) puts them there instead.
  const char* shots = std::getenv("KEYGATE_CONSOLE_SCREENSHOTS");
  const std::string command =
      "cd " + dir + " && KEYGATE_URL=http://127.0.0.1:" + std::to_string(s.port()) +
      " KEYGATE_ROOT_KEY=" + s.root_key() + " KEYGATE_PID=" + std::to_string(s.pid()) +
      " KEYGATE_CERT=" + tmp +
      "/cert.pem KEYGATE_CONSOLE_SCREENSHOTS=" + (shots ? std::string(shots) : tmp) + " " + env +
      " node console.mjs 2>&1";
  int status = -1;
  const std::string out = run_command(command, status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("every check passed"), std::string::npos) << out;
  remove_tree(tmp);
}

}  // namespace

TEST(Console, WorksInABrowser) {
  ServerProcess s;
  run_browser_test(s);
}

// The operator's node page on a cluster node: its revision, its lag, whether it vouches.
TEST(Console, ShowsWhereAClusterNodeStandsAgainstEtcd) {
  EtcdCluster etcd(1);
  ServerProcess s({"--etcd", etcd.endpoints(), "--threads", "1"});
  run_browser_test(s, "KEYGATE_CONSOLE_CLUSTER=1");
}
