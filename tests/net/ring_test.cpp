// The ring (net/ring.cpp): receives land in its provided buffers, and a recycled buffer is
// used again, so a connection can receive far more reads than there are buffers.
#include "net/ring.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

using keygate::net::Ring;

namespace {

// One receive into the group's buffers; its completion's result and buffer id.
struct Received {
  int res;
  uint16_t bid;
};

Received receive_once(Ring& ring, int fd) {
  io_uring_sqe* s = ring.sqe();
  io_uring_prep_recv(s, fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = Ring::kBufferGroup;
  EXPECT_EQ(io_uring_submit_and_wait(ring.get(), 1), 1);
  io_uring_cqe* cqe = nullptr;
  EXPECT_EQ(io_uring_wait_cqe(ring.get(), &cqe), 0);
  Received r{cqe->res, static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT)};
  EXPECT_TRUE(cqe->res < 0 || (cqe->flags & IORING_CQE_F_BUFFER)) << "a receive without a buffer";
  io_uring_cqe_seen(ring.get(), cqe);
  return r;
}

}  // namespace

TEST(Ring, RecycledBuffersCarryManyMoreReceivesThanTheRingHolds) {
  Ring ring(8, 4, 64);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  for (int i = 0; i < 20; ++i) {
    const std::string msg = "message " + std::to_string(i);
    ASSERT_EQ(::write(fds[1], msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
    const Received r = receive_once(ring, fds[0]);
    ASSERT_EQ(r.res, static_cast<int>(msg.size())) << "receive " << i;
    EXPECT_LT(r.bid, 4);
    EXPECT_EQ(std::string_view(ring.buffer(r.bid), static_cast<size_t>(r.res)), msg);
    ring.recycle(r.bid);
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Ring, WithoutRecyclingTheBuffersRunOut) {
  Ring ring(8, 2, 64);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(::write(fds[1], "x", 1), 1);
    const Received r = receive_once(ring, fds[0]);
    if (i < 2)
      EXPECT_EQ(r.res, 1) << "receive " << i;
    else
      EXPECT_EQ(r.res, -ENOBUFS) << "two buffers, none given back";
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Ring, SqeSubmitsAFullQueueInsteadOfFailing) {
  Ring ring(4, 2, 64);
  for (int i = 0; i < 6; ++i) io_uring_prep_nop(ring.sqe());  // 4 fit; the 5th submits them
  io_uring_submit(ring.get());
  unsigned completed = 0;
  io_uring_cqe* cqe = nullptr;
  while (completed < 6 && io_uring_wait_cqe(ring.get(), &cqe) == 0) {
    io_uring_cqe_seen(ring.get(), cqe);
    ++completed;
  }
  EXPECT_EQ(completed, 6u);
}
