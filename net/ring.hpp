// Ring: the io_uring a data-plane loop runs on, and the provided-buffer ring its multishot
// receives fill. One place decides how keygate sets a ring up (its mode, its receive
// buffers), so the Reactor and the benchmark floor that stands for it (perf/floor.cpp)
// cannot drift apart.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>

namespace keygate::net {

class Ring {
 public:
  static constexpr uint16_t kBufferGroup = 0;  // the group receives name with IOSQE_BUFFER_SELECT

  // `entries` submission entries; `buffer_count` (a power of two) receive buffers of
  // `buffer_size` bytes. Throws std::system_error when the kernel refuses.
  Ring(unsigned entries, unsigned buffer_count, unsigned buffer_size);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  io_uring* get() noexcept { return &ring_; }
  // The next free submission entry; when the queue is full, what is queued is submitted.
  io_uring_sqe* sqe();

  // The receive buffer the kernel filled, by the id in its completion's flags.
  const char* buffer(uint16_t bid) const noexcept { return buffers_ + size_t{bid} * buffer_size_; }
  // Gives a buffer back to the kernel once its bytes have been consumed.
  void recycle(uint16_t bid) noexcept {
    io_uring_buf_ring_add(buf_ring_, buffers_ + size_t{bid} * buffer_size_, buffer_size_, bid,
                          mask_, 0);
    io_uring_buf_ring_advance(buf_ring_, 1);
  }

 private:
  io_uring ring_{};
  io_uring_buf_ring* buf_ring_ = nullptr;
  char* buffers_ = nullptr;
  unsigned buffer_size_;
  int mask_;
};

}  // namespace keygate::net
