#include "net/ring.hpp"

#include <cerrno>
#include <cstdlib>
#include <system_error>

namespace keygate::net {

namespace {

[[noreturn]] void fail(const char* what, int err) {
  throw std::system_error(err, std::system_category(), what);
}

}  // namespace

Ring::Ring(unsigned entries, unsigned buffer_count, unsigned buffer_size)
    : buffer_size_(buffer_size), mask_(io_uring_buf_ring_mask(buffer_count)) {
  // One thread submits and reaps (SINGLE_ISSUER), and completions are processed only when
  // we ask for them (DEFER_TASKRUN): the cheapest mode measured here, for this core and for
  // the clients' (perf/ab_builds.sh, 8 pairs: COOP_TASKRUN instead costs 4 % of wrk's rate,
  // a plain ring 42 % and twice the CPU). Older kernels refuse these flags; fall back to a
  // plain ring rather than refuse to start.
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
  int rc = io_uring_queue_init_params(entries, &ring_, &params);
  if (rc == -EINVAL) {
    params = {};
    rc = io_uring_queue_init_params(entries, &ring_, &params);
  }
  if (rc < 0) fail("io_uring_queue_init", -rc);
  // io_uring_enter then skips the lookup of the ring's file on every call (kernel 5.18+;
  // liburing falls back to the plain descriptor when refused).
  io_uring_register_ring_fd(&ring_);

  // liburing 2.3 has no io_uring_setup_buf_ring: map the ring ourselves.
  void* mem = nullptr;
  if (posix_memalign(&mem, 4096, sizeof(io_uring_buf) * buffer_count) != 0) {
    io_uring_queue_exit(&ring_);
    fail("posix_memalign", ENOMEM);
  }
  buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(buf_ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(buf_ring_);
  reg.ring_entries = buffer_count;
  reg.bgid = kBufferGroup;
  // aligned_alloc wants a size that is a multiple of the alignment.
  const size_t bytes = (size_t{buffer_count} * buffer_size + 4095) & ~size_t{4095};
  buffers_ = static_cast<char*>(std::aligned_alloc(4096, bytes));
  rc = buffers_ ? io_uring_register_buf_ring(&ring_, &reg, 0) : -ENOMEM;
  if (rc < 0) {
    const char* what = buffers_ ? "io_uring_register_buf_ring" : "aligned_alloc";
    io_uring_queue_exit(&ring_);
    std::free(buf_ring_);
    std::free(buffers_);
    fail(what, -rc);
  }
  for (unsigned i = 0; i < buffer_count; ++i)
    io_uring_buf_ring_add(buf_ring_, buffers_ + size_t{i} * buffer_size, buffer_size,
                          static_cast<uint16_t>(i), mask_, static_cast<int>(i));
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(buffer_count));
}

Ring::~Ring() {
  io_uring_queue_exit(&ring_);  // first: the kernel lets go of the buffers
  std::free(buf_ring_);
  std::free(buffers_);
}

io_uring_sqe* Ring::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (!s) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
    if (!s) fail("io_uring_get_sqe", EBUSY);
  }
  return s;
}

}  // namespace keygate::net
