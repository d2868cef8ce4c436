// Reactor::post() from other threads: every handle posted is resumed once, on the reactor's
// thread, though only the post that finds the inbox empty wakes the reactor.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "net/buffer_budget.hpp"
#include "net/reactor.hpp"

using namespace keygate::net;
using namespace std::chrono_literals;

namespace {

class NoService final : public Service {
 public:
  std::optional<task<void>> handle(const Request&, Response& res) override {
    res.status = 404;
    return std::nullopt;
  }
  void reject(ProtocolError, Response& res) override { res.status = 400; }
};

// A coroutine that starts suspended, counts where it was resumed, and frees itself.
struct Counted {
  struct promise_type {
    Counted get_return_object() {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
};

Counted count(Reactor* reactor, std::atomic<int>& on_reactor, std::atomic<int>& elsewhere) {
  (Reactor::current() == reactor ? on_reactor : elsewhere).fetch_add(1);
  co_return;
}

}  // namespace

TEST(ReactorPost, EveryPostFromManyThreadsIsResumedOnceOnTheReactor) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  NoService service;
  std::atomic<unsigned> connections{0};
  BufferBudget budget(1 << 20);
  ReactorOptions options;
  // Its ring belongs to the thread that creates it (SINGLE_ISSUER): built on its own thread,
  // and destroyed after that thread ends, as net::Server does (request_stop() may still be
  // writing its eventfd when run() returns).
  std::unique_ptr<Reactor> owned;
  std::promise<void> up;
  std::thread loop([&] {
    owned = std::make_unique<Reactor>(fd, service, options, connections, budget);
    up.set_value();
    owned->run();
  });
  up.get_future().get();
  Reactor& reactor = *owned;
  struct Stop {  // on every way out, failed assertions too
    Reactor& r;
    std::thread& t;
    int fd;
    ~Stop() {
      r.request_stop();
      t.join();
      ::close(fd);
    }
  } stop{reactor, loop, fd};

  // Bursts from four threads: many posts land while the reactor is busy with the last ones,
  // so most find the inbox full and do not write the eventfd.
  constexpr int kThreads = 4, kPerThread = 20'000;
  std::atomic<int> on_reactor{0}, elsewhere{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t)
    posters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        reactor.post(count(&reactor, on_reactor, elsewhere).handle);
        if ((i + t) % 1000 == 0) std::this_thread::sleep_for(1ms);  // let the inbox empty
      }
    });
  for (auto& t : posters) t.join();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (on_reactor.load() + elsewhere.load() < kThreads * kPerThread &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(on_reactor.load(), kThreads * kPerThread);
  EXPECT_EQ(elsewhere.load(), 0);

  // A post alone, to an idle reactor, wakes it: each is resumed before the next is posted.
  for (int i = 1; i <= 100; ++i) {
    reactor.post(count(&reactor, on_reactor, elsewhere).handle);
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (on_reactor.load() < kThreads * kPerThread + i &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(100us);
    ASSERT_EQ(on_reactor.load(), kThreads * kPerThread + i) << "post " << i << " woke nothing";
  }
}
