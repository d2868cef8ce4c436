// The connection's receive buffer (net/connection.hpp): growth, the budget it draws on, and
// the shrink back to its resting size. The connection's coroutine itself is exercised over
// real sockets by the integration tests (http_test, buffers_test).
#include "net/connection.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace keygate::net;

namespace {
constexpr size_t kRest = InputBuffer::kRestingBytes;
}

TEST(InputBuffer, GrowsForABigRequestChargingTheBudgetOnlyBeyondItsRestingSize) {
  BufferBudget budget(1 << 20);
  {
    InputBuffer in(budget);
    const std::string small(100, 'a');
    ASSERT_TRUE(in.append(small.data(), small.size(), false));
    EXPECT_EQ(in.capacity(), kRest);
    EXPECT_EQ(budget.used(), 0u);  // resting buffers are not charged
    const std::string big(20'000, 'b');
    ASSERT_TRUE(in.append(big.data(), big.size(), false));
    EXPECT_EQ(in.capacity(), 32'768u);
    EXPECT_EQ(budget.used(), 32'768u - kRest);
    EXPECT_EQ(std::string(in.data(), 100), small);
    EXPECT_EQ(in.data()[100], 'b');
  }
  EXPECT_EQ(budget.used(), 0u);  // given back when the connection goes
}

TEST(InputBuffer, ShrinksBackToRestOnceWhatItHoldsFitsAndGivesTheBudgetBack) {
  BufferBudget budget(1 << 20);
  InputBuffer in(budget);
  const std::string big(100'000, 'x');
  ASSERT_TRUE(in.append(big.data(), big.size(), false));
  in.shrink();  // holds more than a resting block: stays
  EXPECT_EQ(in.capacity(), 131'072u);
  in.discard_front(big.size() - 10);
  in.shrink();
  EXPECT_EQ(in.capacity(), kRest);
  EXPECT_EQ(in.size(), 10u);
  EXPECT_EQ(std::string(in.data(), 10), std::string(10, 'x'));
  EXPECT_EQ(budget.used(), 0u);
}

TEST(InputBuffer, RefusesToGrowPastTheBudgetAndAppendsNothing) {
  BufferBudget budget(64 * 1024);
  InputBuffer a(budget), b(budget);
  const std::string chunk(40'000, 'c');
  ASSERT_TRUE(a.append(chunk.data(), chunk.size(), false));   // 64 KiB block: 60 KiB charged
  EXPECT_FALSE(b.append(chunk.data(), chunk.size(), false));  // would need 60 KiB more
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(budget.refusals(), 1u);
  a.discard_front(chunk.size());
  a.shrink();
  EXPECT_TRUE(b.append(chunk.data(), chunk.size(), false));  // room again
}

TEST(InputBuffer, KeepsTheOldBlockWhileARequestPointsIntoItAndNeverShrinksThen) {
  BufferBudget budget(1 << 20);
  InputBuffer in(budget);
  const std::string first(3'000, 'r');
  ASSERT_TRUE(in.append(first.data(), first.size(), false));
  const char* request = in.data();  // a handler's views point here
  const std::string more(10'000, 'm');
  ASSERT_TRUE(in.append(more.data(), more.size(), true));
  EXPECT_EQ(std::string(request, 3), "rrr");  // still readable: retired, not freed
  in.discard_front(in.size());
  in.shrink();
  EXPECT_EQ(in.capacity(), 16'384u);  // not while the retired block lives
  in.release_retired();
  in.shrink();
  EXPECT_EQ(in.capacity(), kRest);
  EXPECT_EQ(budget.used(), 0u);
}
