// The console's files as the binary serves them (handlers/console.hpp): exactly console/'s,
// and none of them able to turn a string into markup or code.
#include "handlers/console.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/audit.hpp"
#include "core/scopes.hpp"

using namespace keygate::handlers;

TEST(Console, EmbedsEveryFileOfTheConsoleDirectoryAsItIs) {
  std::set<std::string> on_disk, embedded;
  for (const auto& f : std::filesystem::directory_iterator(KEYGATE_SOURCE_DIR "/console"))
    if (f.path().filename() != "embed.cmake") on_disk.insert(f.path().filename());
  for (size_t i = 0; i < kConsoleFileCount; ++i) {
    const ConsoleFile& f = kConsoleFiles[i];
    embedded.insert(std::string(f.name));
    std::ifstream in(std::string(KEYGATE_SOURCE_DIR "/console/") + std::string(f.name),
                     std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    EXPECT_EQ(bytes.str(), f.bytes) << f.name << " is served as it is in console/";
  }
  EXPECT_EQ(on_disk, embedded) << "handlers/CMakeLists.txt lists the console's files";
}

// The pages are built from elements and text nodes only (console/dom.js): no script may
// hand a string to an HTML parser or evaluate one, so no value from the API (an
// organization's name, a key's, an audit event's details) can become markup or script.
TEST(Console, NoScriptParsesHtmlOrEvaluatesStrings) {
  const char* const sinks[] = {"innerHTML",      "outerHTML",      "insertAdjacentHTML",
                               "document.write", "DOMParser",      "createContextualFragment",
                               "srcdoc",         "eval(",          "new Function",
                               "setTimeout('",   "setTimeout(\"",  "setTimeout(`",
                               "setInterval('",  "setInterval(\"", "setInterval(`",
                               "javascript:"};
  size_t scripts = 0;
  for (size_t i = 0; i < kConsoleFileCount; ++i) {
    const ConsoleFile& f = kConsoleFiles[i];
    if (!f.name.ends_with(".js") && !f.name.ends_with(".html")) continue;
    ++scripts;
    for (const char* sink : sinks)
      EXPECT_EQ(f.bytes.find(sink), std::string_view::npos) << f.name << " uses " << sink;
    if (f.name.ends_with(".html")) {
      // No inline script or handler: only <script type="module" src=...>.
      EXPECT_EQ(f.bytes.find("<script>"), std::string_view::npos) << f.name;
      EXPECT_EQ(f.bytes.find(" onload="), std::string_view::npos) << f.name;
      EXPECT_EQ(f.bytes.find(" onclick="), std::string_view::npos) << f.name;
    }
  }
  EXPECT_GE(scripts, 5u);
}

// app.js names every scope (the picker a root key grants from) and every audit event type
// (the audit filter): exactly the server's, so neither offers what the API refuses nor
// leaves out what it has.
TEST(Console, NamesExactlyTheServersScopesAndEventTypes) {
  std::string_view app;
  for (size_t i = 0; i < kConsoleFileCount; ++i)
    if (kConsoleFiles[i].name == "app.js") app = kConsoleFiles[i].bytes;
  ASSERT_FALSE(app.empty());
  // The quoted names in the array that follows `declaration`, in order.
  auto names = [&](std::string_view declaration) {
    std::vector<std::string> out;
    const size_t from = app.find(declaration), to = app.find("];", from);
    EXPECT_NE(from, std::string_view::npos) << declaration;
    for (size_t q = app.find('\'', from); q < to; q = app.find('\'', q + 1)) {
      const size_t end = app.find('\'', q + 1);
      out.emplace_back(app.substr(q + 1, end - q - 1));
      q = end;
    }
    return out;
  };
  std::vector<std::string> scopes, types;
  keygate::core::for_each_scope(keygate::core::kAllScopes, [&](keygate::core::Scope s) {
    scopes.emplace_back(keygate::core::scope_name(s));
  });
  for (size_t t = 1; t <= keygate::core::kAuditTypeCount; ++t)  // 0 is no type
    types.emplace_back(keygate::core::to_string(static_cast<keygate::core::AuditType>(t)));
  EXPECT_EQ(names("const ALL_SCOPES = ["), scopes);
  EXPECT_EQ(names("const EVENT_TYPES = ["), types);
}
