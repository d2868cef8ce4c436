// The official OpenAI Node SDK (tests/sdk, pinned by its package-lock.json and installed by
// `scripts/setup test`) drives keygate's OpenAI-compatible endpoints: certificates and
// projects, with the SDK's own requests, pagination and error classes (openai_admin.mjs).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/certs.hpp"
#include "support/harness.hpp"

using namespace keygate::testing;

TEST(OpenAiSdk, DrivesCertificatesAndProjectsUnchanged) {
  const std::string sdk = KEYGATE_SOURCE_DIR "/tests/sdk";
  ASSERT_TRUE(std::filesystem::exists(sdk + "/node_modules/openai/package.json"))
      << "the OpenAI SDK is not installed: run scripts/setup test";
  ServerProcess s;
  Tenant t = make_tenant(s, "SDK");
  const std::string dir = make_temp_dir();
  for (const char* name : {"a", "b"}) {
    std::ofstream(dir + "/" + name + ".pem") << make_cert(std::string("sdk ") + name).pem;
  }
  const std::string command =
      "cd " + sdk + " && KEYGATE_BASE_URL=http://127.0.0.1:" + std::to_string(s.port()) +
      "/v1 KEYGATE_ADMIN_KEY=" + t.key + " KEYGATE_ROOT_KEY=" + s.root_key() +
      " KEYGATE_ORG_ID=" + t.id + " KEYGATE_CERT_A=" + dir + "/a.pem KEYGATE_CERT_B=" + dir +
      "/b.pem node openai_admin.mjs 2>&1";
  int status = -1;
  const std::string out = run_command(command, status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("every check passed"), std::string::npos) << out;
  remove_tree(dir);
}
