// Wall-clock time as Unix milliseconds, and its RFC 3339 form. The coarse clock is read
// from the vDSO without a system call: the hot path's clock.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>

namespace keygate::core {

inline uint64_t now_ms() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

inline uint64_t coarse_now_ms() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

// "2026-11-22T14:30:00Z" (seconds precision, as seed 000).
std::string format_rfc3339(uint64_t unix_ms);
// Accepts "YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)"; false when it is not one.
bool parse_rfc3339(std::string_view text, uint64_t& unix_ms);

}  // namespace keygate::core
