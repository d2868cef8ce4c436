// The console's files as the binary serves them (handlers/console.hpp): exactly console/'s,
// and none of them able to turn a string into markup or code.
#include "handlers/console.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

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
