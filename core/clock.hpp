// Wall-clock time as Unix milliseconds, and its RFC 3339 form. The coarse clock is read
// from the vDSO without a system call: the hot path's clock.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "core/expected.hpp"

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
// Reads "YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)" (RFC 3339's date-time) as Unix milliseconds.
// A time that does not exist (2027-02-31, hour 24, offset +99:00), a leap second (:60, which
// Unix time cannot hold) and a time before 1970 are refused; the error completes the sentence
// "<field> ..." with what was wrong ("has day 31, but 2027-02 has 28 days").
Expected<uint64_t, std::string> parse_rfc3339(std::string_view text);

}  // namespace keygate::core
