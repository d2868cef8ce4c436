#include "core/compact_string.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

using keygate::core::CompactString;

TEST(CompactString, HoldsUpToFifteenBytesInlineAndLongerTextsOnTheHeap) {
  for (size_t n : {0, 1, 14, 15, 16, 17, 200}) {
    std::string text;
    for (size_t i = 0; i < n; ++i) text.push_back(static_cast<char>('a' + i % 26));
    CompactString s(text);
    EXPECT_EQ(s.view(), text) << n;
    EXPECT_EQ(s.size(), n);
    EXPECT_EQ(s.empty(), n == 0);
    EXPECT_EQ(s.on_heap(), n > CompactString::kInline) << n;
  }
}

TEST(CompactString, KeepsEveryByteIncludingNulsAndQuotes) {
  const std::string text("a\0b\"c\n", 6);
  EXPECT_EQ(CompactString(text).view(), text);
  const std::string long_text = text + text + text;  // 18 bytes: on the heap
  EXPECT_EQ(CompactString(long_text).view(), long_text);
}

TEST(CompactString, CopiesAreIndependentAndMovesLeaveTheSourceEmpty) {
  const std::string long_text(40, 'x');
  for (const std::string& text : {std::string("short"), long_text}) {
    CompactString a(text);
    CompactString b(a);
    EXPECT_EQ(b, text);
    if (a.on_heap()) {
      EXPECT_NE(a.view().data(), b.view().data()) << "a copy owns its own block";
    }
    a = "other";
    EXPECT_EQ(b, text) << "changing the original leaves the copy";
    CompactString c(std::move(b));
    EXPECT_EQ(c, text);
    EXPECT_TRUE(b.empty());  // NOLINT: the moved-from state is documented
    CompactString d;
    d = std::move(c);
    EXPECT_EQ(d, text);
    EXPECT_TRUE(c.empty());  // NOLINT
    d = d;                   // self-assignment keeps the text
    EXPECT_EQ(d, text);
  }
}

TEST(CompactString, AssignmentReplacesInlineAndHeapTextsEitherWay) {
  CompactString s;
  const std::vector<std::string> texts{
      "", std::string(100, 'h'), "i", std::string(16, 'j'), std::string(15, 'k'), ""};
  for (const auto& t : texts) {
    s = t;
    EXPECT_EQ(s, t);
    EXPECT_EQ(s.str(), t);
  }
}

TEST(CompactString, ComparesByText) {
  EXPECT_EQ(CompactString("abc"), CompactString("abc"));
  EXPECT_FALSE(CompactString("abc") == CompactString("abd"));
  EXPECT_TRUE(CompactString(std::string(20, 'z')) == std::string(20, 'z'));
  EXPECT_TRUE(CompactString("q") != "r");
}
