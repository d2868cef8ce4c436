#include "core/thread_name.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace keygate::core {
namespace {

int own_nice() {
  errno = 0;
  return ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
}

// A snapshot's thread gives way to the reactors: it alone runs at nice 10, and the
// threads of the process that started it keep their priority.
TEST(ThreadName, BackgroundWorkRunsAtALowerPriorityThanTheRestOfTheProcess) {
  const int before = own_nice();
  int in_background = before;
  std::thread t([&] {
    run_in_background();
    in_background = own_nice();
  });
  t.join();
  EXPECT_EQ(in_background, 10);
  EXPECT_EQ(own_nice(), before);
}

}  // namespace
}  // namespace keygate::core
